"""Rosbag I/O (vprsnn_ros.io.bags) on small synthetic bags written in tmp_path."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores, get_typestore

from vprsnn_ros.errors import ConfigError, DataError
from vprsnn_ros.io.bags import (
    EARTH_RADIUS_M,
    BagFrames,
    bag_info,
    image_topics,
    is_bag,
    read_bag_frames,
    write_bag_from_folder,
)

NS = 1_000_000_000
START = 1_700_000_000_123_456_789
TS2 = get_typestore(Stores.LATEST)
TS1 = get_typestore(Stores.ROS1_NOETIC)
H, W = 12, 16


# --------------------------------------------------------------------------- helpers


def _images(n: int, gray: bool = False, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (H, W) if gray else (H, W, 3)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def _folder(tmp_path: Path, n: int = 5, gray: bool = False) -> tuple[Path, list]:
    folder = tmp_path / "imgs"
    folder.mkdir()
    images = _images(n, gray)
    for k, image in enumerate(images):
        assert cv2.imwrite(str(folder / f"frame_{k:03d}.png"), image)
    return folder, images


def _one_line_error(excinfo, *needles: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _time(ts, stamp_ns: int):
    return ts.types["builtin_interfaces/msg/Time"](sec=stamp_ns // NS, nanosec=stamp_ns % NS)


def _header(stamp_ns: int, frame_id: str = "camera", ts=TS2):
    Header = ts.types["std_msgs/msg/Header"]
    if ts is TS1:
        return Header(seq=0, stamp=_time(ts, stamp_ns), frame_id=frame_id)
    return Header(stamp=_time(ts, stamp_ns), frame_id=frame_id)


def _image_msg(image: np.ndarray, stamp_ns: int, ts=TS2, encoding: str = "bgr8"):
    data = image if encoding != "rgb8" else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return ts.types["sensor_msgs/msg/Image"](
        header=_header(stamp_ns, ts=ts),
        height=image.shape[0],
        width=image.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=data.strides[0],
        data=np.ascontiguousarray(data).reshape(-1),
    )


def _odometry(stamp_ns: int, x: float, qz: float = 0.0, qw: float = 1.0):
    t = TS2.types
    return t["nav_msgs/msg/Odometry"](
        header=_header(stamp_ns, "odom"),
        child_frame_id="base_link",
        pose=t["geometry_msgs/msg/PoseWithCovariance"](
            pose=t["geometry_msgs/msg/Pose"](
                position=t["geometry_msgs/msg/Point"](x=x, y=0.5, z=0.25),
                orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=qz, w=qw),
            ),
            covariance=np.zeros(36),
        ),
        twist=t["geometry_msgs/msg/TwistWithCovariance"](
            twist=t["geometry_msgs/msg/Twist"](
                linear=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
                angular=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
            ),
            covariance=np.zeros(36),
        ),
    )


def _navsatfix(stamp_ns: int, lat: float, lon: float, alt: float, status: int = 0):
    t = TS2.types
    return t["sensor_msgs/msg/NavSatFix"](
        header=_header(stamp_ns, "gps"),
        status=t["sensor_msgs/msg/NavSatStatus"](status=status, service=1),
        latitude=lat,
        longitude=lon,
        altitude=alt,
        position_covariance=np.zeros(9),
        position_covariance_type=0,
    )


def _write_bag2(path: Path, topics: dict[str, tuple[str, list]], storage: str = "mcap") -> Path:
    """topics: name -> (msgtype, [(receive_ns, message), ...])."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer2(path, version=9, storage_plugin=plugin) as writer:
        records = []
        for name, (msgtype, messages) in topics.items():
            connection = writer.add_connection(name, msgtype, typestore=TS2)
            records += [(t, connection, msgtype, m) for t, m in messages]
        for t, connection, msgtype, message in sorted(records, key=lambda r: r[0]):
            writer.write(connection, t, TS2.serialize_cdr(message, msgtype))
    return path


