"""The profile switches of issue 16, item 4 (the within-module gap).

Each switch is off in ``faithful`` (whose trained arrays ``test_golden.py`` pins bit for
bit) and, when on, does what ``docs/guides/profiles.md`` says:

* ``imprint``: a module's neurons start from its places' images;
* ``jitter``: training presentations are shifted images;
* ``inhibition_start``: w_ie grows over the epochs, queries run with w_ie;
* ``soft_bound``: weight-dependent STDP, updates shrink as w nears w_max;
* ``query_inhibition``: queries (not training) run with a weaker w_ie;
* ``patch``, ``shuffle``: the preprocessing window and the region layout.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.snn import module_training
from vprsnn_ros.snn.kernels import scalar as kernels
from vprsnn_ros.snn.kernels.common import NEVER
from vprsnn_ros.snn.module_training import (
    fresh_state,
    inhibition_scale,
    jittered,
    train_module_on_pixels,
)
from vprsnn_ros.snn.network import (
    DelayLayout,
    NetworkConfig,
    imprinted_weights,
    initial_weights,
    make_delays,
)
from vprsnn_ros.snn.params import P_SOFT_BOUND, P_W_IE, NetworkParams, pack, steps
from vprsnn_ros.snn.profiles import FAITHFUL, TUNED, Profile

SMALL = NetworkConfig(n_neurons=12, places_per_module=4, epochs=2, assign_presentations=8,
                      image_width=12, image_height=10)
NEW_SWITCHES = {"imprint": 0.0, "jitter": 0, "inhibition_start": 1.0, "soft_bound": 0.0,
                "query_inhibition": 1.0, "patch": None, "shuffle": None}


def _pixels(n: int, config: NetworkConfig = SMALL, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, config.n_inputs), dtype=np.uint8)


def _layout(config: NetworkConfig) -> DelayLayout:
    return DelayLayout.build(make_delays(config), config.dt, config.params.delay_max)


# --------------------------------------------------------------------------
# off = faithful
# --------------------------------------------------------------------------

def test_every_new_switch_is_off_in_faithful_and_configure_leaves_the_config_alone():
    assert {k: getattr(FAITHFUL, k) for k in NEW_SWITCHES} == NEW_SWITCHES
    assert Profile() == FAITHFUL
    for config in (NetworkConfig(), NetworkConfig(patch=9, shuffle=True), SMALL):
        assert FAITHFUL.configure(config) == config
    # A model.yaml written before these switches existed reads as faithful.
    old = {k: v for k, v in FAITHFUL.to_dict().items() if k not in NEW_SWITCHES}
    assert Profile.from_dict(old) == FAITHFUL
    assert Profile.from_dict(FAITHFUL.to_dict()) == FAITHFUL


def test_switches_off_pack_as_before():
    cfg = NetworkConfig()
    for learning in (True, False):
        P = cfg.packed(learning)
        assert P[P_SOFT_BOUND] == 0.0 and P[P_W_IE] == cfg.params.w_ie
    assert np.array_equal(cfg.packed(False), pack(cfg.params, cfg.dt))


def test_switches_explicitly_off_train_the_same_bits_as_the_default():
    """The faithful code path: an off switch changes no bit of a trained module."""
    region = np.arange(4)
    pix = [_pixels(4)]
    base = train_module_on_pixels(SMALL, _layout(SMALL), 0, region, pix, 2)[-1]
    off = SMALL.with_(imprint=0.0, jitter=0, query_inhibition=1.0,
                      params=replace(SMALL.params, w_ie_start_fraction=1.0, soft_bound=0.0))
    again = train_module_on_pixels(off, _layout(off), 0, region, pix, 2)[-1]
    for a, b in ((base.weights, again.weights), (base.theta, again.theta),
                 (base.assignments, again.assignments)):
        assert np.array_equal(a, b)


def test_validation():
    for bad in ({"imprint": 1.5}, {"imprint": -0.1}, {"jitter": -1}, {"jitter": 1.5}, {"jitter": True},
                {"inhibition_start": 0.0}, {"soft_bound": 2.0}, {"query_inhibition": -1.0},
                {"patch": 4}, {"patch": 0}, {"shuffle": "yes"}):
        with pytest.raises(ConfigError):
            FAITHFUL.with_(**bad)
    with pytest.raises(ConfigError):
        NetworkConfig(jitter=28).validate()
    with pytest.raises(ConfigError):
        NetworkConfig(params=NetworkParams(soft_bound=1.5)).validate()


# --------------------------------------------------------------------------
# (a) imprinted initial weights
# --------------------------------------------------------------------------

def test_imprinted_weights_are_the_place_images_scaled_to_the_normalisation_total():
    cfg = SMALL.with_(imprint=1.0)
    pix = _pixels(4)
    W = imprinted_weights(cfg, 0, pix)
    assert W.shape == (cfg.n_inputs, cfg.n_neurons) and W.dtype == np.float32
    for j in range(cfg.n_neurons):
        image = pix[j % 4].astype(np.float64) / 255.0
        assert np.allclose(W[:, j], image * cfg.params.weight_sum / image.sum(), rtol=1e-6)
    assert np.allclose(W.sum(axis=0), cfg.params.weight_sum, rtol=1e-5)
    # Mixed: f times the images plus 1 - f times the random init, both at the same total.
    half = imprinted_weights(cfg.with_(imprint=0.5), 0, pix)
    R = initial_weights(cfg, 0).astype(np.float64)
    R *= cfg.params.weight_sum / R.sum(axis=0)
    assert np.allclose(half, 0.5 * W + 0.5 * R, rtol=1e-5)


def test_training_starts_from_the_imprinted_images():
    """With learning rates 0 training only normalises: the weights stay the imprinted images
    (a normalisation total that keeps the 120 weights of a column below w_max, as 78 does 784)."""
    cfg = SMALL.with_(imprint=1.0, params=replace(SMALL.params, nu_pre=0.0, nu_post=0.0, weight_sum=12.0))
    pix = _pixels(4)
    out = train_module_on_pixels(cfg, _layout(cfg), 0, np.arange(4), [pix], 1)[-1]
    assert np.allclose(out.weights, imprinted_weights(cfg, 0, pix), rtol=1e-5)
    faithful = train_module_on_pixels(cfg.with_(imprint=0.0), _layout(cfg), 0, np.arange(4), [pix], 1)[-1]
    assert not np.allclose(faithful.weights, out.weights, rtol=1e-2)


# --------------------------------------------------------------------------
# (b) spatial jitter
# --------------------------------------------------------------------------

def test_jitter_shifts_each_image_by_its_own_offset_with_edges_repeated():
    cfg = SMALL.with_(jitter=2)
    h, w = cfg.image_height, cfg.image_width
    pix = _pixels(50, cfg)
    out = jittered(pix, cfg, np.random.default_rng(3))
    shifts = np.random.default_rng(3).integers(-2, 3, size=(50, 2))
    assert out.shape == pix.shape and out.dtype == pix.dtype
    for k, (dy, dx) in enumerate(shifts):
        src = np.pad(pix[k].reshape(h, w), 2, mode="edge")
        assert np.array_equal(out[k].reshape(h, w), src[2 - dy:2 - dy + h, 2 - dx:2 - dx + w])
        if dy == 0 and dx == 0:
            assert np.array_equal(out[k], pix[k])
        else:  # interior pixels moved by (dy, dx)
            img = out[k].reshape(h, w)
            assert np.array_equal(img[2 + dy:h - 2 + dy, 2 + dx:w - 2 + dx],
                                  pix[k].reshape(h, w)[2:h - 2, 2:w - 2])
    assert {tuple(s) for s in shifts} > {(0, 0)}  # several distinct shifts


def test_jitter_changes_training_and_is_seeded_per_module():
    pix = [_pixels(4)]
    cfg = SMALL.with_(jitter=1)
    a = train_module_on_pixels(cfg, _layout(cfg), 0, np.arange(4), pix, 2)[-1]
    b = train_module_on_pixels(cfg, _layout(cfg), 0, np.arange(4), pix, 2)[-1]
    plain = train_module_on_pixels(SMALL, _layout(SMALL), 0, np.arange(4), pix, 2)[-1]
    assert np.array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, plain.weights)


# --------------------------------------------------------------------------
# (c) growing inhibition
# --------------------------------------------------------------------------

def test_inhibition_grows_linearly_over_the_epochs_and_queries_use_w_ie(monkeypatch):
    assert [inhibition_scale(0.25, e, 4) for e in (1, 2, 3, 4)] == [0.25, 0.5, 0.75, 1.0]
    assert inhibition_scale(1.0, 1, 4) == 1.0 and inhibition_scale(0.5, 1, 1) == 1.0
    seen = []
    real = module_training.train_presentations

    def spy(P, *args):
        seen.append(P[P_W_IE])
        return real(P, *args)

    monkeypatch.setattr(module_training, "train_presentations", spy)
    cfg = SMALL.with_(params=replace(SMALL.params, w_ie_start_fraction=0.25))
    train_module_on_pixels(cfg, _layout(cfg), 0, np.arange(4), [_pixels(4)], 4)
    w = cfg.params.w_ie
    assert np.allclose(seen, [0.25 * w, 0.5 * w, 0.75 * w, w])
    assert cfg.packed(False)[P_W_IE] == w
    seen.clear()
    train_module_on_pixels(SMALL, _layout(SMALL), 0, np.arange(4), [_pixels(4)], 3)
    assert seen == [w, w, w]


# --------------------------------------------------------------------------
# (d) soft-bound STDP
# --------------------------------------------------------------------------

def test_soft_bound_post_synaptic_update_is_scaled_by_the_distance_to_w_max():
    """One excitatory spike, two inputs that emitted 10 steps earlier: the update of each
    weight is nu_post * pre * post2 * (1 - soft * w)."""
    Wd = np.array([[0.9], [0.1]], np.float32)
    slot_j = np.zeros(2, np.int16)
    pos_j = np.zeros(2, np.int32)
    in_times = np.array([0, 0], np.int64)
    in_off = np.array([0, 1, 2], np.int64)
    emitted = np.array([1, 2], np.int64)
    table = np.exp(-0.5 / 20.0 * np.arange(kernels.PRE_TABLE))
    last_emit = np.full(2, NEVER, np.int64)
    nu, p2 = 0.01, 0.8
    kernels._post_stdp_soft(Wd, slot_j, pos_j, p2, 10, 0, emitted, in_off, in_times, last_emit, table,
                            -0.5 / 20.0, nu, 1.0, 1.0)
    pre = table[10]
    assert Wd[0, 0] == np.float32(0.9 + nu * pre * p2 * (1 - 0.9 * np.float32(0.9) / 0.9))
    assert np.isclose(Wd[0, 0] - 0.9, nu * pre * p2 * 0.1, rtol=1e-4)
    assert np.isclose(Wd[1, 0] - 0.1, nu * pre * p2 * 0.9, rtol=1e-4)


def _learn_once(soft: float, W: np.ndarray, cfg: NetworkConfig) -> np.ndarray:
    layout = _layout(cfg)
    P = pack(replace(cfg.params, soft_bound=soft), cfg.dt, regular=True)
    W = W.copy()
    state = fresh_state(cfg)
    kernels.simulate(P, W, layout.tgt, layout.off, layout.slot, np.full(cfg.n_inputs, 63.75),
                     steps(350.0, cfg.dt), 0, True, state, 0, np.array([1], np.uint64),
                     np.zeros(cfg.n_neurons, np.int64))
    return W


def test_soft_bound_reduces_updates_near_w_max():
    """Half the weights near w_max, half near 0, all inputs at the same rate: hard bounds
    grow both alike, the soft bound grows those near w_max about (1 - 0.9) / (1 - 0.1) as much."""
    cfg = SMALL.with_(params=replace(SMALL.params, v_thresh_e=-60.0))  # fires readily from fresh state
    W = np.where(np.arange(cfg.n_inputs)[:, None] % 2 == 0, 0.9, 0.1).astype(np.float32) \
        * np.ones((1, cfg.n_neurons), np.float32)
    high = np.arange(cfg.n_inputs) % 2 == 0
    for soft, lo, hi in ((0.0, 0.7, 1.4), (1.0, 0.0, 0.25)):
        dW = _learn_once(soft, W, cfg) - W
        grown_high, grown_low = dW[high].mean(), dW[~high].mean()
        assert grown_low > 0
        assert lo < grown_high / grown_low < hi, (soft, grown_high, grown_low)


def test_soft_bound_off_in_the_kernel_is_the_hard_bound():
    cfg = SMALL.with_(params=replace(SMALL.params, v_thresh_e=-60.0))
    W = initial_weights(cfg, 0)
    assert np.array_equal(_learn_once(0.0, W, cfg), _learn_once(0.0, W, cfg))
    assert not np.array_equal(_learn_once(0.0, W, cfg), _learn_once(1.0, W, cfg))


# --------------------------------------------------------------------------
# (g) query-time inhibition; (e) patch and (f) layout
# --------------------------------------------------------------------------

def test_query_inhibition_scales_w_ie_for_queries_only():
    cfg = NetworkConfig(query_inhibition=0.25)
    assert cfg.packed(False)[P_W_IE] == 0.25 * cfg.params.w_ie
    assert cfg.packed(True)[P_W_IE] == cfg.params.w_ie
    assert np.array_equal(np.delete(cfg.packed(False), P_W_IE), np.delete(cfg.packed(True), P_W_IE))
    assert FAITHFUL.with_(query_inhibition=0.25).configure(NetworkConfig()).query_inhibition == 0.25


def test_patch_and_shuffle_switches_set_the_config_and_none_leaves_it():
    cfg = NetworkConfig(patch=9, shuffle=True)
    assert FAITHFUL.with_(patch=5).configure(cfg).patch == 5
    assert FAITHFUL.with_(shuffle=False).configure(cfg).shuffle is False
    assert FAITHFUL.with_(shuffle=True).configure(NetworkConfig()).shuffle is True
    assert TUNED.configure(cfg).patch == 9 and TUNED.configure(cfg).shuffle is True


def test_profile_switches_reach_the_config_and_its_params():
    p = FAITHFUL.with_(imprint=0.5, jitter=1, inhibition_start=0.25, soft_bound=1.0)
    cfg = p.configure(NetworkConfig())
    assert (cfg.imprint, cfg.jitter) == (0.5, 1)
    assert (cfg.params.w_ie_start_fraction, cfg.params.soft_bound) == (0.25, 1.0)
    assert cfg.packed(True)[P_SOFT_BOUND] == 1.0
    assert NetworkConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.slow
def test_switches_are_recorded_in_the_model_and_reloaded(tmp_path):
    from vprsnn_ros.io.preprocess import preprocess_batch
    from vprsnn_ros.io.synthetic import make_route
    from vprsnn_ros.model.network_io import load_network
    from vprsnn_ros.train.training import train_network

    reference, query = make_route(8, seed=5)
    ref = preprocess_batch(reference)
    cfg = NetworkConfig(n_neurons=20, places_per_module=4, epochs=2, assign_presentations=8)
    profile = FAITHFUL.with_(name="switches16", imprint=1.0, jitter=1, inhibition_start=0.5, soft_bound=1.0,
                             query_inhibition=0.5, shuffle=True)
    net = train_network(cfg, [ref], [f"p{k}" for k in range(8)], tmp_path / "m", workers=1, profile=profile)
    loaded = load_network(tmp_path / "m")
    assert loaded.profile == profile
    c = loaded.config
    assert (c.imprint, c.jitter, c.query_inhibition, c.shuffle) == (1.0, 1, 0.5, True)
    assert (c.params.w_ie_start_fraction, c.params.soft_bound) == (0.5, 1.0)
    assert np.array_equal(loaded.weights, net.weights)
    counts = loaded.spike_counts(loaded.config.input_rates(preprocess_batch(query)), np.arange(8))
    assert counts.shape == (8, 2, 20)


@pytest.mark.slow
def test_tuned_adopts_query_inhibition_which_leaves_training_alone(tmp_path):
    """tuned reads queries (and records the reference) at w_ie x 0.25; its trained arrays are
    those of tuned without the switch, and its queries fire more."""
    from vprsnn_ros.io.preprocess import preprocess_batch
    from vprsnn_ros.io.synthetic import make_route
    from vprsnn_ros.train.training import train_network

    assert TUNED.query_inhibition == 0.25
    reference, query = make_route(8, seed=5)
    ref, qry = preprocess_batch(reference), preprocess_batch(query)
    cfg = NetworkConfig(n_neurons=20, places_per_module=4, epochs=2, assign_presentations=8)
    names = [f"p{k}" for k in range(8)]
    with_switch = train_network(cfg, [ref], names, tmp_path / "a", workers=1, profile=TUNED)
    without = train_network(cfg, [ref], names, tmp_path / "b", workers=1,
                            profile=TUNED.with_(query_inhibition=1.0))
    for a, b in ((with_switch.weights, without.weights), (with_switch.theta, without.theta),
                 (with_switch.assignments, without.assignments)):
        assert np.array_equal(a, b)
    assert with_switch.config.packed(False)[P_W_IE] == 0.25 * cfg.params.w_ie
    rates = cfg.input_rates(qry)
    more = with_switch.spike_counts(rates, np.arange(8)).sum()
    assert more > without.spike_counts(rates, np.arange(8)).sum()


def test_tuned_adopts_the_inhibition_ramp_in_training_only():
    """tuned trains with w_ie growing from 0.25 x w_ie (issue 16, item 4c); queries run with w_ie."""
    cfg = TUNED.configure(NetworkConfig())
    assert TUNED.inhibition_start == 0.25 and cfg.params.w_ie_start_fraction == 0.25
    assert FAITHFUL.configure(NetworkConfig()).params.w_ie_start_fraction == 1.0
    assert cfg.packed(False)[P_W_IE] == TUNED.query_inhibition * cfg.params.w_ie
