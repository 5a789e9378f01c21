"""Small grey thumbnails of reference places, stored in models for debug views.

One ``THUMB_SIZE`` (64 x 48) uint8 image per place, 3 kB each; training writes
them (:mod:`vprsnn_ros.model.network_io`) and :mod:`vprsnn_ros.eval.views` draws them.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from vprsnn_ros.errors import DataError

THUMB_SIZE = (64, 48)   # (width, height)


def _gray8(image: np.ndarray) -> np.ndarray:
    """Any accepted frame (gray/BGR/BGRA, uint8/uint16) as 8-bit gray."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        image = cv2.cvtColor(np.ascontiguousarray(image), code)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8 or image.ndim != 2 or image.size == 0:
        raise DataError(f"cannot make a thumbnail of an image of shape {image.shape}, dtype {image.dtype}")
    return image


def make_thumbnail(image: np.ndarray) -> np.ndarray:
    """(48, 64) uint8 gray thumbnail of a frame (area-averaged, whole frame, no crop)."""
    return cv2.resize(_gray8(image), THUMB_SIZE, interpolation=cv2.INTER_AREA)


def make_thumbnails(images: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 48, 64) uint8 thumbnails of ``images``."""
    out = np.empty((len(images), THUMB_SIZE[1], THUMB_SIZE[0]), np.uint8)
    for k, image in enumerate(images):
        out[k] = make_thumbnail(image)
    return out
