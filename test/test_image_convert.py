"""sensor_msgs Image / CompressedImage -> numpy conversion (duck-typed messages)."""

from __future__ import annotations

import array
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from vprsnn_ros.errors import DataError, VprsnnError
from vprsnn_ros.nodes import image_convert as ic
from vprsnn_ros.nodes.image_convert import (
    BACKEND,
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    array_to_image,
    compressed_to_array,
    image_to_array,
)

# encoding -> (channels, dtype) of the array image_to_array returns
LAYOUT = {
    "mono8": (1, np.uint8),
    "mono16": (1, np.uint16),
    "bgr8": (3, np.uint8),
    "rgb8": (3, np.uint8),
    "bgra8": (4, np.uint8),
    "rgba8": (4, np.uint8),
}
BIG = sys.byteorder == "big"


@pytest.fixture
def msgs(deps):
    """sensor_msgs.msg: a skip without the ROS 2 messages, a failure in CI (which installs them)."""
    return deps.require("sensor_msgs.msg", "builtin_interfaces.msg")[0]


def random_image(encoding: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random array in OUR convention (mono / BGR / BGRA)."""
    channels, dtype = LAYOUT[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)


def wire_message(
    wire: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = BIG, data_type=bytes
):
    """Duck-typed Image whose bytes are ``wire`` exactly as on the wire (no reordering).

    ``pad`` extra garbage bytes are appended to every row.
    """
    channels, dtype = LAYOUT[encoding]
    height, width = wire.shape[:2]
    order = ">" if big_endian else "<"
    raw = np.ascontiguousarray(wire, dtype=np.dtype(dtype).newbyteorder(order))
    rows = raw.view(np.uint8).reshape(height, -1)
    padded = np.full((height, rows.shape[1] + pad), 0xAB, np.uint8)
    padded[:, : rows.shape[1]] = rows
    return SimpleNamespace(
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(big_endian),
        step=rows.shape[1] + pad,
        data=convert_data(padded.tobytes(), data_type),
    )


def convert_data(raw: bytes, data_type):
    if data_type is bytes:
        return raw
    if data_type is bytearray:
        return bytearray(raw)
    if data_type is array.array:
        return array.array("B", raw)
    if data_type is list:
        return list(raw)
    if data_type is np.ndarray:
        return np.frombuffer(raw, np.uint8).copy()
    if data_type is memoryview:
        return memoryview(raw)
    raise AssertionError(data_type)


def to_wire(image: np.ndarray, encoding: str) -> np.ndarray:
    """Our BGR(A) convention -> channel order of ``encoding`` on the wire."""
    if encoding == "rgb8":
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if encoding == "rgba8":
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def check_output(out: np.ndarray, encoding: str, height: int, width: int) -> None:
    channels, dtype = LAYOUT[encoding]
    expected_shape = (height, width) if channels == 1 else (height, width, channels)
    assert out.shape == expected_shape
    assert out.dtype == dtype and out.dtype.isnative
    assert out.flags.c_contiguous


# ------------------------------------------------------------------ module surface


def test_public_constants():
    assert SUPPORTED_ENCODINGS == ("mono8", "mono16", "bgr8", "rgb8", "bgra8", "rgba8")
    assert BACKEND == ("cv_bridge" if ic.CvBridge else "builtin")
    assert issubclass(ImageConversionError, DataError)
    assert issubclass(ImageConversionError, VprsnnError)


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("shape", [(7, 5), (5, 7), (1, 1), (3, 1), (1, 3)])
def test_round_trip_duck_typed(encoding, shape):
    image = random_image(encoding, *shape, seed=SUPPORTED_ENCODINGS.index(encoding) * 100 + shape[0] * 10 + shape[1])
    msg = wire_message(to_wire(image, encoding), encoding)
    out = image_to_array(msg)
    check_output(out, encoding, *shape)
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("shape", [(7, 5), (1, 1)])
def test_round_trip_real_message(encoding, shape, msgs):
    image = random_image(encoding, *shape, seed=3)
    msg = array_to_image(image, encoding)
    assert isinstance(msg, msgs.Image)
    assert isinstance(msg.data, (array.array, bytes, bytearray, list))
    channels, dtype = LAYOUT[encoding]
    assert msg.step == shape[1] * channels * np.dtype(dtype).itemsize
    assert len(msg.data) == msg.step * msg.height
    out = image_to_array(msg)
    check_output(out, encoding, *shape)
    np.testing.assert_array_equal(out, image)


def test_array_to_image_reorders_rgb_on_the_wire(msgs):
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 2] = 255  # red in BGR
    msg = array_to_image(bgr, "rgb8")
    wire = np.frombuffer(bytes(msg.data), np.uint8).reshape(2, 3, 3)
    assert (wire == [255, 0, 0]).all()
    assert msg.is_bigendian == int(BIG)


def test_array_to_image_header_and_errors(msgs):
    from builtin_interfaces.msg import Time

    msg = array_to_image(np.zeros((2, 2), np.uint8), "mono8", Time(sec=12, nanosec=34), "cam")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 34)
    assert msg.header.frame_id == "cam"
    assert isinstance(msg, msgs.Image)
    # (H, W, 1) is accepted for mono.
    assert array_to_image(np.zeros((2, 2, 1), np.uint8), "mono8").width == 2
    with pytest.raises(ImageConversionError, match="32FC1"):
        array_to_image(np.zeros((2, 2), np.float32), "32FC1")
    with pytest.raises(ImageConversionError, match="uint16"):
        array_to_image(np.zeros((2, 2), np.uint8), "mono16")
    with pytest.raises(ImageConversionError, match="shape"):
        array_to_image(np.zeros((2, 2), np.uint8), "bgr8")
    with pytest.raises(ImageConversionError, match="shape"):
        array_to_image(np.zeros((2, 2, 3), np.uint8), "bgra8")
    with pytest.raises(ImageConversionError, match="empty"):
        array_to_image(np.zeros((0, 2), np.uint8), "mono8")


def test_array_to_image_mono16_foreign_byte_order(msgs):
    values = np.array([[0x0102, 0xFF00], [0x00FF, 0xABCD]], np.uint16)
    foreign = values.astype(values.dtype.newbyteorder())
    np.testing.assert_array_equal(image_to_array(array_to_image(foreign, "mono16")), values)


# ------------------------------------------------------------------ colour order


def test_pure_red_rgb8_becomes_bgr():
    wire = np.zeros((3, 4, 3), np.uint8)
    wire[...] = [255, 0, 0]  # red in RGB
    out = image_to_array(wire_message(wire, "rgb8"))
    assert out.shape == (3, 4, 3)
    assert (out == [0, 0, 255]).all()


def test_rgba8_becomes_bgra_keeping_alpha():
    wire = np.zeros((2, 2, 4), np.uint8)
    wire[...] = [255, 10, 20, 77]  # R G B A
    out = image_to_array(wire_message(wire, "rgba8"))
    assert (out == [20, 10, 255, 77]).all()


def test_bgr8_is_passed_through_unchanged():
    wire = np.zeros((2, 2, 3), np.uint8)
    wire[...] = [1, 2, 3]
    assert (image_to_array(wire_message(wire, "bgr8")) == [1, 2, 3]).all()


def test_rgb_general_channel_reversal():
    wire = random_image("bgr8", 6, 9, seed=7)  # arbitrary bytes, read as RGB
    out = image_to_array(wire_message(wire, "rgb8"))
    np.testing.assert_array_equal(out, wire[..., ::-1])


# ------------------------------------------------------------------ step / byte order


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("pad", [1, 3, 8])
def test_padded_step_ignores_extra_bytes(encoding, pad):
    image = random_image(encoding, 7, 5, seed=pad)
    msg = wire_message(to_wire(image, encoding), encoding, pad=pad)
    channels, dtype = LAYOUT[encoding]
    assert msg.step == 5 * channels * np.dtype(dtype).itemsize + pad
    out = image_to_array(msg)
    check_output(out, encoding, 7, 5)
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("pad", [0, 2, 5])
def test_mono16_big_and_little_endian_agree(pad):
    values = np.array([[0x0102, 0xFF00, 0x00FF], [0xABCD, 0, 0xFFFF]], np.uint16)
    big = wire_message(values, "mono16", pad=pad, big_endian=True)
    little = wire_message(values, "mono16", pad=pad, big_endian=False)
    assert big.data != little.data  # really different bytes on the wire
    for msg in (big, little):
        out = image_to_array(msg)
        check_output(out, "mono16", 2, 3)
        np.testing.assert_array_equal(out, values)


def test_mono16_byte_order_flag_is_honoured():
    # The same bytes read with the two flags give byte-swapped values.
    raw = bytes([0x01, 0x02])
    common = dict(height=1, width=1, encoding="mono16", step=2, data=raw)
    assert image_to_array(SimpleNamespace(is_bigendian=1, **common))[0, 0] == 0x0102
    assert image_to_array(SimpleNamespace(is_bigendian=0, **common))[0, 0] == 0x0201


def test_is_bigendian_ignored_for_8_bit():
    wire = random_image("bgr8", 3, 4, seed=1)
    out = image_to_array(wire_message(wire, "bgr8", big_endian=not BIG))
    np.testing.assert_array_equal(out, wire)


# ------------------------------------------------------------------ data containers


@pytest.mark.parametrize(
    "data_type", [bytes, bytearray, array.array, list, np.ndarray, memoryview]
)
@pytest.mark.parametrize("encoding", ["mono8", "mono16", "rgb8"])
def test_data_container_types(data_type, encoding):
    image = random_image(encoding, 5, 7, seed=11)
    msg = wire_message(to_wire(image, encoding), encoding, pad=2, data_type=data_type)
    assert type(msg.data) is data_type
    np.testing.assert_array_equal(image_to_array(msg), image)


@pytest.mark.skipif(BACKEND != "builtin", reason="zero-copy is a property of the builtin decoder")
def test_unpadded_mono8_is_a_view_of_the_data():
    buf = bytearray(range(12))
    msg = SimpleNamespace(height=3, width=4, encoding="mono8", is_bigendian=0, step=4, data=buf)
    out = image_to_array(msg)
    assert np.shares_memory(out, np.frombuffer(buf, np.uint8))
    assert out.flags.c_contiguous


def test_large_mono8_shape():
    height, width = 4000, 6000
    msg = SimpleNamespace(
        height=height,
        width=width,
        encoding="mono8",
        is_bigendian=0,
        step=width,
        data=bytes(height * width),
    )
    out = image_to_array(msg)
    assert out.shape == (height, width) and out.dtype == np.uint8


# ------------------------------------------------------------------ malformed messages


def good_fields(**overrides):
    fields = dict(
        height=2, width=3, encoding="bgr8", is_bigendian=0, step=9, data=bytes(18)
    )
    fields.update(overrides)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize(
    "encoding", ["32FC1", "yuv422", "bayer_rggb8", "", "BGR8", "16UC1", "rgb16"]
)
def test_unsupported_encoding(encoding):
    with pytest.raises(ImageConversionError) as info:
        image_to_array(good_fields(encoding=encoding))
    message = str(info.value)
    assert repr(encoding) in message
    assert "unsupported" in message
    for supported in SUPPORTED_ENCODINGS:
        assert supported in message


def test_missing_encoding_attribute():
    msg = good_fields()
    del msg.encoding
    with pytest.raises(ImageConversionError, match="unsupported image encoding None"):
        image_to_array(msg)


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (dict(height=0, data=b""), ["height=0"]),
        (dict(width=0, step=0, data=b""), ["width=0"]),
        (dict(height=0, width=0, step=0, data=b""), ["height=0", "width=0"]),
        (dict(height=-1), ["height=-1"]),
        (dict(step=8, data=bytes(16)), ["step 8", "smaller", "9"]),
        (dict(step=0), ["step 0", "smaller"]),
        (dict(data=bytes(17)), ["expected", "18", "got 17"]),
        (dict(data=bytes(19)), ["expected", "18", "got 19"]),
        (dict(step=10, data=bytes(18)), ["expected", "20", "got 18"]),
        (dict(data=b""), ["empty"]),
        (dict(data=[]), ["empty"]),
        (dict(data=array.array("B")), ["empty"]),
        (dict(data=None), ["missing"]),
        (dict(data="abc"), ["str"]),
        (dict(data=[0, 1, 256] + [0] * 15), ["0..255"]),
        (dict(data=[0.5] * 18), ["0..255"]),
        (dict(height="2"), ["height", "integer"]),
        (dict(step=9.0), ["step", "integer"]),
    ],
)
def test_malformed_image(overrides, fragments):
    with pytest.raises(ImageConversionError) as info:
        image_to_array(good_fields(**overrides))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_mono16_step_counts_bytes_not_pixels():
    # width 3 mono16 needs 6 bytes per row; step=3 (pixels) is the classic mistake.
    msg = SimpleNamespace(
        height=2, width=3, encoding="mono16", is_bigendian=0, step=3, data=bytes(6)
    )
    with pytest.raises(ImageConversionError, match="step 3 is smaller"):
        image_to_array(msg)


def test_malformed_real_message(msgs):
    msg = msgs.Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(11))
    with pytest.raises(ImageConversionError, match="expected .* = 12 bytes, got 11"):
        image_to_array(msg)
    msg = msgs.Image(height=2, width=2, encoding="32FC1", step=8, data=bytes(16))
    with pytest.raises(ImageConversionError, match="32FC1"):
        image_to_array(msg)


# ------------------------------------------------------------------ cv_bridge path


class FakeBridge:
    """Stands in for cv_bridge.CvBridge: passthrough decode of a duck-typed message."""

    calls: list = []
    fail = False

    def imgmsg_to_cv2(self, msg, desired_encoding="passthrough"):
        FakeBridge.calls.append((msg.encoding, desired_encoding))
        if FakeBridge.fail:
            raise TypeError("boom from the bridge")
        channels, dtype = LAYOUT[msg.encoding]
        wire = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
        data = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
        rows = data[:, : msg.width * channels * wire.itemsize].copy()
        image = rows.view(wire).astype(dtype)
        return image.reshape((msg.height, msg.width, channels)[: 3 if channels > 1 else 2])


@pytest.fixture
def fake_bridge(monkeypatch):
    FakeBridge.calls = []
    FakeBridge.fail = False
    monkeypatch.setattr(ic, "CvBridge", FakeBridge)
    yield FakeBridge


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_bridge_path_round_trip(fake_bridge, encoding):
    image = random_image(encoding, 7, 5, seed=5)
    out = image_to_array(
        wire_message(to_wire(image, encoding), encoding, pad=2, data_type=list)
    )
    assert fake_bridge.calls == [(encoding, "passthrough")]
    check_output(out, encoding, 7, 5)
    np.testing.assert_array_equal(out, image)


def test_bridge_path_rgb_to_bgr(fake_bridge):
    wire = np.zeros((2, 2, 3), np.uint8)
    wire[...] = [255, 0, 0]
    assert (image_to_array(wire_message(wire, "rgb8")) == [0, 0, 255]).all()


def test_bridge_path_validates_before_calling_bridge(fake_bridge):
    with pytest.raises(ImageConversionError, match="yuv422"):
        image_to_array(good_fields(encoding="yuv422"))
    with pytest.raises(ImageConversionError, match="got 17"):
        image_to_array(good_fields(data=bytes(17)))
    assert fake_bridge.calls == []


def test_bridge_exceptions_become_conversion_errors(fake_bridge):
    fake_bridge.fail = True
    with pytest.raises(ImageConversionError, match="boom from the bridge") as info:
        image_to_array(good_fields())
    assert isinstance(info.value.__cause__, TypeError)


# ------------------------------------------------------------------ compressed


def compressed(data, fmt="png"):
    return SimpleNamespace(format=fmt, data=data)


def smooth_bgr(height=24, width=32):
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([x * 7 % 256, y * 9 % 256, (x + y) * 3 % 256]).astype(np.uint8)


@pytest.mark.parametrize(
    "image",
    [
        smooth_bgr(),
        smooth_bgr()[..., 0].copy(),
        np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8),
        np.random.default_rng(1).integers(0, 256, (5, 7, 4), dtype=np.uint8),
        np.random.default_rng(2).integers(0, 65536, (6, 3), dtype=np.uint16),
    ],
    ids=["bgr", "gray", "noise-bgr", "bgra", "gray16"],
)
def test_png_decodes_exactly(image):
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    out = compressed_to_array(compressed(encoded.tobytes(), "bgr8; png compressed bgr8"))
    assert out.dtype == image.dtype and out.shape == image.shape
    np.testing.assert_array_equal(out, image)


def test_jpeg_decodes_close():
    image = smooth_bgr()
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    out = compressed_to_array(compressed(encoded.tobytes(), "jpeg"))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - image.astype(int)).mean() < 4


def test_real_compressed_message(msgs):
    image = smooth_bgr()
    ok, encoded = cv2.imencode(".png", image)
    msg = msgs.CompressedImage(format="png", data=encoded.tobytes())
    np.testing.assert_array_equal(compressed_to_array(msg), image)


@pytest.mark.parametrize(
    "data",
    [b"not an image at all", bytes(100), b"\x89PNG\r\n\x1a\n" + bytes(20), [1, 2, 3]],
    ids=["text", "zeros", "truncated-png", "list"],
)
def test_corrupt_compressed_raises(data):
    with pytest.raises(ImageConversionError, match="cannot decode compressed image") as info:
        compressed_to_array(compressed(data, "jpeg"))
    assert "'jpeg'" in str(info.value)
    assert "corrupt or unsupported" in str(info.value)


def test_truncated_jpeg_is_not_silently_accepted_as_empty():
    ok, encoded = cv2.imencode(".jpg", smooth_bgr())
    head = encoded.tobytes()[:20]
    with pytest.raises(ImageConversionError, match="cannot decode"):
        compressed_to_array(compressed(head, "jpeg"))


@pytest.mark.parametrize("data", [b"", bytearray(), array.array("B"), [], None])
def test_empty_compressed_raises(data):
    with pytest.raises(ImageConversionError, match=r"cannot decode compressed image \(format 'png'\)"):
        compressed_to_array(compressed(data, "png"))
