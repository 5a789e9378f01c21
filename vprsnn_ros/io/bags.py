"""Rosbag input/output: places from image topics, and bags from image folders.

Reads rosbag2 (sqlite3 or mcap storage; a bag directory with ``metadata.yaml``
or a bare ``.db3`` / ``.mcap`` file) and ROS 1 ``.bag`` files with
:mod:`rosbags` (no ROS install needed; this module never imports rclpy).

Image topics are ``sensor_msgs/msg/Image`` or ``sensor_msgs/msg/CompressedImage``.
Frames decode exactly as on a live topic: :func:`read_bag_frames` uses
:func:`vprsnn_ros.io.image_msgs.image_to_array` and
:func:`~vprsnn_ros.io.image_msgs.compressed_to_array`.

Place sampling (applied while reading, so only kept frames are decoded):

* ``every=k``: frames 0, k, 2k, ... of the topic (bag order);
* ``every_seconds=t``: the first frame, then each frame whose stamp is at
  least ``t`` s from the last kept frame's stamp;
* ``every_metres=d``: the first frame, then each frame after travelling at
  least ``d`` m since the last kept frame.  Travel is the path length along the
  frames' positions (each frame takes the position of the pose message nearest
  in time; no interpolation).

A frame's stamp is its ``header.stamp``, or the bag receive time when the
header stamp is zero.  Pose topics are ``nav_msgs/msg/Odometry`` (position and
orientation, frame ``header.frame_id``) and ``sensor_msgs/msg/NavSatFix``
(latitude/longitude/altitude converted to local metres with an equirectangular
projection around the first fix, x east, y north, z up; identity orientation;
frame ``"gnss_local"``; fixes with ``STATUS_NO_FIX`` or a non-finite
latitude/longitude are skipped).  Poses are returned whenever a pose topic is
chosen (``pose_topic``) or the bag has exactly one.

Every bad input raises :class:`~vprsnn_ros.errors.DataError` with a one-line
message naming the bag; inconsistent options raise
:class:`~vprsnn_ros.errors.ConfigError`.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vprsnn_ros.atomic import TEMP_SUFFIX
from vprsnn_ros.errors import ConfigError, DataError
from vprsnn_ros.io.dataset import list_images, read_image
from vprsnn_ros.io.image_msgs import compressed_to_array, image_to_array

__all__ = [
    "IMAGE_TYPES",
    "POSE_TYPES",
    "BAG_SUFFIXES",
    "EARTH_RADIUS_M",
    "TopicInfo",
    "BagFrames",
    "is_bag",
    "image_topics",
    "bag_info",
    "read_bag_frames",
    "write_bag_from_folder",
]

IMAGE_MSG = "sensor_msgs/msg/Image"
COMPRESSED_MSG = "sensor_msgs/msg/CompressedImage"
ODOMETRY_MSG = "nav_msgs/msg/Odometry"
NAVSATFIX_MSG = "sensor_msgs/msg/NavSatFix"
IMAGE_TYPES = (IMAGE_MSG, COMPRESSED_MSG)
POSE_TYPES = (ODOMETRY_MSG, NAVSATFIX_MSG)
BAG_SUFFIXES = (".mcap", ".db3", ".bag")
STORAGES = ("mcap", "sqlite3")
#: WGS84 semi-major axis, radius of the equirectangular NavSatFix projection.
EARTH_RADIUS_M = 6378137.0
GNSS_FRAME = "gnss_local"

_NS = 1_000_000_000
_INT32_MAX = 2**31 - 1
_NATIVE_BIG_ENDIAN = sys.byteorder == "big"


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class TopicInfo:
    """One image (or pose) topic of a bag.

    ``rate_hz`` is ``(count - 1) / duration`` over the bag receive times of the
    topic's messages; 0.0 when it is undefined (fewer than 2 messages or zero
    duration).  ``is_pose`` flags Odometry / NavSatFix topics.
    """

    topic: str
    msgtype: str
    count: int
    rate_hz: float = 0.0
    is_pose: bool = False


@dataclass(frozen=True)
class BagFrames:
    """Places read from a bag, in order (the bag counterpart of a folder's PlaceList).

    ``names[i]`` is ``"<topic>@<stamp_ns>"`` (``#2``, ``#3``... appended to
    repeated stamps so names are unique), ``stamps_ns`` int64 nanoseconds,
    ``images`` decoded arrays (BGR / BGRA / gray, uint8 / uint16), ``poses``
    float64 ``(n, 7)`` rows ``x, y, z, qx, qy, qz, qw`` in ``pose_frame``, or None.
    """

    names: list[str]
    stamps_ns: np.ndarray
    images: list[np.ndarray]
    poses: np.ndarray | None = None
    pose_frame: str | None = None

    def __post_init__(self) -> None:
        n = len(self.names)
        if len(self.stamps_ns) != n or len(self.images) != n:
            raise DataError(
                f"bag frames are inconsistent: {n} names, {len(self.stamps_ns)} stamps, "
                f"{len(self.images)} images"
            )
        if self.poses is not None and np.shape(self.poses) != (n, 7):
            raise DataError(f"bag frame poses must have shape ({n}, 7), got {np.shape(self.poses)}")

    def __len__(self) -> int:
        return len(self.names)


# --------------------------------------------------------------------------- rosbags plumbing


def _rosbags() -> Any:
    """Import rosbags lazily (a clear DataError if it is missing)."""
    try:
        import rosbags.highlevel  # noqa: F401
        import rosbags.rosbag1  # noqa: F401
        import rosbags.rosbag2  # noqa: F401
        import rosbags.serde  # noqa: F401
        import rosbags.typesys  # noqa: F401
    except ImportError as err:  # pragma: no cover - rosbags is a dependency
        raise DataError(f"reading/writing bags needs the 'rosbags' package: {err}") from None
    import rosbags

    return rosbags


def _read_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean 'this bag cannot be read' (never our own DataError)."""
    rb = _rosbags()
    errors: list[type[BaseException]] = [
        rb.highlevel.AnyReaderError,
        rb.rosbag1.ReaderError,
        rb.rosbag2.ReaderError,
        rb.serde.SerdeError,
        rb.typesys.TypesysError,
        sqlite3.Error,
        struct.error,
        OSError,
        EOFError,
        ValueError,  # includes UnicodeDecodeError
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        ArithmeticError,
        AssertionError,
        RuntimeError,  # lz4 frame errors
        MemoryError,  # absurd lengths in corrupt records
    ]
    with suppress(ImportError):
        import apsw

        errors.append(apsw.Error)
    for module, name in (("backports.zstd", "ZstdError"), ("compression.zstd", "ZstdError")):
        with suppress(ImportError, AttributeError):
            errors.append(getattr(__import__(module, fromlist=[name]), name))
    return tuple(e for e in errors if not issubclass(e, DataError))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _read_failure(path: Path, err: BaseException) -> DataError:
    if isinstance(err, OSError) and not type(err).__module__.startswith("rosbags"):
        detail = err.strerror or str(err) or type(err).__name__
        return DataError(f"cannot read bag {path}: {_one_line(detail)}")
    detail = _one_line(str(err)) or type(err).__name__
    return DataError(f"cannot read bag {path}: file is truncated or corrupted ({detail})")


def _typestore() -> Any:
    rb = _rosbags()
    return rb.typesys.get_typestore(rb.typesys.Stores.LATEST)


def is_bag(path: str | os.PathLike[str]) -> bool:
    """True for a rosbag2 directory (with metadata.yaml), a .mcap/.db3 file or a ROS 1 .bag file."""
    path = Path(path)
    if path.is_dir():
        return (path / "metadata.yaml").is_file()
    return path.is_file() and path.suffix.lower() in BAG_SUFFIXES


def _check_bag_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"bag does not exist: {path}")
    if not is_bag(path):
        if path.is_dir():
            raise DataError(f"not a rosbag: {path} is a folder without metadata.yaml")
        raise DataError(
            f"not a rosbag: {path} (expected a rosbag2 folder with metadata.yaml, "
            f"or a {', '.join(BAG_SUFFIXES)} file)"
        )
    if path.is_dir() and path.suffix == ".bag":
        # rosbags treats every *.bag path as a ROS 1 bag file.
        raise DataError(
            f"cannot read bag {path}: rename this rosbag2 folder, its name must not end in .bag"
        )
    if path.suffix != path.suffix.lower() and path.is_file():
        # rosbags dispatches on the exact suffix.
        raise DataError(
            f"cannot read bag {path}: rename it with a lower-case {path.suffix.lower()} suffix"
        )
    return path


