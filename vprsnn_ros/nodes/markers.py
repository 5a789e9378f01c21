"""What RViz draws of the route and the match: marker geometry and colours as plain arrays (no ROS import).

``~/places`` shows every place of the model as one sphere of a SPHERE_LIST,
at its pose when the model has place poses (in the model's pose frame), else
along a line, x = place id, in the ``frame_id`` parameter's frame; places are
coloured by the module that learned them. ``~/match`` is one sphere at the
current best place, coloured from red (confidence 0) to green (confidence 1).
The node copies these into visualization_msgs messages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Tableau's 10 colours (RGB in [0, 1]): neighbouring modules get different ones.
PALETTE = np.array([
    (0.122, 0.467, 0.706), (1.000, 0.498, 0.055), (0.173, 0.627, 0.173), (0.839, 0.153, 0.157),
    (0.580, 0.404, 0.741), (0.549, 0.337, 0.294), (0.890, 0.467, 0.761), (0.498, 0.498, 0.498),
    (0.737, 0.741, 0.133), (0.090, 0.745, 0.812),
])
UNASSIGNED = (0.3, 0.3, 0.3)  # a place no module learned (should not happen in a trained model)
PLACE_SIZE = 0.3              # sphere diameter as a fraction of the typical spacing of places
MATCH_SIZE = 3.0              # the match sphere, in place-sphere diameters


@dataclass(frozen=True)
class PlacesMarker:
    """The ``places`` SPHERE_LIST: frame, points (n, 3), RGBA colours (n, 4), sphere diameter."""

    frame_id: str
    points: np.ndarray
    colours: np.ndarray
    size: float


def place_points(n_places: int, place_poses: np.ndarray | None) -> np.ndarray:
    """(n_places, 3) positions: the poses' x, y, z, or (place id, 0, 0) without poses."""
    if place_poses is not None:
        return np.asarray(place_poses, dtype=float)[:n_places, :3].copy()
    points = np.zeros((n_places, 3))
    points[:, 0] = np.arange(n_places)
    return points


def place_modules(n_places: int, regions) -> np.ndarray:
    """(n_places,) index of the module that learned each place (-1: none)."""
    module = np.full(n_places, -1, dtype=np.int64)
    for m, places in enumerate(regions):
        places = np.asarray(places, dtype=np.int64)
        module[places[(places >= 0) & (places < n_places)]] = m
    return module


def module_colours(modules: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """(n, 4) RGBA: a palette colour per module index, grey for -1."""
    modules = np.asarray(modules, dtype=np.int64)
    rgb = np.where((modules >= 0)[:, None], PALETTE[np.maximum(modules, 0) % len(PALETTE)], UNASSIGNED)
    return np.hstack([rgb, np.full((len(modules), 1), alpha)])


def spacing(points: np.ndarray) -> float:
    """Median distance between consecutive places (1.0 when there is none, or it is 0)."""
    if len(points) < 2:
        return 1.0
    gaps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) if gaps.size else 1.0


def places_marker(n_places: int, regions, place_poses: np.ndarray | None, pose_frame: str | None,
                  frame_id: str) -> PlacesMarker:
    """The ``places`` marker of a model (its first network's poses and modules)."""
    points = place_points(n_places, place_poses)
    frame = (pose_frame or "map") if place_poses is not None else frame_id
    return PlacesMarker(frame, points, module_colours(place_modules(n_places, regions)),
                        PLACE_SIZE * spacing(points))


def confidence_colour(confidence: float) -> tuple[float, float, float, float]:
    """RGBA from red (confidence 0) through yellow to green (confidence 1)."""
    c = min(max(float(confidence), 0.0), 1.0) if np.isfinite(confidence) else 0.0
    return (min(1.0, 2.0 * (1.0 - c)), min(1.0, 2.0 * c), 0.0, 1.0)
