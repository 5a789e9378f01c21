"""Issue 7 infrastructure: SAD baseline, z-score readout, profiles, threshold without queries.

Every switch is checked both ways: off gives today's result bit for bit (the
faithful and tuned trainings are pinned array by array in test_golden.py), on
changes what it says it changes.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.eval import baseline
from vprsnn_ros.eval.baseline import baseline_report, sad_scores
from vprsnn_ros.eval.evaluation import evaluate
from vprsnn_ros.eval.metrics import evaluate_scores, recall_at_n
from vprsnn_ros.io.thumbnails import make_thumbnails
from vprsnn_ros.localizer import Localizer
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.snn.coding import rates_hz
from vprsnn_ros.snn.confidence import bounded_confidence
from vprsnn_ros.snn.network import NetworkConfig, place_scores
from vprsnn_ros.snn.profiles import FAITHFUL, TUNED, Profile, get_profile
from vprsnn_ros.snn.readout import ReferenceStats, same_place_pairs, zscore_merge
from vprsnn_ros.snn.sequence import match_sequences
from vprsnn_ros.train.training import REFERENCE_STREAM, choose_threshold_without_queries, train_network

# tuned's readout and threshold switches alone: its input coding, inhibition ramp and pre-selection off.
READOUT_ONLY = TUNED.with_(name="readout_only", spike_trains="poisson", query_rate_gain=1.0, preselect=False,
                           query_inhibition=1.0, inhibition_start=1.0)

# --------------------------------------------------------------------------
# SAD baseline
# --------------------------------------------------------------------------


def slow_sad(q, r):
    out = np.zeros((len(q), len(r)))
    for i in range(len(q)):
        for j in range(len(r)):
            out[i, j] = -sum(abs(int(a) - int(b)) for a, b in zip(q[i], r[j]))
    return out


def test_sad_matches_slow_reference_across_blocks(monkeypatch):
    rng = np.random.default_rng(0)
    q = rng.integers(0, 256, (7, 50), dtype=np.uint8)
    r = rng.integers(0, 256, (5, 50), dtype=np.uint8)
    expected = slow_sad(q, r)
    assert np.array_equal(sad_scores(q, r), expected)
    monkeypatch.setattr(baseline, "_BLOCK_ELEMENTS", 300)  # 1 query per block
    assert np.array_equal(sad_scores(q, r), expected)
    assert np.array_equal(sad_scores(q[0], r), expected[:1])


def test_sad_rejects_other_inputs():
    with pytest.raises(ConfigError, match="uint8"):
        sad_scores(np.zeros((2, 4)), np.zeros((2, 4), np.uint8))
    with pytest.raises(ConfigError, match="pixels"):
        sad_scores(np.zeros((2, 4), np.uint8), np.zeros((2, 5), np.uint8))


def test_baseline_report_applies_places_rows_and_matcher():
    rng = np.random.default_rng(1)
    r = rng.integers(0, 256, (12, 30), dtype=np.uint8)
    q = np.clip(r.astype(int) + rng.integers(-40, 40, r.shape), 0, 255).astype(np.uint8)
    places = np.arange(4, 12)
    rep = baseline_report(q[4:], r, np.arange(8), places=places, sequence_length=3,
                          sequence_matcher="seqslam")
    S = match_sequences(sad_scores(q[4:], r)[:, places], 3, "seqslam")
    assert rep["recall"] == evaluate_scores(S, np.arange(8))["recall"]
    assert rep["method"] == "sad" and rep["sequence_matcher"] == "seqslam"
    rows = np.array([2, 5, 7])
    rep_rows = baseline_report(q[4:], r, places[rows] - 0, rows=rows)
    assert rep_rows["queries"] == 3


# --------------------------------------------------------------------------
# readout
# --------------------------------------------------------------------------


def slow_place_stats(counts, assignments, n_places, masked):
    S = place_scores(counts, assignments, n_places, masked)
    return S.mean(axis=0), S.std(axis=0)


@pytest.mark.parametrize("with_mask", [False, True])
def test_reference_stats_give_each_places_score_mean_and_std(with_mask):
    rng = np.random.default_rng(3)
    M, N, P = 3, 10, 9
    assignments = rng.integers(-1, P, (M, N)).astype(np.int32)
    counts = rng.integers(0, 8, (20, M, N))
    masked = rng.random((M, N)) < 0.3 if with_mask else None
    stats = ReferenceStats(assignments=assignments, n_places=P)
    stats.add(counts[:7])
    stats.add(counts[7:])
    mean, std = stats.place_stats(masked)
    exp_mean, exp_std = slow_place_stats(counts, assignments, P, masked)
    np.testing.assert_allclose(mean, exp_mean, atol=1e-12)
    np.testing.assert_allclose(std, exp_std, atol=1e-9)
    again = ReferenceStats.from_arrays(assignments, P, stats.arrays())
    np.testing.assert_array_equal(again.place_stats(masked)[1], std)


@pytest.mark.parametrize("with_mask", [False, True])
def test_reference_stats_of_the_leading_modules_are_those_recorded_on_them_alone(with_mask):
    # What extension scores its calibration modules with (train/extend.py).
    rng = np.random.default_rng(5)
    M, N, P, lead = 4, 10, 12, 2
    assignments = (np.arange(M)[:, None] * 3 + rng.integers(-1, 3, (M, N))).astype(np.int32)  # 3 places a module
    assignments[assignments < np.arange(M)[:, None] * 3] = -1
    counts = rng.integers(0, 8, (15, M, N))
    masked = rng.random((lead, N)) < 0.3 if with_mask else None
    whole = ReferenceStats(assignments=assignments, n_places=P)
    whole.add(counts)
    alone = ReferenceStats(assignments=assignments[:lead], n_places=P)
    alone.add(counts[:, :lead])
    for got, expected in zip(whole.leading_modules(lead).place_stats(masked), alone.place_stats(masked)):
        np.testing.assert_array_equal(got, expected)


def test_same_place_pairs_are_every_ordered_pair_of_one_place():
    a = np.array([[0, 1, 0, -1], [2, 2, 2, 1]])
    i, j = same_place_pairs(a)
    flat = a.reshape(-1)
    got = sorted(zip(i.tolist(), j.tolist()))
    expected = sorted((x, y) for x in range(8) for y in range(8) if flat[x] >= 0 and flat[x] == flat[y])
    assert got == expected


def test_zscore_merge_against_loops_and_unused_places():
    rng = np.random.default_rng(4)
    S = rng.random((5, 8)) * 3
    mean, std = rng.random(8), rng.random(8) + 0.5
    regions = [np.array([0, 3, 4]), np.array([1, 2]), np.array([6, 7])]
    Z = zscore_merge(S, mean, std, regions)
    z1 = (S - mean) / std
    for region in regions:
        block = z1[:, region]
        np.testing.assert_allclose(Z[:, region], (block - block.mean(1, keepdims=True))
                                   / block.std(1, keepdims=True), atol=1e-12)
    assert np.all(np.isneginf(Z[:, 5]))


def test_bounded_confidence_is_increasing_in_the_best_score():
    S = np.array([[-3.0, 0.0], [5.0, 1.0], [-np.inf, -np.inf]])
    c = bounded_confidence(S, 2)
    assert c[2] == 0.0 and 0 < c[0] < c[1] < 1
    assert c[0] == pytest.approx(0.5)


# --------------------------------------------------------------------------
# profiles, training and evaluation on a tiny synthetic route
# --------------------------------------------------------------------------

N_PLACES = 16
CONFIG = NetworkConfig(n_neurons=40, places_per_module=4, epochs=12, assign_presentations=16)


@pytest.fixture(scope="module")
def route(route16):
    """The session's 16-place route (conftest): names, pixels, query pixels, query frames."""
    return route16.names, route16.ref_pixels, route16.query_pixels, route16.query