@contextmanager
def _open_bag(path: str | os.PathLike[str]) -> Iterator[tuple[Path, Any]]:
    """Open ``path`` with AnyReader; opening errors become DataError."""
    path = _check_bag_path(path)
    rb = _rosbags()
    errors = _read_errors()
    try:
        reader = rb.highlevel.AnyReader([path], default_typestore=_typestore())
        reader.open()
    except errors as err:
        raise _read_failure(path, err) from None
    try:
        yield path, reader
    finally:
        with suppress(Exception):
            reader.close()


def _iter_messages(
    path: Path, reader: Any, connections: list[Any]
) -> Iterator[tuple[Any, int, bytes]]:
    """``reader.messages(connections)`` with read errors turned into DataError."""
    if not connections:  # an empty list would mean "all connections" to rosbags
        return
    errors = _read_errors()
    iterator = reader.messages(connections=connections)
    try:
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except errors as err:
                raise _read_failure(path, err) from None
            yield item
    finally:
        with suppress(Exception):
            iterator.close()


def _deserialize(path: Path, reader: Any, raw: bytes, connection: Any) -> Any:
    try:
        return reader.deserialize(raw, connection.msgtype)
    except _read_errors() as err:
        raise DataError(
            f"cannot read bag {path}: corrupted {connection.msgtype} message on "
            f"{connection.topic} ({_one_line(str(err)) or type(err).__name__})"
        ) from None


