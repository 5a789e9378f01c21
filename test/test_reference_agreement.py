"""The Numba kernel agrees with the plain NumPy reference simulation, learning included."""

from __future__ import annotations

import numpy as np
import pytest

from vprsnn_ros.snn.kernels import scalar as kernels
from vprsnn_ros.snn.network import DelayLayout
from vprsnn_ros.snn.params import NetworkParams, pack, steps
from vprsnn_ros.snn.reference import simulate_reference


def _state(n, n_in, depth, p):
    kernel = dict(
        v_e=np.full(n, p.v_rest_e), ge_e=np.zeros(n), gi_e=np.zeros(n), theta=np.full(n, 14.0),
        timer=np.full(n, 1e9), last_e=np.full(n, kernels.NEVER, np.int64), post1=np.zeros(n),
        post2=np.zeros(n), v_i=np.full(n, p.v_rest_i), ge_i=np.zeros(n),
        last_i=np.full(n, kernels.NEVER, np.int64))
    ref = {k: v.copy() for k, v in kernel.items()}
    ref["pre_hist"] = np.zeros((depth, n_in))
    return kernel, ref


@pytest.mark.parametrize("dt", [0.5, 0.1])
def test_kernel_matches_numpy_reference_over_two_learning_presentations(dt):
    p = NetworkParams()
    n_in, n = 60, 6
    rs = np.random.default_rng(4)
    W0 = ((rs.random((n_in, n)) + 0.01) * 0.3).astype(np.float32)
    W0 *= (15.0 / W0.sum(axis=0))[None, :]
    layout = DelayLayout.build(rs.random((n_in, n)) * p.delay_max, dt, p.delay_max)
    depth = layout.off.shape[1] - 1
    kernel_state, ref_state = _state(n, n_in, depth, p)
    last_emit = np.full(n_in, kernels.NEVER, np.int64)
    W_kernel, W_ref = W0.copy(), W0.copy()
    n_present, n_rest = steps(120, dt), steps(20, dt)
    t0_kernel = t0_ref = 0
    total = 0
    for presentation in range(2):
        rates = rs.uniform(0, 63.75, n_in)
        seed = 1000 + presentation
        emissions = np.zeros((n_present, n_in), bool)
        step_off, step_inputs, _, _ = kernels.poisson_emissions(rates, n_present, dt, np.array([seed], np.uint64))
        for t in range(n_present):
            emissions[t, step_inputs[step_off[t]:step_off[t + 1]]] = True
        counts_k = np.zeros(n, np.int64)
        s = kernel_state
        t0_kernel = kernels.simulate(pack(p, dt), W_kernel, layout.tgt, layout.off, layout.slot, rates,
                                     n_present, n_rest, True, s["v_e"], s["ge_e"], s["gi_e"], s["theta"],
                                     s["timer"], s["last_e"], s["post1"], s["post2"], s["v_i"], s["ge_i"],
                                     s["last_i"], last_emit, t0_kernel, np.array([seed], np.uint64), counts_k)
        counts_r, t0_ref = simulate_reference(p, dt, W_ref, layout.slot, emissions, n_rest, True,
                                              ref_state, t0_ref)
        assert np.array_equal(counts_k, counts_r), f"presentation {presentation}"
        total += counts_k.sum()
        assert t0_kernel == t0_ref
    assert total > 5, "the comparison needs spikes (and so STDP) to mean anything"
    assert not np.allclose(W_kernel, W0), "no learning happened"
    np.testing.assert_allclose(W_kernel, W_ref, rtol=0, atol=2e-6)
    for key in ("v_e", "ge_e", "gi_e", "theta", "post1", "post2", "v_i", "ge_i"):
        np.testing.assert_allclose(kernel_state[key], ref_state[key], rtol=1e-9, atol=1e-9, err_msg=key)
