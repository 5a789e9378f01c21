"""A small synthetic route: the same places seen twice under different appearance.

Used by ``vprsnn demo`` and the tests. Each place is a seeded random scene of
soft blobs and bars; the query traverse sees it darker, with lower contrast,
a small shift and sensor noise, which is what changes between seasons or times
of day on a real route.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def place_scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """One place: float image in [0, 1]."""
    img = np.full((height, width), rng.uniform(0.2, 0.5), np.float32)
    for _ in range(rng.integers(4, 8)):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(width // 12 + 1, width // 4 + 2)),
                int(rng.integers(height // 12 + 1, height // 4 + 2)))
        cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                    float(rng.uniform(0, 1)), -1)
    for _ in range(rng.integers(1, 4)):
        x = int(rng.integers(0, width))
        cv2.rectangle(img, (x, 0), (x + int(rng.integers(1, width // 8 + 2)), height),
                      float(rng.uniform(0, 1)), -1)
    return cv2.GaussianBlur(img, (0, 0), max(width, height) / 64)


def make_route(n_places: int, width: int = 64, height: int = 48,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reference and query traverses, each (n_places, height, width, 3) uint8 BGR."""
    rng = np.random.default_rng(seed)
    reference, query = [], []
    for _ in range(n_places):
        scene = place_scene(rng, width, height)
        ref = scene + rng.normal(0, 0.02, scene.shape)
        shift = np.float32([[1, 0, rng.integers(-2, 3)], [0, 1, rng.integers(-1, 2)]])
        moved = cv2.warpAffine(scene, shift, (width, height), borderMode=cv2.BORDER_REFLECT)
        qry = 0.15 + 0.6 * moved + rng.normal(0, 0.04, scene.shape)
        for out, img in ((reference, ref), (query, qry)):
            gray = np.clip(img * 255, 0, 255).astype(np.uint8)
            out.append(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    return np.stack(reference), np.stack(query)


def write_route(folder: str | Path, n_places: int, seed: int = 0) -> tuple[Path, Path]:
    """Write the route as ``folder/reference/place-NNNN.png`` and ``folder/query/...``."""
    folder = Path(folder)
    reference, query = make_route(n_places, seed=seed)
    dirs = []
    for name, images in (("reference", reference), ("query", query)):
        d = folder / name
        d.mkdir(parents=True, exist_ok=True)
        for k, img in enumerate(images):
            cv2.imwrite(str(d / f"place-{k:04d}.png"), img)
        dirs.append(d)
    return dirs[0], dirs[1]
