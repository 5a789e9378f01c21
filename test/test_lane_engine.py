"""The lane engine and module pre-selection against the scalar kernel, bit for bit.

The reference is ``kernels.infer_from_rest(shared=True)``: each module simulated
alone by the plain kernel (the one checked against the NumPy reference
simulation) on the query's shared input train.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vprsnn_ros.localizer import Localizer
from vprsnn_ros.snn.coding import rates_hz
from vprsnn_ros.snn.engine import spike_counts as lane_spike_counts
from vprsnn_ros.snn.kernels import lanes as lane_engine
from vprsnn_ros.snn.kernels import modules as module_engine
from vprsnn_ros.snn.kernels import scalar as kernels
from vprsnn_ros.snn.network import (
    DelayLayout,
    ModularSNN,
    NetworkConfig,
    initial_weights,
    make_delays,
)
from vprsnn_ros.snn.params import pack, steps
from vprsnn_ros.snn.preselect import ModuleRanker, place_templates

# 37 neurons: not a multiple of the 16-neuron gather block; 11 modules: a padded second group.
CFG = NetworkConfig(n_neurons=37, places_per_module=2, epochs=1, assign_presentations=2)
N_MOD = 11
N_Q = 4


@pytest.fixture(scope="module")
def setup():
    rs = np.random.default_rng(5)
    layout = DelayLayout.build(make_delays(CFG), CFG.dt, CFG.params.delay_max)
    W = np.stack([initial_weights(CFG, m) for m in range(N_MOD)])
    W *= (CFG.params.weight_sum / W.sum(axis=1, keepdims=True)).astype(np.float32)
    # Thresholds low enough for many spikes, spread so that neurons and modules differ.
    theta = rs.uniform(18.0, 30.0, (N_MOD, CFG.n_neurons))
    pixels = rs.integers(0, 256, (N_Q, CFG.n_inputs), dtype=np.uint8)
    rates = np.ascontiguousarray(rates_hz(pixels), dtype=np.float64)
    P = pack(CFG.params, CFG.dt)
    n_present = steps(CFG.params.present_ms, CFG.dt)
    ids = np.arange(N_Q, dtype=np.int64) + 100
    ref = kernels.infer_from_rest(P, W, theta, layout.tgt, layout.off, layout.slot, rates, n_present,
                                  np.uint64(3), ids, True)
    assert ref.sum() > 200 and len(np.unique(ref)) >= 4, "the comparison needs a lively network"
    return dict(W=W, theta=theta, layout=layout, rates=rates, P=P, n_present=n_present, ids=ids,
                ref=ref, slot_t=np.ascontiguousarray(layout.slot.T), pixels=pixels)


def run(s, groups, interleaved, workers):
    counts = lane_engine.infer_groups(
        s["P"], s["W"], interleaved, s["theta"], s["slot_t"], s["rates"][:len(groups)],
        s["n_present"], np.uint64(3), s["ids"][:len(groups)], groups,
        *lane_engine.scratch(s["n_present"], s["slot_t"], workers))
    return lane_engine.lane_counts(counts, groups.shape[1] * lane_engine.GROUP)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_full_network_fixed_groups_equal_scalar_kernel(setup, workers):
    s = setup
    groups = lane_engine.make_groups(np.tile(np.arange(N_MOD), (N_Q, 1)))
    got = run(s, groups, lane_engine.interleave(s["W"]), workers)[:, :N_MOD]
    np.testing.assert_array_equal(got, s["ref"])


@pytest.mark.parametrize("workers", [1, 2])
def test_gathered_groups_equal_scalar_kernel(setup, workers):
    """Any modules in any lanes, different per query, one query (split drive) or several."""
    s = setup
    rs = np.random.default_rng(0)
    picks = np.stack([rs.permutation(N_MOD)[:6] for _ in range(N_Q)])
    groups = lane_engine.make_groups(picks)
    got = run(s, groups, lane_engine.no_interleave(CFG.n_inputs), workers)[:, :6]
    np.testing.assert_array_equal(got, np.take_along_axis(s["ref"], picks[:, :, None], axis=1))
    one = run(s, groups[:1], lane_engine.no_interleave(CFG.n_inputs), workers)[:, :6]
    np.testing.assert_array_equal(one, s["ref"][:1, picks[0]])


def test_unused_lanes_and_empty_groups_count_nothing(setup):
    s = setup
    groups = np.full((1, 2, lane_engine.GROUP), -1, np.int64)
    groups[0, 0, 3] = 7
    got = run(s, groups, lane_engine.no_interleave(CFG.n_inputs), 2)
    np.testing.assert_array_equal(got[0, 3], s["ref"][0, 7])
    assert got.sum() == got[0, 3].sum()


def _network(s) -> ModularSNN:
    rs = np.random.default_rng(2)
    regions = [np.array([2 * m, 2 * m + 1]) for m in range(N_MOD)]
    assignments = np.stack([r[rs.integers(0, 2, CFG.n_neurons)] for r in regions]).astype(np.int32)
    return ModularSNN(config=CFG.with_(seed=3), delays=make_delays(CFG), n_places=2 * N_MOD,
                      regions=regions, n_calibration_modules=0, weights=s["W"], theta=s["theta"],
                      assignments=assignments,
                      active_images=rs.integers(0, 30, (N_MOD, CFG.n_neurons)).astype(np.int32),
                      hyperactive_threshold=20)


def test_network_spike_counts_per_query_modules(setup):
    s = setup
    net = _network(s)
    assert np.array_equal(net.layout.slot, s["layout"].slot)
    np.testing.assert_array_equal(net.spike_counts(s["rates"], s["ids"]), s["ref"])
    picks = np.array([[3, 1], [0, 10], [5, 5], [9, 2]])
    np.testing.assert_array_equal(net.spike_counts(s["rates"], s["ids"], modules=picks),
                                  np.take_along_axis(s["ref"], picks[:, :, None], axis=1))


def test_place_templates_are_mean_weights_of_assigned_unmasked_neurons(setup):
    net = _network(setup)
    tmpl = place_templates(net)
    p = 5
    m = 2  # place 5 is in module 2
    keep = (net.assignments[m] == p) & (net.active_images[m] < net.hyperactive_threshold)
    if not keep.any():
        keep = net.assignments[m] == p
    np.testing.assert_allclose(tmpl[p], net.weights[m][:, keep].mean(axis=1), rtol=1e-5)


def test_ranker_finds_the_module_of_a_template_shaped_query(setup):
    net = _network(setup)
    tmpl = place_templates(net)
    ranker = ModuleRanker(net)
    queries = np.clip(tmpl[[1, 8, 17]] / tmpl[[1, 8, 17]].max(axis=1, keepdims=True) * 255, 0, 255)
    top = ranker.top_modules(queries.astype(np.uint8), 3)
    assert top.shape == (3, 3)
    assert list(top[:, 0]) == [0, 4, 8]


def test_preselection_with_all_modules_equals_the_full_network(setup):
    s = setup
    net = _network(s)
    full = Localizer(net, top_k=3)
    every = Localizer(net, top_k=3, preselect_k=N_MOD)
    some = Localizer(net, top_k=3, preselect_k=2)
    for frame in s["pixels"].reshape(N_Q, 28, 28):
        a, b, c = full.localize(frame), every.localize(frame), some.localize(frame)
        np.testing.assert_array_equal(a.scores, b.scores)
        assert a.place_id == b.place_id and a.confidence == b.confidence
        # K = 2: the two modules the ranker picked score as in the full network, the rest 0.
        picked = some.last_modules[0][0]
        assert len(set(picked.tolist())) == 2
        ran = np.concatenate([net.regions[m] for m in picked])
        np.testing.assert_array_equal(c.scores[ran], a.scores[ran])
        assert not np.delete(c.scores, ran).any()


def test_ensemble_in_one_pass_equals_members_one_by_one(setup):
    s = setup
    a = _network(s)
    b = dataclasses.replace(a, config=a.config.with_(seed=4), theta=a.theta - 1.0)
    together = Localizer([a, b], preselect_k=3)
    alone = [Localizer(a, preselect_k=3), Localizer(b, preselect_k=3)]
    for frame in s["pixels"].reshape(N_Q, 28, 28):
        est = together.localize(frame)
        np.testing.assert_array_equal(est.scores, sum(loc.localize(frame).scores for loc in alone))


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_module_engine_equals_scalar_kernel(setup, workers):
    # One module per job (a few pre-selected modules); 37 neurons: the 4-neuron
    # replay's remainder, and with 2-3 threads each job's drive split by neurons.
    s = setup
    picks = np.array([[3, -1, 1], [0, 10, 10], [5, 5, -1], [9, 2, 4]])
    rows, drive = module_engine.scratch(s["n_present"], s["slot_t"], workers)
    for n_q in (1, N_Q):  # fewer jobs than threads, and more
        got = module_engine.infer_modules(s["P"], [s["W"]], [s["theta"]], [s["slot_t"]], [3],
                                          s["rates"][:n_q], s["n_present"], s["ids"][:n_q],
                                          picks[None, :n_q], rows, drive)[0]
        want = np.take_along_axis(s["ref"][:n_q], np.maximum(picks[:n_q], 0)[:, :, None], axis=1)
        want[picks[:n_q] < 0] = 0
        np.testing.assert_array_equal(got, want)


def test_members_with_different_k_in_one_pass(setup):
    s = setup
    a = _network(s)
    b = dataclasses.replace(a, config=a.config.with_(seed=4), theta=a.theta - 1.0)
    picks_a, picks_b = np.array([[3], [0], [5], [9]]), np.array([[1, 2, 3]] * N_Q)
    got = lane_spike_counts([a, b], s["rates"], s["ids"], [picks_a, picks_b])
    np.testing.assert_array_equal(got[0], a.spike_counts(s["rates"], s["ids"], modules=picks_a))
    np.testing.assert_array_equal(got[1], b.spike_counts(s["rates"], s["ids"], modules=picks_b))
    # The same modules through lane groups give the same counts.
    np.testing.assert_array_equal(got[1], b.spike_counts(s["rates"], s["ids"], modules=np.arange(N_MOD))[:, 1:4])
