"""What a person looks at to judge a match: the query frame beside the matched place's thumbnail.

Models may store one small grey thumbnail per reference place (``THUMB_SIZE``,
3 kB each; written by training, see :mod:`vprsnn_ros.model.network_io`). The localizer
node publishes :func:`match_view` as ``~/debug_image``; the replay evaluator
writes a strip of the worst matches with :func:`matches_strip`.

Layout of a match view (BGR uint8)::

    +---------------------------+---------------------------+
    | title: place id, confidence, optional label           |  TITLE rows
    | "query  W x H"            | "place N" / "no thumbnail"|  captions: BANNER rows in all
    +---------------------------+---------------------------+
    | query frame, scaled to    | thumbnail, each pixel     |  THUMB_SIZE * scale
    | fit, aspect ratio kept    | repeated scale x scale    |
    | (black bars)              |                           |
    +---------------------------+---------------------------+

The captions name each panel, so that a dark reference is not mistaken for a
missing one (which is drawn cross-hatched). The query frame keeps its aspect
ratio (letterboxed: a 64 x 32 frame gets bars above and below, not a 4:3
stretch). The thumbnail panel is the stored thumbnail upscaled by pixel
repetition, so it can be compared exactly with the model's thumbnail (tests rely
on this).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from vprsnn_ros.errors import DataError
from vprsnn_ros.io.thumbnails import THUMB_SIZE, _gray8, make_thumbnail, make_thumbnails  # noqa: F401

__all__ = ["THUMB_SIZE", "BANNER", "CAPTION", "TITLE", "letterbox", "make_thumbnail", "make_thumbnails",
           "match_view", "matches_strip", "thumbnail_panel"]

TITLE = 22              # rows of the title line
CAPTION = 16            # rows of the panels' captions, under the title
BANNER = TITLE + CAPTION  # rows of text above the two panels
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def thumbnail_panel(thumbnail: np.ndarray, scale: int) -> np.ndarray:
    """The thumbnail as the BGR panel of a match view (pixel repetition, no smoothing)."""
    big = np.repeat(np.repeat(np.asarray(thumbnail, np.uint8), scale, axis=0), scale, axis=1)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` (BGR) scaled to fit ``width`` x ``height`` with its aspect ratio kept, centred on black."""
    h, w = image.shape[:2]
    s = min(width / w, height / h)
    fit_w, fit_h = min(width, max(1, round(w * s))), min(height, max(1, round(h * s)))
    out = np.zeros((height, width, 3), np.uint8)
    top, left = (height - fit_h) // 2, (width - fit_w) // 2
    out[top:top + fit_h, left:left + fit_w] = cv2.resize(np.ascontiguousarray(image), (fit_w, fit_h),
                                                         interpolation=cv2.INTER_AREA)
    return out


def _query_panel(image: np.ndarray, width: int, height: int) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        bgr = image
    else:
        bgr = cv2.cvtColor(_gray8(image), cv2.COLOR_GRAY2BGR)
    return letterbox(bgr, width, height)


def _missing_panel(width: int, height: int, text: str) -> np.ndarray:
    """A cross-hatched grey panel: no reference thumbnail (unlike any thumbnail, however dark)."""
    panel = np.full((height, width, 3), 60, np.uint8)
    for x in range(-height, width, 12):
        cv2.line(panel, (x, height), (x + height, 0), (90, 90, 90), 1)
    cv2.putText(panel, text, (8, height // 2), _FONT, 0.45, (220, 220, 220), 1, cv2.LINE_AA)
    return panel


def _fit_text(image: np.ndarray, text: str, x: int, baseline: int, max_width: int, size: float,
              colour: tuple[int, int, int]) -> None:
    """``text`` at (x, baseline), in smaller type when it would not fit in ``max_width`` pixels."""
    (text_width, _), _ = cv2.getTextSize(text, _FONT, size, 1)
    cv2.putText(image, text, (x, baseline), _FONT, min(size, size * max_width / max(text_width, 1)), colour, 1,
                cv2.LINE_AA)


def match_view(query: np.ndarray, thumbnail: np.ndarray | None, place_id: int, confidence: float,
               scale: int = 3, label: str = "") -> np.ndarray:
    """Query frame (left) beside the matched place's thumbnail (right), place id and confidence above,
    each panel captioned.

    ``thumbnail`` None (model without thumbnails, or no place yet) gives a cross-hatched panel.
    """
    width, height = THUMB_SIZE[0] * scale, THUMB_SIZE[1] * scale
    query = np.asarray(query)
    left = _query_panel(query, width, height)
    if thumbnail is None:
        right = _missing_panel(width, height, "no thumbnail" if place_id >= 0 else "no place")
    else:
        right = thumbnail_panel(thumbnail, scale)
    banner = np.zeros((BANNER, 2 * width, 3), np.uint8)
    text = f"place {place_id}  conf {confidence:.3f}" if place_id >= 0 else "no place yet"
    if label:
        text = f"{label}  {text}"
    # Green when the text reports a place, orange otherwise.
    colour = (80, 220, 80) if place_id >= 0 else (0, 160, 255)
    _fit_text(banner, text, 6, TITLE - 7, 2 * width - 12, 0.5, colour)
    grey = (200, 200, 200)
    _fit_text(banner, f"query {query.shape[1]} x {query.shape[0]}" if query.ndim >= 2 else "query",
              6, BANNER - 4, width - 12, 0.4, grey)
    if place_id < 0:
        caption = "no place"
    elif thumbnail is None:
        caption = f"place {place_id}: no thumbnail"
    else:
        caption = f"place {place_id} (reference)"
    _fit_text(banner, caption, width + 6, BANNER - 4, width - 12, 0.4, grey)
    banner[-1] = 90  # a rule between the captions and the panels (the query's bars are black)
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
