"""What a person looks at to judge a match: the query frame beside the matched place's thumbnail.

Models may store one small grey thumbnail per reference place (``THUMB_SIZE``,
3 kB each; written by training, see :mod:`vprsnn_ros.model.network_io`). The localizer
node publishes :func:`match_view` as ``~/debug_image``; the replay evaluator
writes a strip of the worst matches with :func:`matches_strip`.

Layout of a match view (BGR uint8)::

    +---------------------------+---------------------------+
    | banner: place id, confidence, optional label          |  BANNER rows
    +---------------------------+---------------------------+
    | query frame, resized      | thumbnail, each pixel     |  THUMB_SIZE * scale
    |                           | repeated scale x scale    |
    +---------------------------+---------------------------+

The thumbnail panel is the stored thumbnail upscaled by pixel repetition, so it
can be compared exactly with the model's thumbnail (tests rely on this).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from vprsnn_ros.errors import DataError
from vprsnn_ros.io.thumbnails import THUMB_SIZE, _gray8, make_thumbnail, make_thumbnails  # noqa: F401

__all__ = ["THUMB_SIZE", "BANNER", "make_thumbnail", "make_thumbnails", "match_view", "matches_strip",
           "thumbnail_panel"]

BANNER = 22             # rows of text above the two panels
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def thumbnail_panel(thumbnail: np.ndarray, scale: int) -> np.ndarray:
    """The thumbnail as the BGR panel of a match view (pixel repetition, no smoothing)."""
    big = np.repeat(np.repeat(np.asarray(thumbnail, np.uint8), scale, axis=0), scale, axis=1)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)


def _query_panel(image: np.ndarray, width: int, height: int) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        bgr = image
    else:
        bgr = cv2.cvtColor(_gray8(image), cv2.COLOR_GRAY2BGR)
    return cv2.resize(np.ascontiguousarray(bgr), (width, height), interpolation=cv2.INTER_AREA)


def match_view(query: np.ndarray, thumbnail: np.ndarray | None, place_id: int, confidence: float,
               scale: int = 3, label: str = "") -> np.ndarray:
    """Query frame (left) beside the matched place's thumbnail (right), place id and confidence above.

    ``thumbnail`` None (model without thumbnails, or no place yet) gives a dark panel.
    """
    width, height = THUMB_SIZE[0] * scale, THUMB_SIZE[1] * scale
    left = _query_panel(query, width, height)
    if thumbnail is None:
        right = np.full((height, width, 3), 40, np.uint8)
        cv2.putText(right, "no thumbnail", (8, height // 2), _FONT, 0.45, (200, 200, 200), 1, cv2.LINE_AA)
    else:
        right = thumbnail_panel(thumbnail, scale)
    banner = np.zeros((BANNER, 2 * width, 3), np.uint8)
    text = f"place {place_id}  conf {confidence:.3f}" if place_id >= 0 else "no place yet"
    if label:
        text = f"{label}  {text}"
    # Green when the text reports a place, orange otherwise; smaller type when it would not fit.
    colour = (80, 220, 80) if place_id >= 0 else (0, 160, 255)
    (text_width, _), _ = cv2.getTextSize(text, _FONT, 0.5, 1)
    font_scale = min(0.5, 0.5 * (2 * width - 12) / max(text_width, 1))
    cv2.putText(banner, text, (6, BANNER - 7), _FONT, font_scale, colour, 1, cv2.LINE_AA)
    return np.vstack([banner, np.hstack([left, right])])


def matches_strip(views: Sequence[np.ndarray]) -> np.ndarray:
    """Match views stacked top to bottom with a 2-pixel gap (all must have the same width)."""
    if not views:
        raise DataError("no match views to put in a strip")
    gap = np.full((2, views[0].shape[1], 3), 255, np.uint8)
    rows: list[np.ndarray] = []
    for view in views:
        rows += [view, gap]
    return np.vstack(rows[:-1])
