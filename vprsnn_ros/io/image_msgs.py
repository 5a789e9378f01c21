"""sensor_msgs/Image and CompressedImage -> numpy arrays for the preprocessing.

Messages are duck-typed: any object with the message's attributes works
(``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``, ``data`` for
Image; ``format``, ``data`` for CompressedImage), so the core needs no rclpy.

Output convention (what :func:`vprsnn_ros.io.preprocess.preprocess` expects):

=========  ===============================
encoding   returned array
=========  ===============================
mono8      (H, W)    uint8
mono16     (H, W)    uint16, native byte order
bgr8       (H, W, 3) uint8 BGR
rgb8       (H, W, 3) uint8 BGR (converted)
bgra8      (H, W, 4) uint8 BGRA
rgba8      (H, W, 4) uint8 BGRA (converted)
=========  ===============================

The result is always C-contiguous.  For mono8/mono16/bgr8/bgra8 messages
without row padding (and in native byte order) it is a zero-copy view of
``msg.data``; it is then read-only when ``data`` is immutable (``bytes``).

This is the built-in NumPy decoder, with cv_bridge's ``passthrough`` semantics; the
node's :mod:`vprsnn_ros.nodes.image_convert` hands it a cv_bridge decoder where
cv_bridge is installed (the core imports no ROS package).
"""

from __future__ import annotations

import sys

import cv2
import numpy as np

from vprsnn_ros.errors import DataError

__all__ = [
    "SUPPORTED_ENCODINGS",
    "ImageConversionError",
    "compressed_to_array",
    "image_to_array",
]

SUPPORTED_ENCODINGS = ("mono8", "mono16", "bgr8", "rgb8", "bgra8", "rgba8")