@dataclass
class _Topic:
    name: str
    msgtype: str
    count: int
    connections: list[Any]


def _topic_table(reader: Any) -> dict[str, _Topic]:
    """Topics of an open reader, by name (counts from the bag index)."""
    table: dict[str, _Topic] = {}
    types: dict[str, set[str]] = {}
    for connection in reader.connections:
        entry = table.setdefault(connection.topic, _Topic(connection.topic, "", 0, []))
        entry.connections.append(connection)
        entry.count += max(int(connection.msgcount or 0), 0)
        types.setdefault(connection.topic, set()).add(connection.msgtype)
    for name, entry in table.items():
        entry.msgtype = " | ".join(sorted(types[name]))  # mixed types match no known type
    return dict(sorted(table.items()))


def _describe(topics: dict[str, _Topic] | list[_Topic]) -> str:
    entries = list(topics.values()) if isinstance(topics, dict) else list(topics)
    if not entries:
        return "none"
    return ", ".join(
        f"{t.name} ({t.msgtype}, {t.count} msg{'' if t.count == 1 else 's'})" for t in entries
    )


def _of_types(table: dict[str, _Topic], types: tuple[str, ...]) -> dict[str, _Topic]:
    return {name: t for name, t in table.items() if t.msgtype in types}


def _select_image_topic(path: Path, table: dict[str, _Topic], topic: str | None) -> _Topic:
    images = _of_types(table, IMAGE_TYPES)
    if topic is None:
        if len(images) == 1:
            return next(iter(images.values()))
        if not images:
            raise DataError(
                f"bag {path} has no image topics ({IMAGE_MSG} or {COMPRESSED_MSG}); "
                f"its topics: {_describe(table)}"
            )
        raise DataError(
            f"bag {path} has {len(images)} image topics, choose one: {_describe(images)}"
        )
    if not isinstance(topic, str) or not topic:
        raise ConfigError(f"image topic must be a non-empty string, got {topic!r}")
    if topic not in table:
        raise DataError(
            f"bag {path} has no topic {topic}; image topics: {_describe(images)}; "
            f"all topics: {_describe(table)}"
        )
    chosen = table[topic]
    if chosen.msgtype not in IMAGE_TYPES:
        raise DataError(
            f"topic {topic} in bag {path} is {chosen.msgtype}, not an image topic "
            f"({IMAGE_MSG} or {COMPRESSED_MSG}); image topics: {_describe(images)}"
        )
    return chosen