@pytest.fixture(scope="module")
def models(route16, model16, model16_tuned, tmp_path_factory):
    """faithful and tuned: the session's (conftest, read-only); readout_only: this file's."""
    root = tmp_path_factory.mktemp("profiles")
    # tuned's readout and threshold switches alone (its input coding is test_input_coding.py's),
    # trained like the session's models (thumbnails included) so that the parts compare.
    train_network(CONFIG, [route16.ref_pixels], route16.names, root / "readout_only", workers=2,
                  profile=READOUT_ONLY, thumbnails=make_thumbnails(route16.reference))
    return model16, model16_tuned, root / "readout_only"


def test_profiles_are_recorded_and_readout_switches_do_not_touch_training(models):
    faithful, tuned, readout_only = models
    meta_f, meta_t = ModelStore.open(faithful).meta, ModelStore.open(tuned).meta
    meta_r = ModelStore.open(readout_only).meta
    assert meta_f["profile"] == FAITHFUL.to_dict() and meta_t["profile"] == TUNED.to_dict()
    for name in ("network", "module_0000", "module_0003", "hyperactivity", "reference_stats",
                 "reference_pixels"):
        assert meta_f["parts"][name]["sha256"] == meta_r["parts"][name]["sha256"], name
    # tuned's input coding is copied into the network's config, which every runner reads.
    cfg = load_network(tuned).config
    assert (cfg.spike_trains, cfg.query_rate_gain, cfg.query_inhibition) == (
        TUNED.spike_trains, TUNED.query_rate_gain, TUNED.query_inhibition)
    assert meta_f["parts"]["module_0000"]["sha256"] != meta_t["parts"]["module_0000"]["sha256"]
    assert load_network(faithful).readout == "mean" and load_network(tuned).readout == "zscore"
    # Without a calibration query the faithful profile says it does not mask; tuned chose on the reference.
    assert meta_f["threshold_choice"]["method"] == "none" and meta_f["hyperactive_threshold"] == 0
    assert meta_t["threshold_choice"]["method"] == "reference_self_recognition"


