"""Image messages on the node side: cv_bridge where installed, and arrays -> sensor_msgs/Image.

Decoding is :mod:`vprsnn_ros.io.image_msgs` (ROS-free, shared with the bag
reader); here it is handed cv_bridge's decoder when cv_bridge is importable
(``BACKEND == "cv_bridge"``), and :func:`array_to_image` builds real messages.
"""

from __future__ import annotations

import types

import cv2
import numpy as np

from vprsnn_ros.io import image_msgs
from vprsnn_ros.io.image_msgs import (  # noqa: F401 - re-exported for the nodes
    _FROM_BGR,
    _LAYOUT,
    _MACHINE_BIG_ENDIAN,
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    _check_encoding,
    compressed_to_array,
)

try:  # available on real ROS installs, not in the PyPI-wheel venv
    from cv_bridge import CvBridge
except Exception:  # noqa: BLE001 - ImportError, or a broken binary module
    CvBridge = None

BACKEND = "cv_bridge" if CvBridge else "builtin"

_bridge_cache: dict[type, object] = {}


def _decode_bridge(
    encoding: str, height: int, width: int, step: int, big_endian: bool, buf: np.ndarray
) -> np.ndarray:
    bridge_cls = CvBridge
    bridge = _bridge_cache.get(bridge_cls)
    if bridge is None:
        bridge = _bridge_cache[bridge_cls] = bridge_cls()
    # Hand the bridge the validated byte buffer (works for list data too) and a
    # byte order that only matters where it means something (16-bit pixels).
    channels, dtype = _LAYOUT[encoding]
    proxy = types.SimpleNamespace(
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(big_endian if dtype.itemsize > 1 else _MACHINE_BIG_ENDIAN),
        step=step,
        data=buf,
    )
    image = np.asarray(bridge.imgmsg_to_cv2(proxy, desired_encoding="passthrough"))
    expected = (height, width) if channels == 1 else (height, width, channels)
    if image.shape != expected or image.dtype.kind != dtype.kind or (
        image.dtype.itemsize != dtype.itemsize
    ):
        raise ValueError(
            f"cv_bridge returned shape {image.shape} dtype {image.dtype}, "
            f"expected {expected} {dtype}"
        )
    return np.ascontiguousarray(image, dtype=dtype)


def image_to_array(msg: object) -> np.ndarray:
    """:func:`vprsnn_ros.io.image_msgs.image_to_array`, through cv_bridge when it is installed."""
    return image_msgs.image_to_array(msg, _decode_bridge if CvBridge is not None else None)


def array_to_image(
    array: np.ndarray, encoding: str, stamp: object = None, frame_id: str = ""
):
    """Build a sensor_msgs/Image from an array in this package's convention.

    ``array`` is (H, W) for mono8 (uint8) / mono16 (uint16) and BGR / BGRA
    uint8 for the colour encodings; for ``rgb8`` / ``rgba8`` the channels are
    reordered on the wire, so ``image_to_array(array_to_image(a, enc))``
    equals ``a`` for every supported encoding.  ``stamp`` is a
    builtin_interfaces/Time (or anything with ``to_msg()``, e.g. rclpy Time).
    """
    from sensor_msgs.msg import Image  # lazy: the core stays rclpy-free

    encoding = _check_encoding(encoding)
    channels, dtype = _LAYOUT[encoding]
    a = np.asarray(array)
    if a.dtype.kind != dtype.kind or a.dtype.itemsize != dtype.itemsize:
        raise ImageConversionError(
            f"encoding {encoding!r} needs a {dtype} array, got {a.dtype}"
        )
    if channels == 1 and a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    expected_ndim = 2 if channels == 1 else 3
    if a.ndim != expected_ndim or (channels > 1 and a.shape[2] != channels):
        want = "(H, W)" if channels == 1 else f"(H, W, {channels})"
        raise ImageConversionError(
            f"encoding {encoding!r} needs an array of shape {want}, got {a.shape}"
        )
    height, width = int(a.shape[0]), int(a.shape[1])
    if height == 0 or width == 0:
        raise ImageConversionError(f"cannot build an empty image (shape {a.shape})")
    a = np.ascontiguousarray(a, dtype=dtype)  # native byte order
    code = _FROM_BGR.get(encoding)
    if code is not None:
        a = np.ascontiguousarray(cv2.cvtColor(a, code))

    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp.to_msg() if hasattr(stamp, "to_msg") else stamp
    msg.header.frame_id = frame_id
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = int(_MACHINE_BIG_ENDIAN)
    msg.step = width * channels * dtype.itemsize
    msg.data = a.tobytes()
    return msg