def _pose_bag(tmp_path: Path, kind: str, n: int = 10) -> tuple[Path, list[np.ndarray]]:
    """Images at 10 Hz moving 1 m per frame; pose messages 3 ms after each frame."""
    images = _images(n)
    stamps = [START + k * NS // 10 for k in range(n)]
    frames = [(t, _image_msg(img, t)) for t, img in zip(stamps, images)]
    later = [t + 3_000_000 for t in stamps]
    if kind == "odom":
        poses = [(t, _odometry(t, float(k), qz=0.6, qw=0.8)) for k, t in enumerate(later)]
        pose_topic = "/odom", ("nav_msgs/msg/Odometry", poses)
    else:
        lat0, lon0 = 48.0, 11.0
        dlat = math.degrees(1.0 / EARTH_RADIUS_M)  # 1 m north per frame
        poses = [(t, _navsatfix(t, lat0 + k * dlat, lon0, 500.0)) for k, t in enumerate(later)]
        no_fix = stamps[2] + 1  # skipped: STATUS_NO_FIX
        poses.append((no_fix, _navsatfix(no_fix, 0.0, 0.0, 0.0, status=-1)))
        pose_topic = "/fix", ("sensor_msgs/msg/NavSatFix", poses)
    topics = {"/cam": ("sensor_msgs/msg/Image", frames), pose_topic[0]: pose_topic[1]}
    return _write_bag2(tmp_path / f"bag_{kind}", topics), images


# --------------------------------------------------------------------------- write, read back


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("compressed", [False, True])
def test_write_from_folder_and_read_back(tmp_path, storage, compressed):
    folder, images = _folder(tmp_path)
    out = tmp_path / "out_bag"
    result = write_bag_from_folder(
        folder, out, rate_hz=4.0, storage=storage, compressed=compressed, start_time_ns=START
    )
    assert result == out and is_bag(out)
    assert _leftovers(tmp_path) == ["imgs", "out_bag"]  # no temp folder left
    ext = ".mcap" if storage == "mcap" else ".db3"
    assert (out / f"out_bag{ext}").is_file()

    frames = read_bag_frames(out)
    assert isinstance(frames, BagFrames) and len(frames) == len(images)
    expected = START + np.arange(len(images), dtype=np.int64) * (NS // 4)
    np.testing.assert_array_equal(frames.stamps_ns, expected)
    assert frames.stamps_ns.dtype == np.int64
    assert frames.names == [f"/camera/image_raw@{s}" for s in expected]
    assert len(set(frames.names)) == len(frames.names)
    for got, want in zip(frames.images, images):
        assert got.dtype == np.uint8 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert frames.poses is None and frames.pose_frame is None

    # Message type, header frame id and bag receive times as specified.
    with AnyReader([out]) as reader:
        (connection,) = reader.connections
        want_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        assert connection.msgtype == want_type
        for k, (conn, t, raw) in enumerate(reader.messages()):
            msg = reader.deserialize(raw, conn.msgtype)
            assert msg.header.frame_id == "camera" and t == expected[k]
            if compressed:
                assert msg.format == "bgr8; png compressed bgr8"
            else:
                assert msg.encoding == "bgr8"


def test_gray_folder_is_mono8(tmp_path):
    folder, images = _folder(tmp_path, n=3, gray=True)
    out = write_bag_from_folder(
        folder, tmp_path / "gray", topic="/mono", frame_id="cam0", start_time_ns=START
    )
    with AnyReader([out]) as reader:
        msgs = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()]
    assert {m.encoding for m in msgs} == {"mono8"} and {m.header.frame_id for m in msgs} == {"cam0"}
    frames = read_bag_frames(out, topic="/mono")
    assert [f.shape for f in frames.images] == [(H, W)] * 3
    for got, want in zip(frames.images, images):
        np.testing.assert_array_equal(got, want)


def test_ros1_bag_with_zero_stamps_uses_receive_time(tmp_path):
    images = _images(4)
    path = tmp_path / "old.bag"
    with Writer1(path) as writer:
        connection = writer.add_connection("/cam", "sensor_msgs/msg/Image", typestore=TS1)
        for k, image in enumerate(images):
            stamp = 0 if k == 1 else START + k * NS  # frame 1 has a zero header stamp
            msg = _image_msg(image, stamp, ts=TS1, encoding="rgb8")
            raw = TS1.serialize_ros1(msg, "sensor_msgs/msg/Image")
            writer.write(connection, START + k * NS + 7, raw)
    assert is_bag(path)
    frames = read_bag_frames(path, progress=True)
    assert list(frames.stamps_ns) == [START, START + NS + 7, START + 2 * NS, START + 3 * NS]
    for got, want in zip(frames.images, images):  # rgb8 on the wire -> BGR
        np.testing.assert_array_equal(got, want)
    (info,) = bag_info(path)
    assert (info.topic, info.msgtype, info.count) == ("/cam", "sensor_msgs/msg/Image", 4)
    assert not info.is_pose
    assert info.rate_hz == pytest.approx(1.0)


def test_bare_mcap_file_is_a_bag(tmp_path):
    folder, images = _folder(tmp_path, n=2)
    out = write_bag_from_folder(folder, tmp_path / "b", start_time_ns=START)
    bare = out / "b.mcap"
    assert is_bag(bare)
    assert len(read_bag_frames(bare)) == 2


# --------------------------------------------------------------------------- sampling


@pytest.fixture(scope="module")
def ten_frame_bag(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ten")
    folder, images = _folder(tmp, n=10)
    out = write_bag_from_folder(folder, tmp / "ten", rate_hz=10.0, start_time_ns=START)
    return out, images


def test_every_k(ten_frame_bag):
    path, images = ten_frame_bag
    frames = read_bag_frames(path, every=3)
    np.testing.assert_array_equal(frames.stamps_ns, START + np.array([0, 3, 6, 9]) * (NS // 10))
    for got, k in zip(frames.images, [0, 3, 6, 9]):
        np.testing.assert_array_equal(got, images[k])


def test_every_seconds_and_limit(ten_frame_bag):
    path, _ = ten_frame_bag
    frames = read_bag_frames(path, every_seconds=0.25)  # >= 0.25 s since the last kept frame
    np.testing.assert_array_equal(frames.stamps_ns, START + np.array([0, 3, 6, 9]) * (NS // 10))
    assert len(read_bag_frames(path, every_seconds=0.2)) == 5
    limited = read_bag_frames(path, every=3, limit=2)
    np.testing.assert_array_equal(limited.stamps_ns, START + np.array([0, 3]) * (NS // 10))
    assert len(read_bag_frames(path, limit=4)) == 4


def test_sampling_options_are_checked(ten_frame_bag):
    path, _ = ten_frame_bag
    for kwargs in (
        {"every": 2, "every_seconds": 1.0},
        {"every_seconds": 1.0, "every_metres": 2.0},
        {"every": 0},
        {"every_seconds": -1.0},
        {"every_metres": float("nan")},
        {"limit": 0},
    ):
        with pytest.raises(ConfigError):
            read_bag_frames(path, **kwargs)


def test_every_metres_without_pose_topic(ten_frame_bag):
    path, _ = ten_frame_bag
    with pytest.raises(DataError) as excinfo:
        read_bag_frames(path, every_metres=2.0)
    _one_line_error(excinfo, str(path), "no pose topic")


def test_every_metres_with_odometry(tmp_path):
    path, images = _pose_bag(tmp_path, "odom")
    frames = read_bag_frames(path, every_metres=2.5)
    kept = [0, 3, 6, 9]
    np.testing.assert_array_equal(frames.stamps_ns, START + np.array(kept) * (NS // 10))
    for got, k in zip(frames.images, kept):
        np.testing.assert_array_equal(got, images[k])
    assert frames.pose_frame == "odom"
    expected = np.array([[k, 0.5, 0.25, 0.0, 0.0, 0.6, 0.8] for k in kept], dtype=np.float64)
    np.testing.assert_allclose(frames.poses, expected)
    # Without distance sampling the poses are still attached, one per frame.
    every = read_bag_frames(path, topic="/cam", pose_topic="/odom")
    assert every.poses.shape == (10, 7)
    np.testing.assert_allclose(every.poses[:, 0], np.arange(10))
    infos = bag_info(path)
    assert [(i.topic, i.msgtype, i.count, i.is_pose) for i in infos] == [
        ("/cam", "sensor_msgs/msg/Image", 10, False),
        ("/odom", "nav_msgs/msg/Odometry", 10, True),
    ]
    assert infos[0].rate_hz == pytest.approx(10.0) and infos[1].rate_hz == pytest.approx(10.0)
    assert [i.topic for i in image_topics(path)] == ["/cam"]


def test_every_metres_with_navsatfix(tmp_path):
    path, _ = _pose_bag(tmp_path, "fix")
    frames = read_bag_frames(path, every_metres=2.5)
    kept = np.array([0, 3, 6, 9])
    np.testing.assert_array_equal(frames.stamps_ns, START + kept * (NS // 10))
    assert frames.pose_frame == "gnss_local"
    np.testing.assert_allclose(frames.poses[:, 0], 0.0, atol=1e-6)  # east
    np.testing.assert_allclose(frames.poses[:, 1], kept, atol=1e-6)  # north
    np.testing.assert_allclose(frames.poses[:, 2], 0.0, atol=1e-9)  # up (altitude - first)
    np.testing.assert_array_equal(frames.poses[:, 3:], [[0.0, 0.0, 0.0, 1.0]] * 4)


# --------------------------------------------------------------------------- bad bags


def _string(text: str):
    return TS2.types["std_msgs/msg/String"](data=text)


def test_missing_and_wrong_type_topics(tmp_path):
    frames = [(START + k, _image_msg(img, START + k)) for k, img in enumerate(_images(2))]
    path = _write_bag2(tmp_path / "mixed", {
        "/cam": ("sensor_msgs/msg/Image", frames),
        "/chatter": ("std_msgs/msg/String", [(START, _string("hi"))]),
    })
    with pytest.raises(DataError) as excinfo:
        read_bag_frames(path, topic="/nope")
    _one_line_error(excinfo, str(path), "/nope", "/cam", "/chatter")
    with pytest.raises(DataError) as excinfo:
        read_bag_frames(path, topic="/chatter")
    _one_line_error(
        excinfo, str(path), "/chatter", "std_msgs/msg/String", "not an image topic", "/cam"
    )
    with pytest.raises(DataError) as excinfo:
        read_bag_frames(path, topic="/cam", pose_topic="/chatter")
    _one_line_error(excinfo, str(path), "/chatter", "not a pose topic")
    assert len(read_bag_frames(path)) == 2  # the only image topic


def test_two_image_topics_need_a_choice(tmp_path):
    a = [(START + k, _image_msg(img, START + k)) for k, img in enumerate(_images(2))]
    b = [(START + 9 + k, _image_msg(im, START + 9 + k)) for k, im in enumerate(_images(3, seed=1))]
    topics = {"/left": ("sensor_msgs/msg/Image", a), "/right": ("sensor_msgs/msg/Image", b)}
    path = _write_bag2(tmp_path / "two", topics, storage="sqlite3")
    with pytest.raises(DataError) as excinfo:
        read_bag_frames(path)
    _one_line_error(excinfo, str(path), "2 image topics", "/left", "/right")
    assert len(read_bag_frames(path, topic="/right")) == 3
    assert [(i.topic, i.count) for i in image_topics(path)] == [("/left", 2), ("/right", 3)]


def test_empty_bag(tmp_path):
    path = _write_bag2(tmp_path / "empty", {"/cam": ("sensor_msgs/msg/Image", [])})
    with pytest.raises(DataError) as excinfo:
        read_bag_frames(path)
    _one_line_error(excinfo, str(path), "has no frames on /cam")
    assert [(i.topic, i.count, i.rate_hz) for i in bag_info(path)] == [("/cam", 0, 0.0)]
    nothing = _write_bag2(tmp_path / "nothing", {})
    with pytest.raises(DataError) as excinfo:
        read_bag_frames(nothing)
    _one_line_error(excinfo, str(nothing), "no image topics")


def test_truncated_mcap(tmp_path):
    folder, _ = _folder(tmp_path, n=4)
    out = write_bag_from_folder(folder, tmp_path / "cut", storage="mcap", start_time_ns=START)
    data_file = out / "cut.mcap"
    data = data_file.read_bytes()
    data_file.write_bytes(data[: len(data) // 2])
    for call in (read_bag_frames, bag_info):
        with pytest.raises(DataError) as excinfo:
            call(out)
        _one_line_error(excinfo, str(out), "truncated or corrupted")


def test_corrupted_sqlite3(tmp_path):
    folder, _ = _folder(tmp_path, n=4)
    out = write_bag_from_folder(folder, tmp_path / "bad", storage="sqlite3", start_time_ns=START)
    db = out / "bad.db3"
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    middle = (len(data) // 2) // page * page
    data[middle : middle + 2 * page] = b"\xff" * (2 * page)  # two whole pages of garbage
    db.write_bytes(bytes(data))
    with pytest.raises(DataError) as excinfo:
        read_bag_frames(out)
    _one_line_error(excinfo, str(out))


def test_not_a_bag(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    fake = tmp_path / "fake.mcap"
    fake.write_bytes(b"not an mcap file at all")
    empty_dir = tmp_path / "folder"
    empty_dir.mkdir()
    assert not is_bag(text) and not is_bag(empty_dir) and not is_bag(tmp_path / "missing")
    for path, needle in (
        (text, "not a rosbag"),
        (empty_dir, "not a rosbag"),
        (tmp_path / "missing", "does not exist"),
        (fake, "cannot read bag"),
    ):
        for call in (read_bag_frames, bag_info):
            with pytest.raises(DataError) as excinfo:
                call(path)
            _one_line_error(excinfo, str(path), needle)


def test_corrupt_frame_payload_names_the_frame(tmp_path):
    CompressedImage = TS2.types["sensor_msgs/msg/CompressedImage"]
    ok, png = cv2.imencode(".png", _images(1)[0])
    good = CompressedImage(header=_header(START), format="png", data=png.reshape(-1))
    junk = np.arange(9, dtype=np.uint8)
    bad = CompressedImage(header=_header(START + 5), format="png", data=junk)
    path = _write_bag2(
        tmp_path / "payload",
        {"/c": ("sensor_msgs/msg/CompressedImage", [(START, good), (START + 5, bad)])},
    )
    assert len(read_bag_frames(path, limit=1)) == 1  # the bad frame is never decoded
    with pytest.raises(DataError) as excinfo:
        read_bag_frames(path)
    _one_line_error(excinfo, str(path), "frame 1", "/c")


def test_repeated_stamps_get_unique_names(tmp_path):
    frames = [(START + k, _image_msg(img, START)) for k, img in enumerate(_images(3))]
    path = _write_bag2(tmp_path / "same", {"/cam": ("sensor_msgs/msg/Image", frames)})
    got = read_bag_frames(path)
    assert got.names == ["/cam@%d" % START, "/cam@%d#2" % START, "/cam@%d#3" % START]
    assert list(got.stamps_ns) == [START] * 3


# --------------------------------------------------------------------------- bad writes


def test_write_refuses_existing_output(tmp_path):
    folder, _ = _folder(tmp_path, n=2)
    existing = tmp_path / "exists"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    with pytest.raises(DataError) as excinfo:
        write_bag_from_folder(folder, existing, start_time_ns=START)
    _one_line_error(excinfo, str(existing), "refusing to overwrite")
    assert _leftovers(existing) == ["keep.txt"]
    assert _leftovers(tmp_path) == ["exists", "imgs"]


def test_write_from_folder_without_images(tmp_path):
    folder = tmp_path / "empty_imgs"
    folder.mkdir()
    (folder / "readme.txt").write_text("no images here")
    out = tmp_path / "never"
    with pytest.raises(DataError) as excinfo:
        write_bag_from_folder(folder, out, start_time_ns=START)
    _one_line_error(excinfo, "no images", str(folder))
    assert _leftovers(tmp_path) == ["empty_imgs"]


def test_failed_write_leaves_nothing(tmp_path):
    folder, _ = _folder(tmp_path, n=3)
    (folder / "frame_001.png").write_bytes(b"\x89PNG garbage")  # unreadable second image
    out = tmp_path / "partial"
    with pytest.raises(DataError) as excinfo:
        write_bag_from_folder(folder, out, storage="sqlite3", start_time_ns=START)
    _one_line_error(excinfo, str(out), "frame_001.png")
    assert _leftovers(tmp_path) == ["imgs"]


def test_write_options_are_checked(tmp_path):
    folder, _ = _folder(tmp_path, n=1)
    for kwargs in ({"storage": "zip"}, {"rate_hz": 0.0}, {"topic": ""}, {"start_time_ns": -1}):
        with pytest.raises(ConfigError):
            write_bag_from_folder(folder, tmp_path / "x", **kwargs)
    assert _leftovers(tmp_path) == ["imgs"]


def test_module_does_not_import_rclpy():
    code = "import sys, vprsnn_ros.io.bags; assert 'rclpy' not in sys.modules, 'rclpy imported'"
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