def _select_pose_topic(
    path: Path, table: dict[str, _Topic], pose_topic: str | None, needed: bool
) -> _Topic | None:
    poses = _of_types(table, POSE_TYPES)
    if pose_topic is None:
        if len(poses) == 1:
            return next(iter(poses.values()))
        if not needed:
            return None
        if not poses:
            raise DataError(
                f"bag {path} has no pose topic ({ODOMETRY_MSG} or {NAVSATFIX_MSG}) for "
                f"every_metres; its topics: {_describe(table)}"
            )
        raise DataError(
            f"bag {path} has {len(poses)} pose topics, choose one with pose_topic: "
            f"{_describe(poses)}"
        )
    if not isinstance(pose_topic, str) or not pose_topic:
        raise ConfigError(f"pose topic must be a non-empty string, got {pose_topic!r}")
    if pose_topic not in table:
        raise DataError(
            f"bag {path} has no topic {pose_topic}; pose topics: {_describe(poses)}; "
            f"all topics: {_describe(table)}"
        )
    chosen = table[pose_topic]
    if chosen.msgtype not in POSE_TYPES:
        raise DataError(
            f"topic {pose_topic} in bag {path} is {chosen.msgtype}, not a pose topic "
            f"({ODOMETRY_MSG} or {NAVSATFIX_MSG}); pose topics: {_describe(poses)}"
        )
    return chosen


def _stamp_ns(msg: Any, receive_ns: int) -> int:
    """Header stamp in ns, or the bag receive time when the header stamp is zero."""
    header = getattr(msg, "header", None)
    stamp = getattr(header, "stamp", None)
    sec = int(getattr(stamp, "sec", 0) or 0)
    nanosec = int(getattr(stamp, "nanosec", 0) or 0)
    if sec == 0 and nanosec == 0:
        return int(receive_ns)
    return sec * _NS + nanosec


# --------------------------------------------------------------------------- info


def bag_info(path: str | os.PathLike[str]) -> list[TopicInfo]:
    """Image topics (sorted by name), then pose topics (``is_pose=True``), with counts and rates.

    Counts and rates come from one pass over the messages of those topics (raw
    bytes only, nothing is deserialized), so a truncated bag is detected.
    """
    with _open_bag(path) as (path, reader):
        table = _topic_table(reader)
        wanted = {**_of_types(table, IMAGE_TYPES), **_of_types(table, POSE_TYPES)}
        counts = {name: 0 for name in wanted}
        first: dict[str, int] = {}
        last: dict[str, int] = {}
        connections = [c for t in wanted.values() for c in t.connections]
        for connection, receive_ns, _raw in _iter_messages(path, reader, connections):
            name = connection.topic
            counts[name] += 1
            first.setdefault(name, receive_ns)
            first[name] = min(first[name], receive_ns)
            last[name] = max(last.get(name, receive_ns), receive_ns)
    infos = []
    for name, t in wanted.items():
        n = counts[name]
        duration = (last[name] - first[name]) / _NS if n else 0.0
        rate = (n - 1) / duration if n >= 2 and duration > 0 else 0.0
        infos.append(TopicInfo(name, t.msgtype, n, float(rate), t.msgtype in POSE_TYPES))
    infos.sort(key=lambda info: (info.is_pose, info.topic))
    return infos


def image_topics(path: str | os.PathLike[str]) -> list[TopicInfo]:
    """The image topics of a bag (see :func:`bag_info`), sorted by name."""
    return [info for info in bag_info(path) if not info.is_pose]


# --------------------------------------------------------------------------- poses


@dataclass
class _PoseTrack:
    stamps_ns: np.ndarray  # sorted int64
    poses: np.ndarray  # (n, 7) float64
    frame: str

    def nearest(self, stamp_ns: int) -> np.ndarray:
        stamps = self.stamps_ns
        i = int(np.searchsorted(stamps, stamp_ns))
        if i >= len(stamps):
            i = len(stamps) - 1
        elif i > 0 and stamp_ns - stamps[i - 1] <= stamps[i] - stamp_ns:
            i -= 1
        return self.poses[i]


