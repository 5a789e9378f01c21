"""The match view (``~/debug_image``, ``worst_matches.png``): labelled panels, the query's aspect ratio kept."""

from __future__ import annotations

import cv2
import numpy as np

from vprsnn_ros.eval.views import BANNER, CAPTION, THUMB_SIZE, TITLE, letterbox, match_view, thumbnail_panel

SCALE = 3
W, H = THUMB_SIZE[0] * SCALE, THUMB_SIZE[1] * SCALE


def panels(view: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return view[BANNER:, :W], view[BANNER:, W:]


def test_layout():
    view = match_view(np.zeros((48, 64, 3), np.uint8), None, -1, 0.0)
    assert BANNER == TITLE + CAPTION
    assert view.shape == (BANNER + H, 2 * W, 3)


def test_a_wide_frame_is_letterboxed_not_stretched():
    frame = np.full((32, 64, 3), 200, np.uint8)  # 2:1, the panel is 4:3
    left, _ = panels(match_view(frame, None, 0, 0.5))
    rows = np.flatnonzero(left[:, W // 2, 0] > 0)
    assert left[:, :, 0].min() == 0  # bars
    assert rows.size == W // 2  # 192 x 96: the frame's 2:1, centred
    assert rows[0] == (H - W // 2) // 2
    assert np.all(left[rows[0]:rows[-1] + 1] == 200)
    tall = letterbox(np.full((100, 20, 3), 255, np.uint8), W, H)  # 1:5: bars left and right
    cols = np.flatnonzero(tall[H // 2, :, 0] > 0)
    assert cols.size == round(20 * H / 100) and tall.shape == (H, W, 3)


def test_a_frame_of_the_panels_shape_fills_it_as_a_plain_resize():
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    left, _ = panels(match_view(frame, None, 0, 0.5))
    assert np.array_equal(left, cv2.resize(frame, (W, H), interpolation=cv2.INTER_AREA))


def test_a_dark_reference_is_shown_as_it_is_and_captioned_unlike_a_missing_one():
    frame = np.full((48, 64), 120, np.uint8)
    dark = np.full((48, 64), 3, np.uint8)
    with_dark = match_view(frame, dark, 7, 0.4)
    missing = match_view(frame, None, 7, 0.4)
    assert np.array_equal(panels(with_dark)[1], thumbnail_panel(dark, SCALE))  # exact, no text over it
    hatched = panels(missing)[1]
    assert len(np.unique(hatched)) > 2 and not np.array_equal(hatched, panels(with_dark)[1])
    # The captions (the banner's lower rows above each panel) differ between the two ...
    right_caption = (slice(TITLE, BANNER), slice(W, 2 * W))
    assert with_dark[right_caption].any() and missing[right_caption].any()
    assert not np.array_equal(with_dark[right_caption], missing[right_caption])
    # ... and the query panel is captioned too.
    assert with_dark[TITLE:BANNER, :W].any()


def test_gray_and_16_bit_frames():
    for frame in (np.full((30, 90), 77, np.uint8), np.full((30, 90), 77 << 8, np.uint16)):
        left, _ = panels(match_view(frame, None, 1, 0.1))
        assert left.max() == 77 and left.min() == 0
