"""Opening bags and finding their topics: the reading plumbing every bag reader shares.

Wraps :mod:`rosbags` (imported lazily, never rclpy): the typestore, the
exceptions that mean "this bag cannot be read" turned into one-line
:class:`~vprsnn_ros.errors.DataError` messages, the topic table of an open bag
and the choice of its image and pose topics, plus :func:`bag_info` /
:func:`image_topics` built on them.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vprsnn_ros.errors import ConfigError, DataError

IMAGE_MSG = "sensor_msgs/msg/Image"
COMPRESSED_MSG = "sensor_msgs/msg/CompressedImage"
ODOMETRY_MSG = "nav_msgs/msg/Odometry"
NAVSATFIX_MSG = "sensor_msgs/msg/NavSatFix"
IMAGE_TYPES = (IMAGE_MSG, COMPRESSED_MSG)
POSE_TYPES = (ODOMETRY_MSG, NAVSATFIX_MSG)
BAG_SUFFIXES = (".mcap", ".db3", ".bag")

_NS = 1_000_000_000


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
