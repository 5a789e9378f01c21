"""A traverse of places from an image folder or a rosbag, preprocessed for the network."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.io import bags
from vprsnn_ros.io.dataset import check_sizes, load_place_list, read_exclude_csv, read_places
from vprsnn_ros.io.preprocess import preprocess_batch
from vprsnn_ros.io.thumbnails import make_thumbnails


@dataclass(frozen=True)
class Traverse:
    """One pass along the route: place i of two traverses is the same place."""

    source: str
    names: list[str]
    pixels: np.ndarray                  # (n, h*w) uint8, preprocessed
    poses: np.ndarray | None = None     # (n, 7) x, y, z, qx, qy, qz, qw (bags with a pose topic)
    pose_frame: str | None = None
    thumbnails: np.ndarray | None = None  # (n, 48, 64) uint8 gray, for debug views

    def __len__(self) -> int:
        return len(self.names)


def load_traverse(source: str | Path, size: tuple[int, int], patch: int, *,
                  list_csv: str | None = None, exclude_csv: str | None = None, every: int = 1,
                  every_seconds: float | None = None, every_metres: float | None = None,
                  limit: int | None = None, topic: str | None = None,
                  pose_topic: str | None = None, desc: str = "images", strict: bool = False) -> Traverse:
    """Places of ``source``: the sorted images of a folder, or the frames of a bag's image topic.

    Folders: ``list_csv`` orders them, ``exclude_csv`` drops some, then every
    ``every``-th place is kept, up to ``limit``. Bags: one place every ``every``
    frames, ``every_seconds`` or ``every_metres`` (with a pose topic; the places
    keep their poses), up to ``limit``; ``exclude_csv`` drops frames by name.
    Frames of different sizes give an ImageSizeWarning, or with ``strict`` a DataError.
    """
    if every < 1:
        raise ConfigError("--every must be >= 1")
    if limit is not None and limit < 1:
        raise ConfigError("--limit must be >= 1")
    exclude = read_exclude_csv(exclude_csv) if exclude_csv else None
    if bags.is_bag(source):
        if list_csv:
            raise ConfigError("--list applies to image folders, not to bags")
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
    places = places.subset(list(range(0, len(places), every))[:limit])
    pixels, thumbnails = read_places(places.paths, size, patch, source=source, strict=strict,
                                     progress=True, desc=desc)
    return Traverse(str(source), list(places.names), pixels, thumbnails=thumbnails)