def _read_pose_track(path: Path, reader: Any, topic: _Topic) -> _PoseTrack | None:
    """All valid poses of ``topic`` sorted by stamp, or None when there are none."""
    stamps: list[int] = []
    rows: list[tuple[float, ...]] = []
    frame: str | None = None
    origin: tuple[float, float, float] | None = None
    try:
        for connection, receive_ns, raw in _iter_messages(path, reader, topic.connections):
            msg = _deserialize(path, reader, raw, connection)
            stamp = _stamp_ns(msg, receive_ns)
            if connection.msgtype == ODOMETRY_MSG:
                p = msg.pose.pose.position
                q = msg.pose.pose.orientation
                row = (p.x, p.y, p.z, q.x, q.y, q.z, q.w)
                if frame is None:
                    frame = str(msg.header.frame_id)
            else:  # NavSatFix
                lat, lon, alt = float(msg.latitude), float(msg.longitude), float(msg.altitude)
                if int(msg.status.status) < 0 or not (math.isfinite(lat) and math.isfinite(lon)):
                    continue  # STATUS_NO_FIX or no position
                if not math.isfinite(alt):
                    alt = origin[2] if origin is not None else 0.0
                if origin is None:
                    origin = (lat, lon, alt)
                lat0, lon0, alt0 = origin
                x = EARTH_RADIUS_M * math.radians(lon - lon0) * math.cos(math.radians(lat0))
                y = EARTH_RADIUS_M * math.radians(lat - lat0)
                row = (x, y, alt - alt0, 0.0, 0.0, 0.0, 1.0)
                frame = GNSS_FRAME
            stamps.append(stamp)
            rows.append(tuple(float(v) for v in row))
    except (AttributeError, TypeError, ValueError) as err:
        raise DataError(
            f"cannot read bag {path}: malformed message on pose topic {topic.name} "
            f"({_one_line(str(err))})"
        ) from None
    if not stamps:
        return None
    # NavSatFix origin is the first fix in bag order; poses sorted by stamp for lookup.
    order = np.argsort(np.asarray(stamps, dtype=np.int64), kind="stable")
    return _PoseTrack(
        np.asarray(stamps, dtype=np.int64)[order],
        np.asarray(rows, dtype=np.float64)[order],
        frame or "",
    )


# --------------------------------------------------------------------------- frames


