"""Metrics on hand-computed examples and against brute-force references; plots."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.eval import plots
from vprsnn_ros.eval.metrics import (
    RECALL_NS,
    best_matches,
    distance_confidence,
    evaluate_scores,
    pr_auc,
    pr_curve,
    pr_curves,
    recall_at_100_precision,
    recall_at_n,
)

NINF = -np.inf


# --------------------------------------------------------------------------- references
def ref_recall(S, gt, ns, tolerance=0):
    """Full stable argsort per row: the literal definition."""
    correct = {n: 0 for n in ns}
    counted = 0
    for q in range(S.shape[0]):
        if gt[q] < 0 or np.all(np.isneginf(S[q])):
            continue
        counted += 1
        order = np.argsort(-S[q], kind="stable")
        for n in ns:
            if np.any(np.abs(order[:n] - gt[q]) <= tolerance):
                correct[n] += 1
    return {n: (correct[n] / counted if counted else 0.0) for n in ns}


def ref_pr(conf, correct, has):
    """Threshold by threshold, straight from the definition."""
    P, R = [1.0], [0.0]
    for t in sorted(set(conf.tolist()), reverse=True):
        acc = conf >= t
        tp = np.sum(acc & correct & has)
        P.append(tp / acc.sum())
        R.append(tp / has.sum())
    return np.array(P), np.array(R)


# --------------------------------------------------------------------------- recall@N
TIE_S = np.array(
    [
        [0.5, 0.9, 0.9, 0.1],  # gt 1: tie with place 2, lower index wins -> rank 0
        [0.5, 0.9, 0.9, 0.1],  # gt 2: loses the tie -> rank 1
        [0.9, 0.1, 0.2, 0.3],  # gt 3: rank 1
        [0.1, 0.2, 0.3, 0.4],  # gt 0: rank 3
    ]
)
TIE_GT = np.array([1, 2, 3, 0])


def test_recall_ties_broken_by_lower_index():
    r = recall_at_n(TIE_S, TIE_GT, ns=(1, 2, 3, 4))
    assert r == {1: 0.25, 2: 0.75, 3: 0.75, 4: 1.0}


def test_recall_n_clamped_to_n_places():
    r = recall_at_n(TIE_S, TIE_GT, ns=(10, 25))
    assert r == {10: 1.0, 25: 1.0}


def test_recall_tolerance_hand_example():
    # windows: {0,1,2} rank 0; {1,2,3} rank 0; {2,3} best 3 rank 1; {0,1} best 1 rank 2
    r = recall_at_n(TIE_S, TIE_GT, ns=(1, 2, 3), tolerance=1)
    assert r == {1: 0.5, 2: 0.75, 3: 1.0}


def test_recall_tolerance_window_clipped_and_neg_inf_inside():
    # Window of gt 0 with tol 2 is {0,1,2}; every in-window place is -inf and
    # the stable order puts place 0 (first -inf) at rank 2.
    S = np.array([[NINF, NINF, NINF, 0.3, 0.2, 0.1]])
    r = recall_at_n(S, np.array([0]), ns=(1, 2, 3, 4), tolerance=2)
    assert r == {1: 0.0, 2: 0.0, 3: 0.0, 4: 1.0}
    assert r == ref_recall(S, [0], (1, 2, 3, 4), 2)


def test_recall_skips_undefined_rows_and_unmatched_queries():
    S = np.vstack([TIE_S, np.full((1, 4), NINF), [[0.0, 1.0, 0.0, 0.0]]])
    gt = np.r_[TIE_GT, 0, -1]
    r = recall_at_n(S, gt, ns=(1, 2, 3, 4))
    assert r == {1: 0.25, 2: 0.75, 3: 0.75, 4: 1.0}
    assert evaluate_scores(S, gt)["queries"] == 4


def test_recall_default_gt_is_diagonal():
    S = np.eye(5) + 0.01
    S[3] = [0, 0, 0, 0.5, 1]  # query 3 second
    assert recall_at_n(S, ns=(1, 2)) == {1: 0.8, 2: 1.0}


def test_recall_no_counted_query_is_zero():
    assert recall_at_n(np.full((3, 3), NINF), ns=(1,)) == {1: 0.0}


@pytest.mark.parametrize("tolerance", [0, 1, 3])
def test_recall_matches_brute_force_with_many_ties(tolerance):
    rng = np.random.default_rng(tolerance)
    S = rng.integers(0, 4, size=(60, 40)).astype(float)  # heavy ties
    S[rng.random(S.shape) < 0.1] = NINF
    S[[0, 7]] = NINF
    gt = rng.integers(-1, 40, size=60)
    ns = (1, 2, 5, 10, 40, 100)
    assert recall_at_n(S, gt, ns, tolerance) == ref_recall(S, gt, ns, tolerance)


def test_recall_on_3000_squared_is_the_definition():
    """A large matrix (how fast is bench/'s question): the literal definition's recall."""
    rng = np.random.default_rng(0)
    S = rng.random((3000, 3000)).astype(np.float32)
    assert recall_at_n(S, tolerance=2) == ref_recall(S, np.arange(3000), RECALL_NS, tolerance=2)


def test_recall_bad_arguments():
    with pytest.raises(ConfigError):
        recall_at_n(TIE_S, TIE_GT, ns=(0,))
    with pytest.raises(ConfigError):
        recall_at_n(TIE_S, TIE_GT, tolerance=-1)
    with pytest.raises(ConfigError):
        recall_at_n(TIE_S, np.array([0, 1, 2, 4]))  # place 4 does not exist
    with pytest.raises(ConfigError):
        recall_at_n(np.array([[np.nan, 1.0]]), np.array([0]))
    with pytest.raises(ConfigError):
        recall_at_n(np.zeros(4))


def test_best_matches_first_max_wins():
    best, score = best_matches(TIE_S)
    np.testing.assert_array_equal(best, [1, 1, 0, 3])
    np.testing.assert_array_equal(score, [0.9, 0.9, 0.9, 0.4])


# --------------------------------------------------------------------------- PR
# Shuffled on purpose: pr_curve must sort.   sorted view:
#   conf  0.9  0.8  0.8  0.5  0.3
#   corr  T    F    T    T    F(no true match)
PR_CONF = np.array([0.5, 0.8, 0.3, 0.9, 0.8])
PR_CORR = np.array([True, False, False, True, True])
PR_HAS = np.array([True, True, False, True, True])


def test_pr_curve_hand_example():
    p, r, t = pr_curve(PR_CONF, PR_CORR, PR_HAS)
    np.testing.assert_allclose(p, [1, 1, 2 / 3, 3 / 4, 3 / 5])
    np.testing.assert_allclose(r, [0, 1 / 4, 2 / 4, 3 / 4, 3 / 4])
    np.testing.assert_array_equal(t, [np.inf, 0.9, 0.8, 0.5, 0.3])
    assert pr_auc(p, r) == pytest.approx(61 / 96)
    assert recall_at_100_precision(p, r) == 0.25


def test_pr_curve_matches_definition_on_random_data():
    rng = np.random.default_rng(1)
    conf = rng.integers(0, 10, size=200).astype(float)
    correct = rng.random(200) < 0.6
    has = rng.random(200) < 0.9
    p, r, _ = pr_curve(conf, correct, has)
    rp, rr = ref_pr(conf, correct, has)
    np.testing.assert_allclose(p, rp)
    np.testing.assert_allclose(r, rr)


def test_pr_auc_perfect_classifier_is_one():
    conf = np.linspace(0, 1, 50)
    p, r, _ = pr_curve(conf, np.ones(50, bool))
    assert pr_auc(p, r) == pytest.approx(1.0)
    assert recall_at_100_precision(p, r) == 1.0


def test_pr_auc_separable_classifier_is_one():
    # Wrong matches all have lower confidence than the correct ones.
    conf = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    correct = np.array([True, True, True, False, False])
    p, r, _ = pr_curve(conf, correct)
    assert recall_at_100_precision(p, r) == pytest.approx(3 / 5)
    # Recall stalls at 3/5 with falling precision: no area beyond it.
    assert pr_auc(p, r) == pytest.approx(3 / 5)


def test_recall_at_100_precision_none():
    p, r, _ = pr_curve(np.array([1.0, 0.5]), np.array([False, True]))
    assert recall_at_100_precision(p[1:], r[1:]) == 0.0
    assert recall_at_100_precision(p, r) == 0.0  # only the start point


def test_pr_curve_bad_lengths():
    with pytest.raises(ConfigError):
        pr_curve(np.zeros(3), np.zeros(2, bool))


# --------------------------------------------------------------------------- evaluate
def _noisy_scores(seed, n=80, m=70):
    rng = np.random.default_rng(seed)
    S = rng.random((n, m))
    gt = np.arange(n) % m
    hit = rng.random(n) < 0.7
    S[np.flatnonzero(hit), gt[hit]] += 1.0
    return S, gt


def test_pr_auc_distance_equals_best_score_confidence():
    S, gt = _noisy_scores(2)
    _, score = best_matches(S)
    res = evaluate_scores(S, gt, confidence=score)
    assert 0.0 < res["pr_auc"] < 1.0
    assert res["pr_auc_distance"] == pytest.approx(res["pr_auc"], abs=1e-12)
    # Without a confidence the distance rule drives pr_auc too.
    res2 = evaluate_scores(S, gt)
    assert res2["pr_auc"] == res2["pr_auc_distance"] == res["pr_auc_distance"]


def test_distance_confidence_is_negated_best_distance():
    S = np.array([[0.1, 0.4], [NINF, 0.9], [NINF, NINF]])
    D = 0.9 - S
    np.testing.assert_allclose(distance_confidence(S)[:2], -D[:2].min(axis=1))
    assert distance_confidence(S)[2] == NINF


def test_evaluate_scores_keys_and_json():
    S, gt = _noisy_scores(3)
    S[:4] = NINF
    res = evaluate_scores(S, gt, tolerance=2)
    assert set(res) == {"recall", "recall_tolerance", "pr_auc", "pr_auc_tolerance", "recall_at_100_precision",
                        "queries", "pr_auc_distance"}
    assert list(res["recall"]) == [str(n) for n in RECALL_NS]
    assert res["queries"] == 76
    assert res["recall"]["1"] == pytest.approx(ref_recall(S, gt, (1,))[1])
    assert res["recall_tolerance"]["1"] >= res["recall"]["1"]
    json.loads(json.dumps(res, allow_nan=False))
    assert "recall_tolerance" not in evaluate_scores(S, gt)


def test_evaluate_scores_pr_ignores_undefined_rows_and_counts_unmatched_as_fp():
    # q0 undefined; q1 correct (conf high); q2 has no true match (accepted = FP);
    # q3 wrong.
    S = np.array(
        [
            [NINF, NINF, NINF],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 0.9],
            [0.0, 0.0, 0.5],
        ]
    )
    gt = np.array([0, 1, -1, 0])
    curves = pr_curves(S, gt)
    p, r, _ = curves["distance"]
    np.testing.assert_allclose(p, [1, 1, 1 / 2, 1 / 3])
    np.testing.assert_allclose(r, [0, 1 / 2, 1 / 2, 1 / 2])
    res = evaluate_scores(S, gt)
    assert res["recall_at_100_precision"] == 0.5
    assert res["queries"] == 2


# --------------------------------------------------------------------------- plots
def _assert_png(path, min_side=50):
    assert os.path.isfile(path)
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] >= min_side and img.shape[1] >= min_side


def test_plots_write_valid_pngs_without_temp_files(tmp_path):
    S, gt = _noisy_scores(4)
    S[:3] = NINF
    curves = pr_curves(S, gt, confidence=best_matches(S)[1])
    plots.save_pr_curve(tmp_path / "pr.png",
                        {k: (v[0], v[1]) for k, v in curves.items()}, title="PR")
    plots.save_similarity_matrix(tmp_path / "sim.png", S, gt, title="S")
    plots.save_recall_curve(tmp_path / "recall.png",
                            evaluate_scores(S, gt)["recall"], title="R@N")
    # Overwriting an existing file works too.
    plots.save_recall_curve(tmp_path / "recall.png", {1: 0.5, 5: 0.9})
    for name in ("pr.png", "sim.png", "recall.png"):
        _assert_png(tmp_path / name)
    assert sorted(os.listdir(tmp_path)) == ["pr.png", "recall.png", "sim.png"]


def test_similarity_matrix_large_is_downsampled(tmp_path):
    rng = np.random.default_rng(5)
    S = rng.random((2100, 1500)).astype(np.float32)
    S[:5] = NINF
    plots.save_similarity_matrix(tmp_path / "big.png", S, np.arange(2100) % 1500)
    _assert_png(tmp_path / "big.png")
    assert os.listdir(tmp_path) == ["big.png"]


def test_max_pool_pads_with_neg_inf():
    S = np.arange(15, dtype=float).reshape(3, 5)
    np.testing.assert_array_equal(plots._max_pool(S, 2, 2), [[6, 8, 9], [11, 13, 14]])


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(RuntimeError):
        plots.save_recall_curve(tmp_path / "r.png", {1: 0.5})
    assert os.listdir(tmp_path) == []
