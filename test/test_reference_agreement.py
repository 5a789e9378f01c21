"""The Numba kernels agree with the plain NumPy reference simulation (:mod:`vprsnn_ros.snn.reference`).

A realistic module, small only in its neuron count: 784 inputs driven by the
preprocessed pixels of a synthetic route (rates ``u / 4`` Hz), 24 excitatory
neurons, the initial weights and delays training uses. Through the public
kernel entry points:

* :func:`simulate`: the 500 ms initial rest from the fresh state;
* :func:`train_presentations`: several learning presentations with the state
  carried over and every neuron's incoming weights normalised to
  ``weight_sum`` before each (the reference is normalised by this test, as the
  spec says: ``W[:, j] *= weight_sum / sum_i W[i, j]``);
* :func:`infer_from_rest`: frozen queries with the learned weights, each from rest.

Each with Poisson and with regular input trains (the ``tuned`` profile's
coding), on the same random streams as the kernel. Spike counts must be equal
presentation by presentation, weights and state equal to rounding. A floor on
the spikes (excitatory and inhibitory, most neurons, many synapses changed by
STDP) makes sure the comparison covers the dynamics and not a silent network.
"""

from __future__ import annotations

import numpy as np
import pytest

from vprsnn_ros.io.preprocess import preprocess_batch
from vprsnn_ros.io.synthetic import make_route
from vprsnn_ros.snn.coding import rates_hz
from vprsnn_ros.snn.kernels import scalar as kernels
from vprsnn_ros.snn.layout import DelayLayout
from vprsnn_ros.snn.network import NetworkConfig, initial_weights, make_delays
from vprsnn_ros.snn.params import P_DT, P_REGULAR, pack, steps
from vprsnn_ros.snn.reference import simulate_reference

N_NEURONS = 24
N_TRAIN = 4      # learning presentations (4 places)
N_QUERIES = 4    # frozen queries
STATE_KEYS = ("v_e", "ge_e", "gi_e", "theta", "timer", "post1", "post2", "v_i", "ge_i")


def emissions_of(P: np.ndarray, rates: np.ndarray, n_present: int, rng: np.ndarray) -> np.ndarray:
    """(n_present, n_in) bool: which inputs emit at each step, drawn as the kernel draws them
    (``rng`` advanced in place, as the kernel advances its own)."""
    trains = kernels.regular_emissions if P[P_REGULAR] else kernels.poisson_emissions
    step_off, step_inputs, _, _ = trains(rates, n_present, P[P_DT], rng)
    out = np.zeros((n_present, rates.size), bool)
    for t in range(n_present):
        out[t, step_inputs[step_off[t]:step_off[t + 1]]] = True
    return out


def fresh_states(config: NetworkConfig, depth: int) -> tuple[kernels.NeuronState, dict]:
    """The state training starts from (spec: v = v_rest - 40 mV, theta = theta_init), for the
    kernel (a NeuronState) and for the reference (a dict, with its input-trace history)."""
    p, n, n_in = config.params, config.n_neurons, config.n_inputs
    arrays = dict(v_e=np.full(n, p.v_rest_e + p.v_init_offset), ge_e=np.zeros(n), gi_e=np.zeros(n),
                  theta=np.full(n, p.theta_init), timer=np.zeros(n),
                  last_e=np.full(n, kernels.NEVER, np.int64), post1=np.zeros(n), post2=np.zeros(n),
                  v_i=np.full(n, p.v_rest_i + p.v_init_offset), ge_i=np.zeros(n),
                  last_i=np.full(n, kernels.NEVER, np.int64))
    ref = {k: v.copy() for k, v in arrays.items()}
    ref["pre_hist"] = np.zeros((depth, n_in))
    return kernels.NeuronState(**arrays, last_emit=np.full(n_in, kernels.NEVER, np.int64)), ref


def normalise(W: np.ndarray, weight_sum: float) -> np.ndarray:
    """Spec section 3: every neuron's incoming weights scaled to sum to ``weight_sum``."""
    totals = W.sum(axis=0, dtype=np.float64)
    return (W * np.where(totals > 0, weight_sum / totals, 1.0)).astype(np.float32)


@pytest.fixture(scope="module")
def route_rates() -> np.ndarray:
    reference, query = make_route(N_TRAIN, seed=21)
    return rates_hz(preprocess_batch(np.concatenate([reference, query]))).astype(np.float64)


