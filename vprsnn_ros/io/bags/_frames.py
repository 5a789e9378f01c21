"""Reading places from a bag: :func:`read_bag_frames`, its option checks and frame decoding.

Sampling (``every`` / ``every_seconds`` / ``every_metres``) happens while
reading, so only kept frames are deserialized and decoded; the rules are in
the :mod:`vprsnn_ros.io.bags` package doc.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from vprsnn_ros.errors import ConfigError, DataError
from vprsnn_ros.io.bags._poses import _read_pose_track
from vprsnn_ros.io.bags._reader import (
    _NS,
    COMPRESSED_MSG,
    _describe,
    _deserialize,
    _iter_messages,
    _one_line,
    _open_bag,
    _select_image_topic,
    _select_pose_topic,
    _stamp_ns,
    _topic_table,
)
from vprsnn_ros.io.image_msgs import compressed_to_array, image_to_array

# --------------------------------------------------------------------------- data types


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
    """Read the places of one image topic of a bag (see the :mod:`vprsnn_ros.io.bags` doc for sampling).

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
