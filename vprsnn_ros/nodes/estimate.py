"""The pose and covariance of a matched place: plain maths behind ``~/estimate`` (no ROS import).

With per-place poses in the model, the estimate is the place's pose, in the
model's pose frame, and its x/y standard deviation is ``sigma`` places
converted to metres with the spacing to the neighbouring place. Without poses,
position.x is the place id in ``frame_id`` and sigma is in places::

    sigma = sigma_min + (1 - confidence) (sigma_max - sigma_min)      (confidence clipped to [0, 1])

Orientation is not estimated: its variances are 1e6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNKNOWN_ORIENTATION_VARIANCE = 1e6


def place_sigma(confidence: float, sigma_min: float, sigma_max: float) -> float:
    """Standard deviation (in places) of the estimate: linear from sigma_max at confidence 0
    to sigma_min at confidence 1."""
    c = min(max(confidence, 0.0), 1.0)
    return sigma_min + (1.0 - c) * (sigma_max - sigma_min)


@dataclass(frozen=True)
class PlacePose:
    """A pose with covariance, as geometry_msgs/PoseWithCovariance lays it out."""

    frame_id: str
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float]  # x, y, z, w
    covariance: tuple[float, ...]                    # 36 values, row-major 6 x 6


def place_pose(place_id: int, confidence: float, place_poses: np.ndarray | None, pose_frame: str | None,
               frame_id: str, sigma_min: float, sigma_max: float) -> PlacePose:
    """The estimate for a match of ``place_id`` (module docstring)."""
    sigma = place_sigma(confidence, sigma_min, sigma_max)
    cov = np.zeros(36)
    if place_poses is not None:
        x, y, z, qx, qy, qz, qw = (float(v) for v in place_poses[place_id])
        # Uncertainty in places converted to metres with the local spacing of places.
        k = place_id
        neighbour = place_poses[k + 1 if k + 1 < len(place_poses) else max(k - 1, 0)]
        spacing = float(np.linalg.norm(neighbour[:3] - place_poses[k, :3])) or 1.0
        cov[0] = cov[7] = (sigma * spacing) ** 2
        frame, position, orientation = pose_frame or "map", (x, y, z), (qx, qy, qz, qw)
    else:
        cov[0] = sigma ** 2
        cov[7] = cov[14] = 1e-9
        frame, position, orientation = frame_id, (float(place_id), 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)
    cov[21] = cov[28] = cov[35] = UNKNOWN_ORIENTATION_VARIANCE
    return PlacePose(frame, position, orientation, tuple(cov.tolist()))
