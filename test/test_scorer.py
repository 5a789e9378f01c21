"""One scoring path and one confidence rule (issue 15, item 2), and the input coding's rate_scale (item 8)."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from vprsnn_ros.eval.evaluation import evaluate, query_scores
from vprsnn_ros.eval.replay_report import worst_match_rows, write_replay_report
from vprsnn_ros.localizer import Localizer
from vprsnn_ros.model.ensemble import load_model
from vprsnn_ros.parallel.tasks import scores_task
from vprsnn_ros.snn.confidence import ConfidenceRule, bounded_confidence, max_spikes_per_neuron, score_confidence
from vprsnn_ros.snn.inference import Scorer
from vprsnn_ros.snn.network import ModularSNN, NetworkConfig
from vprsnn_ros.snn.params import NetworkParams
from vprsnn_ros.snn.preselect import ModuleRanker


def _by_hand(members, pixels, ids, k=None, readout=None):
    """Scores summed over members, each member's modules chosen and read out by hand."""
    total = np.zeros((len(pixels), members[0].n_places))
    for net in members:
        modules = None if k is None else ModuleRanker(net).top_modules(pixels, k)
        counts = net.spike_counts(net.config.input_rates(pixels), ids, modules=modules)
        total += net.scores(counts, modules=modules, readout=readout)
    return total


@pytest.mark.parametrize("k", [None, 1, 2])
@pytest.mark.parametrize("readout", ["mean", "zscore"])
def test_scorer_equals_the_readout_of_each_members_counts(model16, route16, k, readout):
    members = load_model(model16)
    ensemble = [members[0], dataclasses.replace(members[0], config=members[0].config.with_(seed=5))]
    pixels, ids = route16.query_pixels[:6], np.arange(6)
    scorer = Scorer(ensemble, preselect_k=k or 0, readout=readout)
    got = scorer.scores(pixels, ids)
    np.testing.assert_array_equal(got, _by_hand(ensemble, pixels, ids, k, readout))
    # The modules it reports are the ones it ran.
    for net, mods in zip(ensemble, scorer.last_modules):
        want = np.arange(net.n_modules) if k is None else ModuleRanker(net).top_modules(pixels, k)
        np.testing.assert_array_equal(mods, np.broadcast_to(want, mods.shape))
    # Reusing its laid-out weights and buffers changes nothing; batches neither.
    np.testing.assert_array_equal(scorer.scores(pixels, ids), got)
    np.testing.assert_array_equal(scorer.scores_in_batches(pixels, batch=4), got)


def test_localizer_evaluation_and_cluster_task_score_alike(model16_tuned, route16):
    members = load_model(model16_tuned)
    pixels = route16.query_pixels
    ids = np.arange(len(pixels))
    modules = members[0].module_split("all")
    offline = query_scores(members, pixels, modules, preselect_k=2, batch=5)
    loc = Localizer(members, preselect_k=2)
    online = np.stack([loc.scores_from_pixels(pixels[q:q + 1], [q])[0] for q in ids])
    task = np.concatenate([scores_task(members[0], pixels[a:a + 7], ids[a:a + 7], modules, None, 2)
                           for a in range(0, len(pixels), 7)])
    np.testing.assert_array_equal(online, offline)
    np.testing.assert_array_equal(task, offline)


def test_the_network_holds_only_trained_arrays():
    private = [f.name for f in dataclasses.fields(ModularSNN) if f.name.startswith("_")]
    assert private == []


def test_confidence_rules():
    S = np.array([[1.0, 3.0, -np.inf], [-np.inf, -np.inf, -np.inf], [20.0, 0.0, 1.0]])
    native = ConfidenceRule(max_score=10.0)
    np.testing.assert_array_equal(native(S), [0.3, 0.0, 1.0])  # clipped to [0, 1], nothing finite: 0
    bounded = ConfidenceRule(max_score=10.0, scale=2.0)
    np.testing.assert_allclose(bounded(S), [1 / (1 + np.exp(-1.5)), 0.0, 1 / (1 + np.exp(-10.0))], rtol=0, atol=0)
    np.testing.assert_array_equal(native(S), score_confidence(S, 10.0))
    np.testing.assert_array_equal(bounded(S), bounded_confidence(S, 2.0))
    for rule in (native, bounded):
        assert ConfidenceRule.from_report(rule.report_fields()) == rule
    cfg = NetworkConfig()
    assert max_spikes_per_neuron(cfg) == 7  # 350 ms, 50 ms effective refractory period: 0, 50, ..., 300
    assert ConfidenceRule.for_setup(cfg, "mean", "diagonal", 3, 2) == ConfidenceRule(max_score=42.0)
    assert ConfidenceRule.for_setup(cfg, "zscore", "diagonal", 3, 2) == ConfidenceRule(42.0, 6.0)
    assert ConfidenceRule.for_setup(cfg, "mean", "seqslam", 1, 1) == ConfidenceRule(7.0, 1.0)


@pytest.mark.parametrize("fixture", ["model16", "model16_tuned"])
def test_report_frames_csv_and_worst_matches_share_the_localizers_confidence(fixture, route16, tmp_path, request):
    """The confidence the node publishes (the Localizer's), report.json's PR input, frames.csv and the
    worst-matches labels are one number per frame, for the mean and the z-score readout alike."""
    model = request.getfixturevalue(fixture)
    loc = Localizer(model)
    stamps = [1000 + k for k in range(len(route16.query))]
    scored, published = {}, []
    for image, stamp in zip(route16.query, stamps):
        est = loc.localize(image)
        scored[stamp] = (0.0, est.scores)
        published.append(est.confidence)
    report = write_replay_report(tmp_path, model=str(model), bag="query.mcap", names=route16.names, stamps=stamps,
                                 images=route16.query, scored=scored, seen={}, frames_played=len(stamps))
    assert report["readout"] == loc.readout
    rule = ConfidenceRule.from_report(report)
    assert rule == loc.confidence_rule
    with (tmp_path / "frames.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [float(r["confidence"]) for r in rows] == [float(f"{c:.6f}") for c in published]
    worst = worst_match_rows(stamps, scored, rule, count=len(stamps))
    assert len(worst) == len(stamps)
    for _error, conf, frame, _place in worst:
        assert conf == published[frame]
    assert Path(tmp_path / "worst_matches.png").exists()


def test_evaluate_reports_the_rule_it_used(model16_tuned, route16):
    members = load_model(model16_tuned)
    report, S, _gt = evaluate(members, route16.query_pixels)
    rule = ConfidenceRule.from_report(report)
    assert rule == Localizer(members).confidence_rule
    assert report["confidence"] == "1 / (1 + exp(-s1 / (L * K)))"


def test_rate_scale_drives_the_input_rates(route16):
    pixels = route16.ref_pixels[:3]
    cfg = NetworkConfig()
    assert cfg.params.rate_scale == 0.25
    # The published u / 4, to the bit.
    np.testing.assert_array_equal(cfg.input_rates(pixels), (pixels.astype(np.float32) / np.float32(4.0)))
    double = cfg.with_(params=NetworkParams(rate_scale=0.5))
    np.testing.assert_array_equal(double.input_rates(pixels), 2 * cfg.input_rates(pixels))
    assert NetworkConfig.from_dict(double.to_dict()).params.rate_scale == 0.5