def _check_options(
    every: Any, every_seconds: Any, every_metres: Any, limit: Any
) -> tuple[int, float | None, float | None, int | None]:
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise ConfigError(f"every must be an integer >= 1, got {every!r}")
    every = int(every)

    def positive(name: str, value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ConfigError(f"{name} must be a number > 0, got {value!r}")
        value = float(value)
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
        return value

    every_seconds = positive("every_seconds", every_seconds)
    every_metres = positive("every_metres", every_metres)
    chosen = [
        name
        for name, given in (
            ("every", every != 1),
            ("every_seconds", every_seconds is not None),
            ("every_metres", every_metres is not None),
        )
        if given
    ]
    if len(chosen) > 1:
        raise ConfigError(
            f"give at most one of every / every_seconds / every_metres, got {' and '.join(chosen)}"
        )
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
            raise ConfigError(f"limit must be an integer >= 1 or None, got {limit!r}")
        limit = int(limit)
    return every, every_seconds, every_metres, limit


def _decode(msg: Any, msgtype: str) -> np.ndarray:
    image = compressed_to_array(msg) if msgtype == COMPRESSED_MSG else image_to_array(msg)
    # image_to_array may return a view of the message bytes, which would keep the
    # whole (decompressed) bag chunk alive: keep an owned copy instead.
    if not image.flags.owndata or not image.flags.writeable:
        image = image.copy()
    return image


def read_bag_frames(
    path: str | os.PathLike[str],
    topic: str | None = None,
    every: int = 1,
    every_seconds: float | None = None,
    every_metres: float | None = None,
    pose_topic: str | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> BagFrames:
    """Read the places of one image topic of a bag (see the module doc for sampling).

    ``topic=None`` picks the bag's only image topic.  ``limit`` caps the number
    of places kept.  Only kept frames are decoded and held in memory.
    """
    every, every_seconds, every_metres, limit = _check_options(
        every, every_seconds, every_metres, limit
    )
    min_gap_ns = None if every_seconds is None else int(round(every_seconds * _NS))
    with _open_bag(path) as (path, reader):
        table = _topic_table(reader)
        image_topic = _select_image_topic(path, table, topic)
        pose_choice = _select_pose_topic(path, table, pose_topic, needed=every_metres is not None)
        track = None
        if pose_choice is not None:
            track = _read_pose_track(path, reader, pose_choice)
            if track is None and (every_metres is not None or pose_topic is not None):
                raise DataError(
                    f"bag {path} has no usable poses on {_describe([pose_choice])}"
                )

        names: list[str] = []
        stamps: list[int] = []
        images: list[np.ndarray] = []
        poses: list[np.ndarray] = []
        seen: dict[str, int] = {}
        last_kept_stamp: int | None = None
        last_position: np.ndarray | None = None
        travelled = 0.0  # metres since the last kept frame
        bar = tqdm(
            total=image_topic.count or None,
            desc=f"reading {image_topic.name}",
            unit="msg",
            disable=not progress,
        )
        messages = _iter_messages(path, reader, image_topic.connections)
        try:
            index = -1
            for connection, receive_ns, raw in messages:
                index += 1
                bar.update(1)
                if index % every:
                    continue  # skipped without deserializing
                msg = _deserialize(path, reader, raw, connection)
                stamp = _stamp_ns(msg, receive_ns)
                pose = track.nearest(stamp) if track is not None else None
                if min_gap_ns is not None and last_kept_stamp is not None:
                    if abs(stamp - last_kept_stamp) < min_gap_ns:
                        continue
                if every_metres is not None:
                    assert pose is not None
                    position = pose[:3]
                    if last_position is not None:
                        travelled += float(np.linalg.norm(position - last_position))
                    last_position = position
                    if names and travelled < every_metres - 1e-9:
                        continue
                try:
                    image = _decode(msg, connection.msgtype)
                except DataError as err:
                    raise DataError(
                        f"bag {path}: cannot decode frame {index} on {image_topic.name} "
                        f"(stamp {stamp}): {_one_line(str(err))}"
                    ) from None
                name = f"{image_topic.name}@{stamp}"
                if name in seen:
                    seen[name] += 1
                    name = f"{name}#{seen[name]}"
                seen.setdefault(name, 1)
                names.append(name)
                stamps.append(stamp)
                images.append(image)
                if pose is not None:
                    poses.append(pose.copy())
                last_kept_stamp = stamp
                travelled = 0.0
                if limit is not None and len(names) >= limit:
                    break
        finally:
            messages.close()
            bar.close()
    if not names:
        raise DataError(f"bag {path} has no frames on {image_topic.name}")
    return BagFrames(
        names=names,
        stamps_ns=np.asarray(stamps, dtype=np.int64),
        images=images,
        poses=np.asarray(poses, dtype=np.float64).reshape(-1, 7) if track is not None else None,
        pose_frame=track.frame if track is not None else None,
    )


# --------------------------------------------------------------------------- writing


_ENCODINGS = {  # (dtype, channels) -> ROS encoding
    (np.dtype(np.uint8), 1): "mono8",
    (np.dtype(np.uint8), 3): "bgr8",
    (np.dtype(np.uint8), 4): "bgra8",
    (np.dtype(np.uint16), 1): "mono16",
}


def _encoding_of(image: np.ndarray, file: Path) -> tuple[str, np.ndarray]:
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    channels = 1 if image.ndim == 2 else image.shape[2]
    encoding = _ENCODINGS.get((image.dtype, channels))
    if encoding is None:
        raise DataError(
            f"cannot put image {file} in a bag: {image.dtype} with {channels} channels is not "
            f"supported (mono8, bgr8, bgra8 or mono16)"
        )
    return encoding, np.ascontiguousarray(image)


def _check_write_options(
    topic: Any, rate_hz: Any, storage: Any, frame_id: Any, start_time_ns: Any
) -> tuple[float, int]:
    if not isinstance(topic, str) or not topic.strip() or any(c.isspace() for c in topic):
        raise ConfigError(f"topic must be a non-empty name without spaces, got {topic!r}")
    if storage not in STORAGES:
        raise ConfigError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, float, np.integer, np.floating)):
        raise ConfigError(f"rate_hz must be a number > 0, got {rate_hz!r}")
    rate_hz = float(rate_hz)
    if not math.isfinite(rate_hz) or rate_hz <= 0:
        raise ConfigError(f"rate_hz must be a finite number > 0, got {rate_hz!r}")
    if not isinstance(frame_id, str):
        raise ConfigError(f"frame_id must be a string, got {frame_id!r}")
    if start_time_ns is None:
        start_time_ns = time.time_ns()
    if (
        isinstance(start_time_ns, bool)
        or not isinstance(start_time_ns, (int, np.integer))
        or start_time_ns < 0
    ):
        raise ConfigError(f"start_time_ns must be an integer >= 0, got {start_time_ns!r}")
    return rate_hz, int(start_time_ns)