@pytest.mark.slow
@pytest.mark.parametrize("trains,dt", [("poisson", 0.5), ("regular", 0.5), ("poisson", 0.25)])
def test_kernels_match_the_numpy_reference_with_normalisation_learning_and_inference(
        route_rates, trains, dt):
    config = NetworkConfig(n_neurons=N_NEURONS, dt=dt, seed=7)
    p = config.params
    P = pack(p, dt, regular=trains == "regular")
    layout = DelayLayout.build(make_delays(config), dt, p.delay_max)
    depth = layout.off.shape[1] - 1
    W0 = initial_weights(config, 0)
    assert not np.allclose(W0.sum(axis=0), p.weight_sum, rtol=0.1), "normalisation would change nothing"
    state, ref = fresh_states(config, depth)
    W_kernel, W_ref = W0.copy(), W0.copy()
    rng = np.array([kernels.stream_seed(config.seed, 1, 0)], np.uint64)
    rng_ref = rng.copy()
    n_present, n_rest = steps(p.present_ms, dt), steps(p.rest_ms, dt)

    # 1. the initial rest (no input), from the fresh state
    initial = steps(p.initial_rest_ms, dt)
    t0 = kernels.simulate(P, W_kernel, layout.tgt, layout.off, layout.slot, np.zeros(config.n_inputs), 0,
                          initial, True, state, 0, rng, np.zeros(N_NEURONS, np.int64))
    _, t0_ref = simulate_reference(p, dt, W_ref, layout.slot, np.zeros((0, config.n_inputs), bool), initial,
                                   True, ref, 0)
    assert t0 == t0_ref == initial

    # 2. learning presentations, normalised before each
    train = np.ascontiguousarray(route_rates[:N_TRAIN])
    counts = np.zeros((N_TRAIN, N_NEURONS), np.int32)
    t0 = kernels.train_presentations(P, W_kernel, layout.tgt, layout.off, layout.slot, train, n_present,
                                     n_rest, p.weight_sum, state, t0, rng, counts)
    counts_ref = []
    inhibitory = 0
    for k in range(N_TRAIN):
        W_ref[:] = normalise(W_ref, p.weight_sum)
        before = ref["last_i"].copy()
        c, t0_ref = simulate_reference(p, dt, W_ref, layout.slot, emissions_of(P, train[k], n_present, rng_ref),
                                       n_rest, True, ref, t0_ref)
        inhibitory += int((ref["last_i"] != before).sum())
        counts_ref.append(c)
    assert t0 == t0_ref
    np.testing.assert_array_equal(counts, np.array(counts_ref), err_msg="training spike counts")
    np.testing.assert_allclose(W_kernel, W_ref, rtol=0, atol=2e-6, err_msg="learned weights")
    for key in STATE_KEYS:
        np.testing.assert_allclose(getattr(state, key), ref[key], rtol=1e-9, atol=1e-9, err_msg=key)
    for key in ("last_e", "last_i"):
        np.testing.assert_array_equal(getattr(state, key), ref[key], err_msg=key)
    np.testing.assert_array_equal(rng, rng_ref, err_msg="the reference drew other input trains")

    # The floor: the comparison covered real dynamics, not a silent or saturated network.
    spikes = int(counts.sum())
    print(f"\n{trains} dt {dt}: {spikes} excitatory spikes in {N_TRAIN} presentations, "
          f"{int((counts.sum(axis=0) > 0).sum())}/{N_NEURONS} neurons spiked, "
          f"{inhibitory} inhibitory neurons fired at least once per presentation (summed)")
    assert spikes >= 10 * N_NEURONS, f"only {spikes} excitatory spikes"
    assert (counts.sum(axis=0) > 0).sum() >= N_NEURONS // 2, "fewer than half the neurons ever spiked"
    assert inhibitory >= N_TRAIN * N_NEURONS // 2, "the inhibitory population hardly fired"
    stdp = np.abs(W_kernel - normalise(W0, p.weight_sum)) > 1e-4
    assert stdp.sum() >= 1000, f"STDP changed only {stdp.sum()} synapses"

    # 3. frozen queries from rest with the learned weights and thresholds
    queries = np.ascontiguousarray(route_rates[N_TRAIN:N_TRAIN + N_QUERIES])
    ids = np.arange(N_QUERIES, dtype=np.int64) + 100
    # Thresholds 8 mV above the learned ones, as in a module trained longer: counts spread over
    # 1..6 spikes instead of crowding at the 7 the refractory timer allows.
    theta = state.theta + 8.0
    got = kernels.infer_from_rest(P, W_kernel[None], theta[None], layout.tgt, layout.off, layout.slot, queries,
                                  n_present, np.uint64(config.seed), ids, False)
    assert got.shape == (N_QUERIES, 1, N_NEURONS)
    for q in range(N_QUERIES):
        rest = dict(v_e=np.full(N_NEURONS, p.v_rest_e), ge_e=np.zeros(N_NEURONS), gi_e=np.zeros(N_NEURONS),
                    theta=theta.copy(), timer=np.full(N_NEURONS, 1e9),
                    last_e=np.full(N_NEURONS, kernels.NEVER, np.int64), post1=np.zeros(N_NEURONS),
                    post2=np.zeros(N_NEURONS), v_i=np.full(N_NEURONS, p.v_rest_i), ge_i=np.zeros(N_NEURONS),
                    last_i=np.full(N_NEURONS, kernels.NEVER, np.int64), pre_hist=np.zeros((depth, config.n_inputs)))
        stream = np.array([kernels.stream_seed(config.seed, ids[q], 0)], np.uint64)
        W_frozen = W_kernel.copy()
        c, _ = simulate_reference(p, dt, W_frozen, layout.slot, emissions_of(P, queries[q], n_present, stream),
                                  0, False, rest, 0)
        np.testing.assert_array_equal(got[q, 0], c, err_msg=f"query {q}")
        assert np.array_equal(W_frozen, W_kernel) and np.array_equal(rest["theta"], theta), "frozen run learned"
    print(f"frozen queries: {int(got.sum())} spikes, counts {np.bincount(got.ravel()).tolist()}; "
          f"STDP changed {int(stdp.sum())} synapses")
    assert got.sum() >= N_QUERIES * N_NEURONS, f"only {got.sum()} spikes in {N_QUERIES} frozen queries"
    # 7 = the most spikes a 350 ms presentation allows (the 50 ms refractory timer)
    assert len(np.unique(got)) >= 4 and (got >= 7).mean() < 0.25, \
        f"frozen counts do not discriminate: {np.bincount(got.ravel())}"