def test_auto_threshold_is_the_best_self_recognition_of_the_reference(route, models):
    names, ref, _, _ = route
    _, tuned, _ = models
    meta = ModelStore.open(tuned).meta
    table = meta["threshold_choice"]["table"]
    best = max(r["recall_at_1"] for r in table)
    assert meta["hyperactive_threshold"] == min(r["threshold"] for r in table if r["recall_at_1"] == best)
    net = load_network(tuned)
    t, again = choose_threshold_without_queries(net, rates_hz(ref).astype(np.float64), readout="zscore")
    assert again == table and t == meta["hyperactive_threshold"]


def test_old_model_without_profile_or_new_parts_loads_faithful_without_baseline(route, models, tmp_path):
    import shutil
    names, _, query, _ = route
    faithful, _, _ = models
    old = tmp_path / "old"
    shutil.copytree(faithful, old)
    manifest = yaml.safe_load((old / "model.yaml").read_text())
    for key in ("profile", "threshold_choice"):
        del manifest[key]
    for part in ("reference_stats", "reference_pixels"):
        del manifest["parts"][part]
        (old / f"{part}.npz").unlink()
    (old / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    net = load_network(old)
    assert net.profile == FAITHFUL and net.reference_stats is None and net.reference_pixels is None
    report, _, _ = evaluate([net], query)
    assert report["baseline"] is None and "reference pixels" in report["baseline_note"]
    with pytest.raises(ConfigError, match="reference statistics"):
        evaluate([net], query, readout="zscore")


def test_readout_switch_off_is_todays_scores_on_is_zscore_merge(route, models):
    _, ref, query, _ = route
    faithful, _, _ = models
    net = load_network(faithful)
    counts = net.spike_counts(rates_hz(query).astype(np.float64), np.arange(N_PLACES))
    today = place_scores(counts, net.assignments, net.n_places, None)
    assert np.array_equal(net.scores(counts), today)
    assert np.array_equal(net.scores(counts, readout="mean"), today)
    # The model's reference statistics are those of the recording pass (same streams).
    ref_counts = net.spike_counts(rates_hz(ref).astype(np.float64), np.arange(N_PLACES) + REFERENCE_STREAM)
    mean, std = net.reference_stats.place_stats(None)
    np.testing.assert_allclose(mean, place_scores(ref_counts, net.assignments, N_PLACES).mean(0), atol=1e-12)
    z = net.scores(counts, readout="zscore")
    assert np.array_equal(z, zscore_merge(today, mean, std, net.regions))
    assert not np.array_equal(np.argsort(-z, axis=1), np.argsort(-today, axis=1))


def test_evaluate_reports_profile_matcher_and_sad_baseline(route, models):
    _, ref, query, _ = route
    _, tuned, _ = models
    net = load_network(tuned)
    report, S, gt = evaluate([net], query, sequence_length=3, sequence_matcher="seqslam")
    assert report["profile"]["name"] == "tuned" and report["readout"] == "zscore"
    assert report["sequence_matcher"] == "seqslam"
    base = report["baseline"]
    assert set(base) >= {"recall", "pr_auc", "recall_at_100_precision", "queries"}
    expected = recall_at_n(match_sequences(sad_scores(query, ref), 3, "seqslam"))
    assert base["recall"] == {str(n): v for n, v in expected.items()}
    # The PR-AUC of the bounded confidence rule (z-scores, SeqSLAM: 1 / (1 + exp(-s1 / 3))).
    assert report["pr_auc"] == evaluate_scores(S, gt, confidence=bounded_confidence(S, 3))["pr_auc"]
    # The readout override on evaluate is the model's switch turned off (on a model that
    # shares faithful's input coding, so that only the readout differs).
    mean_report, S_mean, _ = evaluate([load_network(models[2])], query, readout="mean")
    faithful_report, S_f, _ = evaluate([load_network(models[0])], query)
    assert np.array_equal(S_mean, S_f)


def test_localizer_online_matchers_equal_offline_evaluation(route, models):
    _, _, query, raw = route
    _, tuned, _ = models
    net = load_network(tuned)
    for matcher in ("diagonal", "seqslam"):
        _, S, _ = evaluate([net], query, sequence_length=4, sequence_matcher=matcher)
        loc = Localizer(net, sequence_length=4, sequence_matcher=matcher)
        online = np.stack([loc.localize(image).scores for image in raw])
        assert np.array_equal(online, S), matcher


def test_profile_names_and_switches():
    assert get_profile("faithful") == Profile()
    assert Profile.from_dict(None) == FAITHFUL
    with pytest.raises(ConfigError, match="unknown profile"):
        get_profile("fast")
    with pytest.raises(ConfigError, match="unknown profile switches"):
        Profile.from_dict({"name": "x", "warp": True})
    with pytest.raises(ConfigError, match="readout"):
        Profile(readout="max").validate()


@pytest.mark.slow
def test_cli_train_says_which_t_and_evaluate_prints_and_stores_the_baseline(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from vprsnn_ros.io.synthetic import write_route

    ref_dir, query_dir = write_route(tmp_path / "route", 8, seed=1)

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "vprsnn_ros.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=300, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    tiny = ["--neurons", "20", "--places-per-module", "4", "--epochs", "3"]
    out = cli("train", "--reference", ref_dir, "--out", tmp_path / "m", *tiny, "--profile", "faithful")
    assert "profile faithful: hyperactivity threshold T = 0 (none:" in out
    out = cli("train", "--reference", ref_dir, "--out", tmp_path / "t", *tiny)  # the default profile
    assert "profile tuned: hyperactivity threshold T = " in out and "reference_self_recognition" in out
    out = cli("evaluate", "--model", tmp_path / "t", "--query", query_dir, "--report", tmp_path / "rep",
              "--sequence-length", "2", "--sequence-matcher", "seqslam")
    assert "profile tuned (readout zscore, matcher seqslam)" in out and "\nSAD " in out
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["baseline"]["sequence_matcher"] == "seqslam" and report["profile"]["name"] == "tuned"
    assert set(report["baseline"]["recall"]) == set(report["recall"])


@pytest.mark.slow
def test_calibration_query_decides_t_with_the_profiles_readout(route, tmp_path):
    names, ref, query, _ = route
    tables = {}
    # tuned's T with every module competing (threshold_at_k off: test_threshold_at_k.py).
    for profile in (FAITHFUL, TUNED.with_(threshold_at_k=False)):
        out = tmp_path / profile.name
        train_network(CONFIG, [ref], names, out, workers=2, profile=profile, calibration_places=8,
                      calibration_query=query[:8])
        meta = ModelStore.open(out).meta
        assert meta["threshold_choice"]["method"] == "calibration"
        assert meta["hyperactive_threshold"] == meta["calibration"]["threshold"]
        net = load_network(out)
        mods, places = net.module_split("calibration"), net.split_places("calibration")
        counts = net.spike_counts(rates_hz(query[:8]).astype(np.float64), np.arange(8), modules=mods)
        tables[profile.name] = meta["calibration"]["table"]
        for row in tables[profile.name]:
            S = net.scores(counts, modules=mods, threshold=row["threshold"], readout=profile.readout)
            assert row["recall_at_1"] == recall_at_n(S[:, places], ns=(1,))[1], (profile.name, row)
        # `vprsnn evaluate --split calibration` scores the same queries on the same modules.
        chosen = next(r for r in tables[profile.name] if r["threshold"] == meta["hyperactive_threshold"])
        report, S_cal, gt = evaluate([net], query, split="calibration", preselect_k=0)
        assert report["split"] == "calibration" and S_cal.shape == (8, 8) and list(gt) == list(range(8))
        assert report["recall"]["1"] == chosen["recall_at_1"], (profile.name, report["recall"], chosen)
    # The readouts differ on this route, so the check above tells which one calibrated T.
    assert [r["recall_at_1"] for r in tables["faithful"]] != [r["recall_at_1"] for r in tables["tuned"]]


def test_calibration_split_of_a_model_without_one_is_a_config_error(model16, route16):
    with pytest.raises(ConfigError, match="no calibration split"):
        evaluate([load_network(model16)], route16.query_pixels, split="calibration")


def test_zscore_with_preselection_gives_unrun_places_the_lowest_score(route, models):
    # -inf for places whose module did not run made every sequence and ensemble sum
    # through them -inf, so sequences of pre-selected (K = 1) frames matched nothing.
    _, _, query, _ = route
    net = load_network(models[1])
    counts = net.spike_counts(rates_hz(query).astype(np.float64), np.arange(N_PLACES))
    picks = np.array([[q % net.n_modules] for q in range(N_PLACES)])
    picked = np.take_along_axis(counts, picks[:, :, None], axis=1)
    S = net.scores(picked, modules=picks, readout="zscore")
    full = net.scores(counts, readout="zscore")
    assert np.isfinite(S).all()
    for q in range(N_PLACES):
        ran = net.regions[picks[q, 0]]
        others = np.setdiff1d(np.arange(N_PLACES), ran)
        assert np.all(S[q, others] == S[q, ran].min())
        # The run module's places are ranked as they are among themselves in the full readout.
        assert list(np.argsort(-S[q, ran], kind="stable")) == list(np.argsort(-full[q, ran], kind="stable"))
    seq = match_sequences(S, 3, "diagonal")
    assert np.isfinite(seq[2:]).any()
