"""Training, resume, calibration, inference engines and the Localizer on a tiny synthetic route."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vprsnn_ros.errors import ConfigError, ModelError
from vprsnn_ros.eval.evaluation import evaluate, report_confidence
from vprsnn_ros.eval.metrics import evaluate_scores, recall_at_n
from vprsnn_ros.localizer import Localizer, max_spikes_per_neuron
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.snn.coding import rates_hz
from vprsnn_ros.snn.kernels import scalar as kernels
from vprsnn_ros.snn.network import NetworkConfig, make_regions
from vprsnn_ros.snn.profiles import FAITHFUL
from vprsnn_ros.train.training import train_network

N_PLACES = 16
CONFIG = NetworkConfig(n_neurons=40, places_per_module=4, epochs=12, assign_presentations=16)


@pytest.fixture(scope="module")
def route(route16):
    """The session's 16-place route (conftest): names, frames and pixels."""
    return route16.names, route16.reference, route16.query, route16.ref_pixels, route16.query_pixels


@pytest.fixture(scope="module")
def trained(model16):
    """The session's model16 (conftest): this file's CONFIG on route16, read-only."""
    net = load_network(model16)
    assert net.config == CONFIG
    return model16, net


def test_regions_partition_the_route():
    regions = make_regions(23, 5, shuffle=False, seed=0, calibration_places=7)
    assert [list(r) for r in regions[:2]] == [[0, 1, 2, 3, 4], [5, 6]]
    assert np.array_equal(np.concatenate(regions), np.arange(23))
    shuffled = make_regions(23, 5, shuffle=True, seed=1, calibration_places=7)
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(23))
    assert all(r.max() < 7 or r.min() >= 7 for r in shuffled), "a region straddles the split"
    assert [list(r) for r in shuffled] == [list(r) for r in make_regions(23, 5, True, 1, 7)]
    assert [list(r) for r in shuffled] != [list(r) for r in make_regions(23, 5, True, 2, 7)]
    with pytest.raises(ConfigError):
        make_regions(10, 5, False, 0, calibration_places=10)


# R@1 of model16 (faithful, seed 0) on its own traverses: 11/16 and 6/16. Any change of the
# training, the query streams or the scores changes these; a deliberate one updates them.
R1_REFERENCE, R1_QUERY = 11 / 16, 6 / 16


def test_trained_model_learns_exactly_what_evaluate_reports(route, trained):
    names, _, _, ref_pixels, query_pixels = route
    _, loaded = trained
    assert loaded.place_names == names
    assert loaded.n_modules == N_PLACES // CONFIG.places_per_module
    assert np.all((loaded.active_images >= 0) & (loaded.active_images <= N_PLACES))
    # Columns were normalised to 78 before the last presentation, whose STDP only adds.
    sums = loaded.weights.sum(axis=1)
    assert np.all(sums >= CONFIG.params.weight_sum - 1e-3) and np.all(sums < 1.2 * CONFIG.params.weight_sum)
    for counts_of, pixels, expected in (("reference", ref_pixels, R1_REFERENCE), ("query", query_pixels, R1_QUERY)):
        counts = loaded.spike_counts(rates_hz(pixels), np.arange(N_PLACES))
        S = loaded.scores(counts, threshold=0)
        r1 = recall_at_n(S, ns=(1,))[1]
        assert r1 == expected, f"R@1 on the {counts_of} traverse: {r1}, not {expected}"
        # The offline evaluation scores query q on stream q too: the same matrix, the same recall.
        report, S_eval, _ = evaluate([loaded], pixels, split="all")
        assert np.array_equal(S_eval, S) and report["recall"]["1"] == r1


@pytest.mark.slow
def test_same_seed_same_model_other_seed_differs(route, trained, tmp_path):
    names, _, _, ref_pixels, _ = route
    small = CONFIG.with_(epochs=2)
    a = train_network(small, [ref_pixels[:8]], names[:8], tmp_path / "a", workers=2)
    b = train_network(small, [ref_pixels[:8]], names[:8], tmp_path / "b", workers=1)
    c = train_network(small.with_(seed=5), [ref_pixels[:8]], names[:8], tmp_path / "c")
    # What is saved is what was trained.
    saved = load_network(tmp_path / "a")
    for field in ("weights", "theta", "assignments", "active_images"):
        assert np.array_equal(getattr(saved, field), getattr(a, field)), field
    assert saved.place_names == names[:8]
    assert np.array_equal(a.weights, b.weights) and np.array_equal(a.theta, b.theta)
    assert not np.array_equal(a.weights, c.weights)


@pytest.mark.slow
def test_interrupted_training_resumes_to_the_same_model(route, tmp_path):
    names, _, _, ref_pixels, _ = route
    small = CONFIG.with_(epochs=2)
    full = train_network(small, [ref_pixels[:8]], names[:8], tmp_path / "full", workers=1)

    calls = []

    def crash_in_second_module(done, total, message):
        calls.append(message)
        if message.startswith("module 2/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_network(small, [ref_pixels[:8]], names[:8], tmp_path / "cut", workers=1,
                      progress=crash_in_second_module)
    with pytest.raises(ModelError, match="incomplete"):
        load_network(tmp_path / "cut")
    with pytest.raises(ModelError, match="already exists"):
        train_network(small, [ref_pixels[:8]], names[:8], tmp_path / "cut", workers=1)
    seen = []
    resumed = train_network(small, [ref_pixels[:8]], names[:8], tmp_path / "cut", workers=1,
                            resume=True, progress=lambda d, t, m: seen.append(m))
    assert not any(m.startswith("module 1/") for m in seen), "module 1 was trained again"
    assert np.array_equal(resumed.weights, full.weights)
    assert np.array_equal(load_network(tmp_path / "cut").assignments, full.assignments)


