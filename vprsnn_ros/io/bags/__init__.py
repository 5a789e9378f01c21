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

The package is split by job: ``_reader`` opens bags and finds their topics
(:func:`bag_info`, :func:`image_topics`), ``_poses`` reads the pose track,
``_frames`` reads places (:func:`read_bag_frames`) and ``_writer`` writes bags
(:func:`write_bag_from_folder`).  This module re-exports their public API.
"""

from vprsnn_ros.io.bags._frames import BagFrames, read_bag_frames
from vprsnn_ros.io.bags._poses import EARTH_RADIUS_M
from vprsnn_ros.io.bags._poses import GNSS_FRAME as GNSS_FRAME
from vprsnn_ros.io.bags._reader import (
    BAG_SUFFIXES,
    IMAGE_TYPES,
    POSE_TYPES,
    TopicInfo,
    bag_info,
    image_topics,
    is_bag,
)
from vprsnn_ros.io.bags._reader import COMPRESSED_MSG as COMPRESSED_MSG
from vprsnn_ros.io.bags._reader import IMAGE_MSG as IMAGE_MSG
from vprsnn_ros.io.bags._reader import NAVSATFIX_MSG as NAVSATFIX_MSG
from vprsnn_ros.io.bags._reader import ODOMETRY_MSG as ODOMETRY_MSG
from vprsnn_ros.io.bags._writer import STORAGES as STORAGES
from vprsnn_ros.io.bags._writer import write_bag_from_folder

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