# encoding -> (channels, element dtype in native byte order)
_LAYOUT = {
    "mono8": (1, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
    "bgr8": (3, np.dtype(np.uint8)),
    "rgb8": (3, np.dtype(np.uint8)),
    "bgra8": (4, np.dtype(np.uint8)),
    "rgba8": (4, np.dtype(np.uint8)),
}
# Message channel order -> our BGR(A) order (wire -> array), and back.
_TO_BGR = {"rgb8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGBA2BGRA}
_FROM_BGR = {"rgb8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_BGRA2RGBA}

_MACHINE_BIG_ENDIAN = sys.byteorder == "big"


class ImageConversionError(DataError):
    """A ROS image message that cannot be converted to a numpy array."""


# --------------------------------------------------------------------------- helpers


def _check_encoding(encoding: object) -> str:
    if not isinstance(encoding, str) or encoding not in _LAYOUT:
        raise ImageConversionError(
            f"unsupported image encoding {encoding!r}; "
            f"supported encodings: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    return encoding


def _as_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ImageConversionError(f"image {name} must be an integer, got {value!r}")
    return int(value)


def _byte_view(data: object) -> np.ndarray:
    """``msg.data`` as a 1-D uint8 array, without copying when it is a buffer."""
    if data is None:
        raise ImageConversionError("image data is missing (None)")
    if isinstance(data, np.ndarray):
        flat = data.reshape(-1)  # copies only if non-contiguous
        if flat.dtype == np.uint8:
            return flat
        return _ints_to_bytes(flat)
    if isinstance(data, (list, tuple)):
        try:
            values = np.asarray(data)
        except (TypeError, ValueError) as exc:
            raise ImageConversionError(f"image data is not a list of byte values: {exc}") from None
        return _ints_to_bytes(values.reshape(-1))
    if isinstance(data, str):
        raise ImageConversionError("image data must be bytes-like, got str")
    try:
        # bytes, bytearray, memoryview, array.array('B') (what rclpy gives): no copy.
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        pass
    try:  # e.g. a non-contiguous memoryview
        return np.frombuffer(memoryview(data).tobytes(), dtype=np.uint8)
    except TypeError:
        raise ImageConversionError(
            f"image data must be bytes-like or a sequence of ints, got {type(data).__name__}"
        ) from None


def _ints_to_bytes(values: np.ndarray) -> np.ndarray:
    if values.size == 0:
        return np.zeros(0, np.uint8)
    if values.dtype.kind not in "iu":
        raise ImageConversionError(
            f"image data must hold byte values (integers 0..255), got dtype {values.dtype}"
        )
    if values.min() < 0 or values.max() > 255:
        raise ImageConversionError("image data holds values outside 0..255")
    return values.astype(np.uint8)


def _validated(msg: object) -> tuple[str, int, int, int, bool, np.ndarray]:
    """Check every field; return (encoding, height, width, step, big_endian, bytes)."""
    encoding = _check_encoding(getattr(msg, "encoding", None))
    height = _as_int(getattr(msg, "height", None), "height")
    width = _as_int(getattr(msg, "width", None), "width")
    if height <= 0 or width <= 0:
        raise ImageConversionError(
            f"image height and width must be > 0, got height={height} width={width}"
        )
    step = _as_int(getattr(msg, "step", None), "step")
    big_endian = bool(getattr(msg, "is_bigendian", _MACHINE_BIG_ENDIAN))
    buf = _byte_view(getattr(msg, "data", None))
    channels, dtype = _LAYOUT[encoding]
    row_bytes = width * channels * dtype.itemsize
    expected = step * height
    if buf.size == 0:
        raise ImageConversionError(
            f"image data is empty (expected step*height = {max(expected, 0)} bytes)"
        )
    if step < row_bytes:
        raise ImageConversionError(
            f"image step {step} is smaller than width*bytes_per_pixel = "
            f"{width}*{channels * dtype.itemsize} = {row_bytes} (encoding {encoding!r})"
        )
    if buf.size != expected:
        raise ImageConversionError(
            f"image data length mismatch: expected step*height = {step}*{height} = "
            f"{expected} bytes, got {buf.size}"
        )
    return encoding, height, width, step, big_endian, buf


def _decode_builtin(
    encoding: str, height: int, width: int, step: int, big_endian: bool, buf: np.ndarray
) -> np.ndarray:
    channels, dtype = _LAYOUT[encoding]
    if dtype.itemsize > 1:
        wire = dtype.newbyteorder(">" if big_endian else "<")
    else:
        wire = dtype
    if channels == 1:
        shape: tuple[int, ...] = (height, width)
        strides: tuple[int, ...] = (step, dtype.itemsize)
    else:
        shape = (height, width, channels)
        strides = (step, channels * dtype.itemsize, dtype.itemsize)
    # A strided view over the message bytes: row padding is simply skipped.
    view = np.ndarray(shape, dtype=wire, buffer=buf, strides=strides)
    # Copies only if padded or byte-swapped; otherwise returns the view itself.
    return np.ascontiguousarray(view, dtype=dtype)


# --------------------------------------------------------------------------- public API


def image_to_array(msg: object, decoder=None) -> np.ndarray:
    """Convert a sensor_msgs/Image to a C-contiguous numpy array (see module doc).

    Raises :class:`ImageConversionError` for unsupported encodings, empty or
    inconsistent geometry (height/width/step) and data of the wrong length.
    """
    encoding, height, width, step, big_endian, buf = _validated(msg)
    if decoder is not None:
        try:
            image = decoder(encoding, height, width, step, big_endian, buf)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a data error
            raise ImageConversionError(
                f"cv_bridge could not convert {encoding!r} image "
                f"({height}x{width}, step {step}): {exc}"
            ) from exc
    else:
        image = _decode_builtin(encoding, height, width, step, big_endian, buf)
    code = _TO_BGR.get(encoding)
    if code is not None:
        image = cv2.cvtColor(image, code)
    return np.ascontiguousarray(image)


def compressed_to_array(msg: object) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (jpeg/png...) with ``cv2.imdecode``.

    Returns what ``cv2.IMREAD_UNCHANGED`` gives: (H, W) gray (uint8 or uint16),
    (H, W, 3) BGR or (H, W, 4) BGRA.
    """
    fmt = getattr(msg, "format", "")
    failure = f"cannot decode compressed image (format {fmt!r}): corrupt or unsupported data"
    try:
        buf = _byte_view(getattr(msg, "data", None))
    except ImageConversionError as exc:
        raise ImageConversionError(f"{failure} ({exc})") from None
    if buf.size == 0:
        raise ImageConversionError(f"{failure} (data is empty)")
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise ImageConversionError(failure)
    return np.ascontiguousarray(image)
