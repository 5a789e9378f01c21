"""Place poses from a CSV file: one row per image of a folder.

Columns (header row, case-insensitive, in any order): ``filename``, ``x``, ``y``
(required), ``z`` (optional, default 0) and the orientation, optionally:
``yaw`` in radians (a rotation about z), or the quaternion ``qx,qy,qz,qw``
(all four); neither means the identity orientation. Other columns (timestamps,
latitude, ...) are ignored. Positions are metres in the pose frame (``map``
unless told otherwise).

A quaternion is normalised when its norm is within :data:`QUATERNION_TOLERANCE`
of 1 (CSV rounding); any other norm, zero included, is an error: such a row
holds something else than a rotation (Euler angles, a wrong column order, a
scale), and normalising would hide it.

Every problem is a :class:`~vprsnn_ros.errors.DataError` naming the CSV and
the line: a row naming a file that is not an image of the folder, a value that
is not a finite number, a file named twice, a row of the wrong length; a
missing required column, a partial quaternion, or both ``yaw`` and a
quaternion name the header. :meth:`PoseTable.poses_of` names the image that
has no row.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vprsnn_ros.errors import ConfigError, DataError

__all__ = ["POSE_COLUMNS", "QUATERNION_TOLERANCE", "PoseTable", "read_poses_csv", "check_pose_frame"]

#: The model's pose layout: one row per place.
POSE_COLUMNS = ("x", "y", "z", "qx", "qy", "qz", "qw")
#: A quaternion whose norm differs from 1 by at most this much is normalised; others are errors.
QUATERNION_TOLERANCE = 0.01
_QUATERNION = ("qx", "qy", "qz", "qw")


@dataclass(frozen=True)
class PoseTable:
    """The poses of a CSV by file name: ``poses[name]`` is ``(x, y, z, qx, qy, qz, qw)``."""

    path: Path
    poses: dict[str, tuple[float, ...]]
    lines: dict[str, int]  # the CSV line of each file's row

    def __len__(self) -> int:
        return len(self.poses)

    def poses_of(self, names: Sequence[str], source: str | Path = "") -> np.ndarray:
        """float64 ``(len(names), 7)``: the pose of each image, in that order; a DataError
        naming the first image without a row."""
        missing = [name for name in names if name not in self.poses]
        if missing:
            more = f" (nor for {len(missing) - 1} more)" if len(missing) > 1 else ""
            where = f" of {source}" if source else ""
            raise DataError(f"poses CSV {self.path} has no row for image {missing[0]}{where}{more}")
        return np.array([self.poses[name] for name in names], dtype=np.float64).reshape(-1, 7)


def check_pose_frame(pose_frame: str | None) -> str:
    """The frame of CSV poses: a non-empty name without spaces (ConfigError otherwise)."""
    if not isinstance(pose_frame, str) or not pose_frame.strip() or any(c.isspace() for c in pose_frame):
        raise ConfigError(f"--pose-frame must be a frame name without spaces, got {pose_frame!r}")
    return pose_frame


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, stripped cells) of every non-blank CSV row."""
    if not path.is_file():
        raise DataError(f"poses CSV does not exist: {path}")
    rows = []
    try:
        # utf-8-sig: spreadsheets often prepend a BOM that would corrupt the first header.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            line = 1
            for row in reader:
                cells = [cell.strip() for cell in row]
                if any(cells):
                    rows.append((line, cells))
                line = reader.line_num + 1
    except (csv.Error, UnicodeDecodeError, OSError) as error:
        raise DataError(f"malformed poses CSV {path}: {error}") from None
    if not rows:
        raise DataError(f"poses CSV is empty: {path}")
    return rows


def _columns(path: Path, line: int, header: list[str]) -> dict[str, int]:
    names = [name.lower() for name in header]
    where = f"poses CSV {path} line {line} (header {','.join(header)})"
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"{where}: column {repeated[0]!r} appears twice")
    missing = [name for name in ("filename", "x", "y") if name not in names]
    if missing:
        raise DataError(f"{where}: no column {', '.join(repr(m) for m in missing)}; the columns are "
                        f"filename,x,y and optionally z, and yaw or qx,qy,qz,qw")
    quaternion = [name for name in _QUATERNION if name in names]
    if quaternion and len(quaternion) != 4:
        absent = [name for name in _QUATERNION if name not in names]
        raise DataError(f"{where}: a quaternion needs all of qx,qy,qz,qw; missing {','.join(absent)}")
    if quaternion and "yaw" in names:
        raise DataError(f"{where}: give the orientation as yaw or as qx,qy,qz,qw, not both")
    return {name: k for k, name in enumerate(names)}


def _number(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        if not text:
            raise DataError(f"poses CSV {path} line {line}: column {column!r} is empty") from None
        raise DataError(f"poses CSV {path} line {line}: column {column!r} is {text!r}, "
                        f"not a number") from None
    if not math.isfinite(value):
        raise DataError(f"poses CSV {path} line {line}: column {column!r} is {text!r}, "
                        f"not a finite number")
    return value


def read_poses_csv(path: str | Path, images: Iterable[str], source: str | Path = "") -> PoseTable:
    """The poses of ``path`` (module doc), checked against the image names of folder ``source``:
    each row must name one of ``images``, once."""
    path = Path(path)
    known = set(images)
    rows = _rows(path)
    header_line, header = rows[0]
    columns = _columns(path, header_line, header)
    width = len(header)
    poses: dict[str, tuple[float, ...]] = {}
    lines: dict[str, int] = {}
    folder = f"folder {source}" if source else "the folder"
    for line, row in rows[1:]:
        where = f"poses CSV {path} line {line}"
        if len(row) != width:
            raise DataError(f"{where}: {len(row)} fields, the header has {width}")
        name = row[columns["filename"]]
        if not name:
            raise DataError(f"{where}: no file name")
        if name not in known:
            raise DataError(f"{where}: {name} is not an image in {folder}")
        if name in poses:
            raise DataError(f"{where}: {name} is given twice (first on line {lines[name]})")
        value = {column: _number(path, line, column, row[k]) for column, k in columns.items()
                 if column in ("x", "y", "z", "yaw", *_QUATERNION)}
        if "qw" in value:
            q = np.array([value[c] for c in _QUATERNION], dtype=np.float64)
            norm = float(np.linalg.norm(q))
            if abs(norm - 1.0) > QUATERNION_TOLERANCE:
                given = ",".join(row[columns[c]] for c in _QUATERNION)
                raise DataError(f"{where}: quaternion qx,qy,qz,qw = {given} has norm {norm:.6g}, "
                                f"not 1 (within {QUATERNION_TOLERANCE})")
            quaternion = tuple(float(v) for v in q / norm)
        elif "yaw" in value:
            half = value["yaw"] / 2.0
            quaternion = (0.0, 0.0, math.sin(half), math.cos(half))
        else:
            quaternion = (0.0, 0.0, 0.0, 1.0)
        poses[name] = (value["x"], value["y"], value.get("z", 0.0), *quaternion)
        lines[name] = line
    if not poses:
        raise DataError(f"poses CSV {path} has a header but no rows")
    return PoseTable(path, poses, lines)
