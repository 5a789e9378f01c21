"""Tracking (issue 16, item 2): with pre-selection and sequences, each frame also runs the modules
where the best sequence hypotheses predict it; online (Localizer, as the node) equals offline."""

from __future__ import annotations

import numpy as np
import pytest

from vprsnn_ros.eval.evaluation import evaluate
from vprsnn_ros.localizer import Localizer
from vprsnn_ros.model.ensemble import load_model
from vprsnn_ros.snn.inference import Scorer
from vprsnn_ros.snn.tracking import Tracker, place_modules_of, step_offsets


@pytest.mark.parametrize("matcher", ["diagonal", "seqslam"])
@pytest.mark.parametrize("fixture", ["model16", "model16_tuned"])
def test_online_tracking_equals_offline_evaluation(fixture, matcher, route16, request):
    members = load_model(request.getfixturevalue(fixture))
    report, S, _gt = evaluate(members, route16.query_pixels, sequence_length=4, preselect_k=1,
                              sequence_matcher=matcher, split="all")
    assert report["tracking"] is True
    loc = Localizer(members, sequence_length=4, preselect_k=1, sequence_matcher=matcher)
    online = np.stack([loc.localize(image).scores for image in route16.query])
    np.testing.assert_array_equal(online, S)
    assert report["timing"]["modules_per_query"] == round(float(np.mean(loc.tracker.modules_run[-16:])), 3)


def test_tracking_runs_the_modules_of_the_predicted_places(model16_tuned, route16):
    members = load_model(model16_tuned)
    net = members[0]
    tracker = Tracker(Scorer(members, preselect_k=1), sequence_length=3)
    assert tracker.active
    place_module = place_modules_of(net)
    for q, pixels in enumerate(route16.query_pixels):
        predicted = None if tracker._predicted is None else tracker._predicted.copy()
        tracker.step(pixels, q)
        ran = set(tracker.scorer.last_modules[0][0].tolist())
        template_top = set(tracker.scorer.choose_modules(pixels[None])[0][0].tolist())
        if q < 3:  # no full sequence yet: the template's choice only
            assert ran == template_top and predicted is None
        else:
            assert predicted is not None
            assert ran == template_top | set(place_module[predicted].tolist())
    assert max(tracker.modules_run) > 1  # tracking did add modules


def test_without_sequences_or_preselection_nothing_is_tracked(model16_tuned):
    members = load_model(model16_tuned)
    assert not Tracker(Scorer(members, preselect_k=1), sequence_length=1).active
    assert not Tracker(Scorer(members, preselect_k=0), sequence_length=5).active
    np.testing.assert_array_equal(step_offsets("diagonal"), [1])
    np.testing.assert_array_equal(step_offsets("seqslam"), [1])
