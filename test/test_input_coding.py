"""Input-coding switches of issue 7 (hypothesis 3a): regular spike trains, query rate gain, repeats.

Off, each gives today's counts (the faithful golden checksums in
test_profiles_readout_baseline.py guard training); on, each changes exactly
what it says: the trains' timing, the rates, the number of presentations.
"""

from __future__ import annotations

import numpy as np
import pytest

try:  # optional: the test that uses it is marked, a skip here and a failure in CI (see conftest.py)
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:
    st = None

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.io.preprocess import preprocess_batch
from vprsnn_ros.io.synthetic import make_route
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.snn.coding import rates_hz
from vprsnn_ros.snn.kernels import scalar as kernels
from vprsnn_ros.snn.network import REPEAT_STREAM, NetworkConfig
from vprsnn_ros.snn.profiles import FAITHFUL, Profile
from vprsnn_ros.train.training import train_network

CONFIG = NetworkConfig(n_neurons=20, places_per_module=4, epochs=2, assign_presentations=8)


def _unchanged(test):
    return test


@pytest.mark.requires("hypothesis")
@settings(max_examples=30, deadline=None) if st else _unchanged
@given(rates=st.lists(st.floats(0.0, 63.75), min_size=1, max_size=40), seed=st.integers(0, 2**32),
       n_steps=st.integers(1, 900)) if st else _unchanged
def test_regular_trains_fire_at_the_rate_to_within_one_spike(rates, seed, n_steps):
    r = np.asarray(rates)
    rng = np.array([seed], np.uint64)
    step_off, step_inputs, in_off, in_times = kernels.regular_emissions(r, n_steps, 0.5, rng)
    counts = np.diff(in_off)
    expected = r * n_steps * 0.5e-3
    assert np.all(np.abs(counts - expected) < 1.0 + 1e-9)
    assert np.all((in_times >= 0) & (in_times < n_steps))
    # Every emission is also listed under its step, once.
    by_step = sorted((t, int(i)) for t in range(n_steps) for i in step_inputs[step_off[t]:step_off[t + 1]])
    by_input = sorted((int(t), i) for i in range(len(r)) for t in in_times[in_off[i]:in_off[i + 1]])
    assert by_step == by_input


def test_regular_trains_are_evenly_spaced_and_seeded():
    r = np.full(3, 20.0)  # a period of 100 steps at dt 0.5 ms
    a = kernels.regular_emissions(r, 700, 0.5, np.array([1], np.uint64))
    b = kernels.regular_emissions(r, 700, 0.5, np.array([1], np.uint64))
    c = kernels.regular_emissions(r, 700, 0.5, np.array([2], np.uint64))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[3], c[3])
    _, _, in_off, in_times = a
    for i in range(3):
        gaps = np.diff(in_times[in_off[i]:in_off[i + 1]])
        assert set(gaps) <= {99, 100, 101}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    reference, query = make_route(8, seed=4)
    ref = preprocess_batch(reference)
    root = tmp_path_factory.mktemp("coding")
    poisson = train_network(CONFIG, [ref], [f"p{k}" for k in range(8)], root / "poisson", workers=1)
    return poisson, ref, rates_hz(preprocess_batch(query)).astype(np.float64), root


def with_config(net, **changes):
    net.config = net.config.with_(**changes)
    return net


@pytest.mark.slow
def test_query_switches_change_only_queries(trained):
    net, _, q, _ = trained
    ids = np.arange(len(q))
    base = net.spike_counts(q, ids)
    assert base.sum() > 0
    try:
        # Gain: the counts of the scaled rates.
        with_config(net, query_rate_gain=2.0)
        gained = net.spike_counts(q, ids)
        with_config(net, query_rate_gain=1.0)
        assert np.array_equal(gained, net.spike_counts(2.0 * q, ids))
        assert not np.array_equal(gained, base)
        # Repeats: the sum of the presentations on their own streams, in every engine.
        with_config(net, query_presentations=3)
        for engine in ("lanes", "scalar"):
            with_config(net, query_presentations=3)
            repeated = net.spike_counts(q, ids, engine=engine)
            with_config(net, query_presentations=1)
            parts = [net.spike_counts(q, ids + r * REPEAT_STREAM, engine=engine) for r in range(3)]
            assert np.array_equal(repeated, sum(parts)), engine
        # Regular query trains: other counts, the same from both engines' shared path.
        with_config(net, spike_trains="regular_query")
        regular = net.spike_counts(q, ids)
        assert not np.array_equal(regular, base)
        assert np.array_equal(regular, net.spike_counts(q, ids, modules=np.arange(net.n_modules)[::-1])[:, ::-1])
    finally:
        with_config(net, query_rate_gain=1.0, query_presentations=1, spike_trains="poisson")
    assert np.array_equal(net.spike_counts(q, ids), base)