def write_bag_from_folder(
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str],
    topic: str = "/camera/image_raw",
    rate_hz: float = 10.0,
    storage: str = "mcap",
    compressed: bool = False,
    frame_id: str = "camera",
    start_time_ns: int | None = None,
) -> Path:
    """Write the images of ``folder`` (sorted by name) as a rosbag2 bag directory ``out``.

    Frame ``k`` is stamped (header and receive time) ``start_time_ns + round(k * 1e9 / rate_hz)``
    (``start_time_ns`` defaults to now).  Messages are ``sensor_msgs/msg/Image``
    (bgr8, bgra8, mono8 for gray, mono16 for 16-bit gray) or, with ``compressed``,
    ``sensor_msgs/msg/CompressedImage`` in PNG (format ``"<enc>; png compressed <enc>"``).
    The bag (metadata version 9) is written in a temporary folder next to ``out``
    and renamed into place at the end, so a failed write leaves nothing at ``out``.
    An existing ``out`` is never overwritten.  Returns ``out``.
    """
    import cv2

    rate_hz, start_ns = _check_write_options(topic, rate_hz, storage, frame_id, start_time_ns)
    out = Path(out)
    if os.path.lexists(out):
        raise DataError(f"refusing to overwrite existing {out}")
    try:
        files = list_images(folder)
    except DataError as err:
        raise DataError(f"cannot write bag {out}: {_one_line(str(err))}") from None
    last_ns = start_ns + int(round((len(files) - 1) * _NS / rate_hz))
    if last_ns // _NS > _INT32_MAX:
        raise ConfigError(
            f"stamps up to {last_ns} ns do not fit a ROS time (seconds must be < 2**31)"
        )

    rb = _rosbags()
    typestore = _typestore()
    Header = typestore.types["std_msgs/msg/Header"]
    Time = typestore.types["builtin_interfaces/msg/Time"]
    msgtype = COMPRESSED_MSG if compressed else IMAGE_MSG
    Message = typestore.types[msgtype]
    plugins = rb.rosbag2.StoragePlugin
    plugin = plugins.MCAP if storage == "mcap" else plugins.SQLITE3

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_parent = Path(
            tempfile.mkdtemp(prefix=f".{out.name}.", suffix=TEMP_SUFFIX, dir=out.parent)
        )
    except OSError as err:
        raise DataError(f"cannot write bag {out}: {_one_line(err.strerror or str(err))}") from None
    # The bag gets its final name inside the temp folder, so its storage file is
    # named like a bag recorded directly at ``out`` (<name>/<name>.mcap).
    tmp_bag = tmp_parent / out.name
    try:
        try:
            with rb.rosbag2.Writer(tmp_bag, version=9, storage_plugin=plugin) as writer:
                connection = writer.add_connection(topic, msgtype, typestore=typestore)
                for k, file in enumerate(files):
                    encoding, image = _encoding_of(read_image(file), file)
                    stamp_ns = start_ns + int(round(k * _NS / rate_hz))
                    header = Header(
                        stamp=Time(sec=stamp_ns // _NS, nanosec=stamp_ns % _NS), frame_id=frame_id
                    )
                    if compressed:
                        ok, png = cv2.imencode(".png", image)
                        if not ok:
                            raise DataError(f"cannot PNG-encode image {file}")
                        msg = Message(
                            header=header,
                            format=f"{encoding}; png compressed {encoding}",
                            data=np.asarray(png, dtype=np.uint8).reshape(-1),
                        )
                    else:
                        height, width = image.shape[:2]
                        msg = Message(
                            header=header,
                            height=height,
                            width=width,
                            encoding=encoding,
                            is_bigendian=int(_NATIVE_BIG_ENDIAN and image.dtype.itemsize > 1),
                            step=image.strides[0],
                            data=image.view(np.uint8).reshape(-1),
                        )
                    writer.write(connection, stamp_ns, typestore.serialize_cdr(msg, msgtype))
        except DataError as err:
            raise DataError(f"cannot write bag {out}: {_one_line(str(err))}") from None
        except (rb.rosbag2.WriterError, OSError, ValueError, rb.serde.SerdeError) as err:
            detail = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise DataError(f"cannot write bag {out}: {_one_line(detail)}") from None
        if os.path.lexists(out):
            raise DataError(f"refusing to overwrite existing {out} (created while writing)")
        try:
            os.rename(tmp_bag, out)
        except OSError as err:
            detail = _one_line(err.strerror or str(err))
            raise DataError(f"cannot write bag {out}: {detail}") from None
    finally:
        shutil.rmtree(tmp_parent, ignore_errors=True)
    return out