@pytest.mark.slow
def test_calibration_sweeps_threshold_and_epochs(route, tmp_path):
    names, _, _, ref_pixels, query_pixels = route
    cfg = CONFIG.with_(epochs=4)
    # The faithful profile with pre-selection on (the switch the tuned profile bundles).
    net = train_network(cfg, [ref_pixels], names, tmp_path / "cal", calibration_places=8,
                        calibration_query=query_pixels[:8], epoch_checkpoints=[2],
                        t_sweep=(0, 2, 4), workers=2,
                        profile=FAITHFUL.with_(name="preselect", preselect=True))
    meta = load_network(tmp_path / "cal")
    from vprsnn_ros.model.store import ModelStore
    cal = ModelStore.open(tmp_path / "cal").meta["calibration"]
    assert {(r["epochs"], r["threshold"]) for r in cal["table"]} == {
        (e, t) for e in (2, 4) for t in (0, 2, 4)}
    best = max(r["recall_at_1"] for r in cal["table"])
    assert cal["recall_at_1"] == best
    chosen = [r for r in cal["table"] if r["epochs"] == cal["epochs"] and r["threshold"] == cal["threshold"]]
    assert chosen and chosen[0]["recall_at_1"] == best
    assert meta.hyperactive_threshold == cal["threshold"] == net.hyperactive_threshold
    assert meta.n_calibration_modules == 2
    assert list(meta.split_places("test")) == list(range(8, N_PLACES))
    # Pre-selection K is calibrated on the same queries: with every calibration module
    # it is the full network, so its R@1 is the chosen T's; the chosen K is within 0.005.
    pre = ModelStore.open(tmp_path / "cal").meta["preselect"]
    rows = {r["k"]: r["recall_at_1"] for r in pre["table"]}
    assert sorted(rows) == [1, 2]
    assert rows[2] == best
    assert meta.preselect_k == pre["k"] == net.preselect_k
    assert rows[pre["k"] or 2] >= best - 0.005


def test_lane_engine_matches_scalar_kernel_on_the_same_input(trained, route):
    """The fast engine (8 modules per vector) equals the plain kernel given the same spike train."""
    _, net = trained
    _, _, _, _, query_pixels = route
    rates = rates_hz(query_pixels[:5]).astype(np.float64)
    cfg = net.config
    from vprsnn_ros.snn.params import pack, steps
    # 4 modules in one lane group of 8: padding lanes must be dropped.
    theta = net.theta - 3.0  # livelier network, so that the comparison sees many spikes
    scalar = kernels.infer_from_rest(pack(cfg.params, cfg.dt), net.weights, theta, net.layout.tgt,
                                     net.layout.off, net.layout.slot, rates,
                                     steps(cfg.params.present_ms, cfg.dt), np.uint64(9),
                                     np.arange(5), True)
    lively = dataclasses.replace(net, theta=theta)
    lanes = lively.spike_counts(rates, np.arange(5), seed=9)
    assert scalar.sum() > 50
    assert np.array_equal(lanes, scalar)
    assert lanes.max() <= max_spikes_per_neuron(cfg)


def test_query_results_do_not_depend_on_batching(trained, route):
    _, net = trained
    rates = rates_hz(route[4][:6])
    batch = net.spike_counts(rates, np.arange(6))
    alone = np.stack([net.spike_counts(rates[k], [k])[0] for k in range(6)])
    assert np.array_equal(batch, alone)
    assert not np.array_equal(net.spike_counts(rates, np.arange(6) + 100), batch)


@pytest.mark.parametrize("length", [1, 3])
def test_localizer_online_matches_offline_evaluation(trained, route, length):
    out, net = trained
    _, _, query_images, _, query_pixels = route
    report, S, gt = evaluate([net], query_pixels, sequence_length=length, split="all")
    offline_confidence = report_confidence(S, report)
    loc = Localizer(out, sequence_length=length, top_k=3)
    loc.warm_up()
    online = [0.0] * (length - 1)
    for q, image in enumerate(query_images):
        est = loc.localize(image)
        if q < length - 1:
            assert est.place_id == -1 and est.confidence == 0.0
            continue
        assert est.place_id == int(np.argmax(S[q])), f"frame {q}"
        assert np.array_equal(est.scores, S[q]), f"frame {q}"
        assert est.confidence == offline_confidence[q], f"frame {q}"
        assert list(est.top_places[:1]) == [est.place_id] and len(est.top_places) == 3
        assert np.all(np.diff(est.top_scores) <= 0)
        online.append(est.confidence)
    # The online confidences give the offline report's PR-AUC.
    assert evaluate_scores(S, gt, confidence=np.array(online))["pr_auc"] == report["pr_auc"]
    # The confidence ranks queries like the reference's distance rule, so the AUCs agree.
    assert report["pr_auc"] == pytest.approx(report["pr_auc_distance"], abs=1e-12)


def test_localizer_rejects_bad_settings(trained):
    out, _ = trained
    for kwargs in ({"sequence_length": 0}, {"top_k": 0}, {"hyperactive_threshold": -1}):
        with pytest.raises(ConfigError):
            Localizer(out, **kwargs)
    with pytest.raises(ModelError):
        Localizer(out.parent / "missing")
