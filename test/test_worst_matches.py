"""The replay report's strip of the worst matches (``worst_matches.png``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vprsnn_ros.eval.replay_report import worst_match_rows, write_worst_matches
from vprsnn_ros.eval.views import BANNER, THUMB_SIZE, make_thumbnails, thumbnail_panel
from vprsnn_ros.io.preprocess import preprocess_batch
from vprsnn_ros.io.synthetic import make_route
from vprsnn_ros.snn.confidence import ConfidenceRule
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.train.training import train_network

N = 6


@pytest.mark.slow
@pytest.mark.parametrize("with_thumbnails", [True, False])
def test_strip_lists_the_worst_matches_first_beside_their_thumbnails(tmp_path, with_thumbnails):
    reference, query = make_route(N, seed=2)
    model = tmp_path / "model"
    thumbs = make_thumbnails(reference)
    train_network(NetworkConfig(n_neurons=10, places_per_module=3, epochs=1), [preprocess_batch(reference)],
                  [f"p{k}" for k in range(N)], model, workers=1,
                  thumbnails=thumbs if with_thumbnails else None)
    # Answers: frame k matched to place best[k] (frame k is place k); frame 4 is unanswered.
    best = [0, 1, 5, 3, None, 2]
    stamps = [100 + k for k in range(N)]
    scored = {}
    for k, b in enumerate(best):
        if b is not None:
            scores = np.full(N, 1.0)
            scores[b] = 5.0 + k  # confidence grows with k
            scored[stamps[k]] = (0.0, scores)
    rows = worst_match_rows(stamps, scored, ConfidenceRule(max_score=20.0), count=3)
    assert [(frame, place) for _error, _conf, frame, place in rows] == [(5, 2), (2, 5), (3, 3)]
    assert [conf for _error, conf, _frame, _place in rows] == [10.0 / 20.0, 7.0 / 20.0, 8.0 / 20.0]
    path = write_worst_matches(tmp_path, list(query), rows, str(model))
    assert path == tmp_path / "worst_matches.png"
    strip = cv2.imread(str(path), cv2.IMREAD_COLOR)
    scale = 3
    view_h = BANNER + THUMB_SIZE[1] * scale
    assert strip.shape == (3 * view_h + 2 * 2, 2 * THUMB_SIZE[0] * scale, 3)
    # Largest error first (frames 5 and 2, off by 3; frame 5 is more confident), then the most
    # confident of the correct ones (frame 3). (frame, matched place):
    order = [(5, 2), (2, 5), (3, 3)]
    panel_w = THUMB_SIZE[0] * scale
    for row, (frame, place) in enumerate(order):
        top = row * (view_h + 2)
        right = strip[top + BANNER: top + view_h, panel_w:]
        if with_thumbnails:
            assert np.array_equal(right, thumbnail_panel(thumbs[place], scale)), (row, frame, place)
        else:
            assert not np.array_equal(right, thumbnail_panel(thumbs[place], scale))