@pytest.mark.slow
def test_regular_training_switch(trained):
    net, ref, _, root = trained
    names = [f"p{k}" for k in range(8)]
    query_only = train_network(CONFIG, [ref], names, root / "rq", workers=1,
                               profile=FAITHFUL.with_(spike_trains="regular_query"))
    regular = train_network(CONFIG, [ref], names, root / "reg", workers=1,
                            profile=FAITHFUL.with_(spike_trains="regular", query_presentations=2))
    # 'regular_query' trains exactly as Poisson does; 'regular' does not.
    assert np.array_equal(query_only.weights, net.weights)
    assert not np.array_equal(regular.weights, net.weights)
    # The recordings of the reference follow the query coding.
    assert not np.array_equal(query_only.reference_stats.neuron_sum, net.reference_stats.neuron_sum)
    loaded = load_network(root / "reg")
    assert loaded.config.spike_trains == "regular" and loaded.config.query_presentations == 2
    assert ModelStore.open(root / "reg").meta["profile"]["spike_trains"] == "regular"


def test_bad_switch_values_are_config_errors():
    with pytest.raises(ConfigError, match="spike_trains"):
        NetworkConfig(spike_trains="bursty").validate()
    with pytest.raises(ConfigError, match="query_rate_gain"):
        Profile(query_rate_gain=0).validate()
    with pytest.raises(ConfigError, match="query_presentations"):
        Profile(query_presentations=0).validate()
    with pytest.raises(ConfigError, match="query_presentations"):
        NetworkConfig(query_presentations=1.5).validate()


def test_learning_rate_schedule_changes_only_later_epochs(trained):
    from vprsnn_ros.snn.module_training import train_module_on_pixels
    from vprsnn_ros.snn.network import DelayLayout, make_delays
    from vprsnn_ros.snn.params import NetworkParams

    _, ref, _, _ = trained
    region = np.arange(4)
    decaying = CONFIG.with_(params=NetworkParams(nu_final_fraction=0.0))
    layout = DelayLayout.build(make_delays(CONFIG), CONFIG.dt, CONFIG.params.delay_max)

    def weights(cfg, epochs):
        return train_module_on_pixels(cfg, layout, 0, region, [ref[region]], epochs)[-1].weights

    # Epoch 1 runs at the full rates either way; by epoch 3 the rates have fallen to 0.
    assert np.array_equal(weights(CONFIG, 1), weights(decaying, 1))
    assert not np.array_equal(weights(CONFIG, 3), weights(decaying, 3))


def test_learning_rate_schedules_share_their_end_points():
    from vprsnn_ros.snn.module_training import learning_rate_scale

    for schedule in ("linear", "exponential", "step"):
        assert learning_rate_scale(schedule, 0.1, 1, 60) == 1.0
        assert learning_rate_scale(schedule, 0.1, 60, 60) == pytest.approx(0.1)
        assert learning_rate_scale(schedule, 1.0, 30, 60) == 1.0  # the published constant rate
    # Half way: the linear fall is at the middle, the exponential one lower, the step not yet down.
    middle = 1 + (60 - 1) // 2
    assert learning_rate_scale("exponential", 0.1, middle, 60) < learning_rate_scale("linear", 0.1, middle, 60)
    assert learning_rate_scale("step", 0.1, 30, 60) == 1.0 and learning_rate_scale("step", 0.1, 31, 60) == 0.1
    with pytest.raises(ConfigError, match="nu_schedule"):
        NetworkConfig(nu_schedule="cosine").validate()


def test_cycled_traverses_present_one_traverse_per_epoch(trained):
    from vprsnn_ros.snn.module_training import train_module_on_pixels
    from vprsnn_ros.snn.network import DelayLayout, make_delays

    _, ref, _, _ = trained
    region = np.arange(4)
    other = 255 - ref[region]  # a second traverse that differs everywhere
    layout = DelayLayout.build(make_delays(CONFIG), CONFIG.dt, CONFIG.params.delay_max)
    cycle = CONFIG.with_(traverse_order="cycle")

    def weights(cfg, traverses, epochs):
        return train_module_on_pixels(cfg, layout, 0, region, traverses, epochs)[-1].weights

    # One epoch of the cycle is one epoch on the first traverse alone ...
    assert np.array_equal(weights(cycle, [ref[region], other], 1), weights(CONFIG, [ref[region]], 1))
    # ... and with a single traverse the cycle is the published order.
    assert np.array_equal(weights(cycle, [ref[region]], 2), weights(CONFIG, [ref[region]], 2))
    # The second epoch presents the other traverse: two cycled epochs are the same presentations,
    # on the same random stream, as one epoch of both traverses.
    assert not np.array_equal(weights(cycle, [ref[region], other], 2), weights(cycle, [ref[region]], 2))
    assert np.array_equal(weights(cycle, [ref[region], other], 2), weights(CONFIG, [ref[region], other], 1))
    with pytest.raises(ConfigError, match="traverse_order"):
        NetworkConfig(traverse_order="random").validate()
