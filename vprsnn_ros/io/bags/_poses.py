"""The pose track of a bag: Odometry / NavSatFix messages as stamped positions in metres.

NavSatFix fixes are projected to local metres (equirectangular, around the
first fix); :meth:`_PoseTrack.nearest` gives each frame the pose nearest in
time, which the ``every_metres`` sampling of
:func:`vprsnn_ros.io.bags.read_bag_frames` measures travel with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vprsnn_ros.errors import DataError
from vprsnn_ros.io.bags._reader import (
    ODOMETRY_MSG,
    _deserialize,
    _iter_messages,
    _one_line,
    _stamp_ns,
    _Topic,
)

#: WGS84 semi-major axis, radius of the equirectangular NavSatFix projection.
EARTH_RADIUS_M = 6378137.0
GNSS_FRAME = "gnss_local"


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
