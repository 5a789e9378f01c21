"""Writing a rosbag2 bag from an image folder: :func:`write_bag_from_folder` and image encodings.

With a poses CSV (:mod:`vprsnn_ros.io.poses`), the images' poses go beside them
as an Odometry topic stamped like the frames.

The bag is written in a temporary folder next to its destination and renamed
into place, so a failed write leaves nothing behind.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vprsnn_ros.atomic import TEMP_SUFFIX
from vprsnn_ros.errors import ConfigError, DataError
from vprsnn_ros.io.bags._reader import (
    _NS,
    COMPRESSED_MSG,
    IMAGE_MSG,
    ODOMETRY_MSG,
    _one_line,
    _rosbags,
    _typestore,
)
from vprsnn_ros.io.dataset import list_images, read_image
from vprsnn_ros.io.poses import check_pose_frame, read_poses_csv

STORAGES = ("mcap", "sqlite3")
_INT32_MAX = 2**31 - 1
_NATIVE_BIG_ENDIAN = sys.byteorder == "big"


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


def _odometry_factory(typestore: Any, child_frame_id: str) -> Any:
    """A function (header, pose row x, y, z, qx, qy, qz, qw) -> nav_msgs/msg/Odometry."""
    t = typestore.types
    Odometry, Point, Quaternion = t[ODOMETRY_MSG], t["geometry_msgs/msg/Point"], t["geometry_msgs/msg/Quaternion"]
    Pose, PoseCov = t["geometry_msgs/msg/Pose"], t["geometry_msgs/msg/PoseWithCovariance"]
    Twist, TwistCov = t["geometry_msgs/msg/Twist"], t["geometry_msgs/msg/TwistWithCovariance"]
    Vector3 = t["geometry_msgs/msg/Vector3"]

    def make(header: Any, row: np.ndarray) -> Any:
        x, y, z, qx, qy, qz, qw = (float(v) for v in row)
        pose = Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))
        still = Twist(linear=Vector3(x=0.0, y=0.0, z=0.0), angular=Vector3(x=0.0, y=0.0, z=0.0))
        return Odometry(header=header, child_frame_id=child_frame_id,
                        pose=PoseCov(pose=pose, covariance=np.zeros(36, dtype=np.float64)),
                        twist=TwistCov(twist=still, covariance=np.zeros(36, dtype=np.float64)))

    return make


def write_bag_from_folder(
    folder: str | os.PathLike[str],
    out: str | os.PathLike[str],
    topic: str = "/camera/image_raw",
    rate_hz: float = 10.0,
    storage: str = "mcap",
    compressed: bool = False,
    frame_id: str = "camera",
    start_time_ns: int | None = None,
    poses_csv: str | os.PathLike[str] | None = None,
    pose_frame: str = "map",
    odom_topic: str = "/odom",
) -> Path:
    """Write the images of ``folder`` (sorted by name) as a rosbag2 bag directory ``out``.

    Frame ``k`` is stamped (header and receive time) ``start_time_ns + round(k * 1e9 / rate_hz)``
    (``start_time_ns`` defaults to now).  Messages are ``sensor_msgs/msg/Image``
    (bgr8, bgra8, mono8 for gray, mono16 for 16-bit gray) or, with ``compressed``,
    ``sensor_msgs/msg/CompressedImage`` in PNG (format ``"<enc>; png compressed <enc>"``).
    The bag (metadata version 9) is written in a temporary folder next to ``out``
    and renamed into place at the end, so a failed write leaves nothing at ``out``.
    An existing ``out`` is never overwritten.  Returns ``out``.

    With ``poses_csv`` (:mod:`vprsnn_ros.io.poses`: a row for every image), each
    frame's pose is written as a ``nav_msgs/msg/Odometry`` on ``odom_topic`` with
    the frame's stamp (header and receive time), ``header.frame_id`` ``pose_frame``
    and ``child_frame_id`` ``frame_id`` (zero covariances and twist), so that
    :func:`~vprsnn_ros.io.bags.read_bag_frames` gives every frame exactly the
    pose the CSV gives its image.
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
    poses = None
    if poses_csv is not None:
        pose_frame = check_pose_frame(pose_frame)
        if not isinstance(odom_topic, str) or not odom_topic.strip() or any(c.isspace() for c in odom_topic):
            raise ConfigError(f"odom topic must be a non-empty name without spaces, got {odom_topic!r}")
        if odom_topic == topic:
            raise ConfigError(f"the odom topic and the image topic must differ, both are {topic}")
        names = [file.name for file in files]
        poses = read_poses_csv(poses_csv, names, folder).poses_of(names, folder)
    elif pose_frame != "map" or odom_topic != "/odom":
        raise ConfigError("--pose-frame and --odom-topic need --poses CSV (the poses to write)")
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
    odometry = _odometry_factory(typestore, frame_id) if poses is not None else None
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
                odom = (writer.add_connection(odom_topic, ODOMETRY_MSG, typestore=typestore)
                        if odometry is not None else None)
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
                    if odometry is not None:
                        pose_header = Header(stamp=header.stamp, frame_id=pose_frame)
                        writer.write(odom, stamp_ns,
                                     typestore.serialize_cdr(odometry(pose_header, poses[k]), ODOMETRY_MSG))
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
