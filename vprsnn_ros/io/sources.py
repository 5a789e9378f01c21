"""A traverse of places from an image folder or a rosbag, preprocessed for the network."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.io import bags
from vprsnn_ros.io.dataset import check_sizes, list_images, load_place_list, read_exclude_csv, read_places
from vprsnn_ros.io.poses import check_pose_frame, read_poses_csv
from vprsnn_ros.io.preprocess import preprocess_batch
from vprsnn_ros.io.thumbnails import make_thumbnails


@dataclass(frozen=True)
class Traverse:
    """One pass along the route: place i of two traverses is the same place."""

    source: str
    names: list[str]
    pixels: np.ndarray                  # (n, h*w) uint8, preprocessed
    poses: np.ndarray | None = None     # (n, 7) x, y, z, qx, qy, qz, qw (a bag's pose topic, a poses CSV)
    pose_frame: str | None = None
    thumbnails: np.ndarray | None = None  # (n, 48, 64) uint8 gray, for debug views

    def __len__(self) -> int:
        return len(self.names)


def load_traverse(source: str | Path, size: tuple[int, int], patch: int, *,
                  list_csv: str | None = None, exclude_csv: str | None = None, every: int = 1,
                  every_seconds: float | None = None, every_metres: float | None = None,
                  limit: int | None = None, topic: str | None = None,
                  pose_topic: str | None = None, poses_csv: str | None = None, pose_frame: str = "map",
                  desc: str = "images", strict: bool = False) -> Traverse:
    """Places of ``source``: the sorted images of a folder, or the frames of a bag's image topic.

    Folders: ``list_csv`` orders them, ``exclude_csv`` drops some, then every
    ``every``-th place is kept, up to ``limit``. Bags: one place every ``every``
    frames, ``every_seconds`` or ``every_metres`` (with a pose topic; the places
    keep their poses), up to ``limit``; ``exclude_csv`` drops frames by name.
    Frames of different sizes give an ImageSizeWarning, or with ``strict`` a DataError.

    Folders: ``poses_csv`` gives the places their poses in ``pose_frame``
    (:mod:`vprsnn_ros.io.poses`): its rows must name images of the folder, and
    every place left after ``list_csv`` and ``exclude_csv`` needs a row (checked
    before ``every`` and ``limit`` sample them; the kept places keep their poses).
    Bags carry their own pose topic: ``poses_csv`` is an error there.
    """
    if every < 1:
        raise ConfigError("--every must be >= 1")
    if limit is not None and limit < 1:
        raise ConfigError("--limit must be >= 1")
    exclude = read_exclude_csv(exclude_csv) if exclude_csv else None
    if poses_csv:
        pose_frame = check_pose_frame(pose_frame)
    elif pose_frame not in (None, "", "map"):
        raise ConfigError(f"--pose-frame {pose_frame} needs --poses CSV (the frame of its poses)")
    if bags.is_bag(source):
        if list_csv:
            raise ConfigError("--list applies to image folders, not to bags")
        if poses_csv:
            raise ConfigError(f"--poses applies to image folders, not to bags: {source} carries its own "
                              f"poses on an Odometry or NavSatFix topic (--pose-topic)")
        frames = bags.read_bag_frames(source, topic=topic, every=every, every_seconds=every_seconds,
                                      every_metres=every_metres, pose_topic=pose_topic,
                                      limit=None if exclude else limit, progress=True)
        keep = [k for k, name in enumerate(frames.names) if not exclude or name not in exclude][:limit]
        images = [frames.images[k] for k in keep]
        names = [frames.names[k] for k in keep]
        check_sizes([image.shape for image in images], names, source, strict)
        pixels = preprocess_batch(images, size, patch)
        poses = frames.poses[keep] if frames.poses is not None else None
        return Traverse(str(source), names, pixels, poses, frames.pose_frame, make_thumbnails(images))
    if every_seconds is not None or every_metres is not None or topic or pose_topic:
        raise ConfigError(f"{source} is an image folder: --topic, --pose-topic, --every-seconds and "
                          f"--every-metres apply to bags only")
    places = load_place_list(source, list_csv=list_csv, exclude=exclude)
    poses = None
    if poses_csv:
        table = read_poses_csv(poses_csv, [path.name for path in list_images(source)], source)
        poses = table.poses_of(places.names, source)
    keep = list(range(0, len(places), every))[:limit]
    places = places.subset(keep)
    pixels, thumbnails = read_places(places.paths, size, patch, source=source, strict=strict,
                                     progress=True, desc=desc)
    return Traverse(str(source), list(places.names), pixels, poses[keep] if poses is not None else None,
                    pose_frame if poses is not None else None, thumbnails)
