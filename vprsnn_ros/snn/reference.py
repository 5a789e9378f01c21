"""A slow, plain NumPy simulation of one module: the yardstick for the Numba kernels.

It follows spec sections 2-3 literally, one time step at a time on dense
arrays, with no event lists, sorted targets or lane tricks: the delayed input
is a history of input spike vectors indexed by each synapse's delay, STDP is
applied to the dense matrix of synapses that received a spike. The tests run
it against :func:`vprsnn_ros.snn.kernels.scalar.simulate` on the same input train, and
``bench/speed.py`` uses it as the baseline of the speed ratios.
"""

from __future__ import annotations

import numpy as np

from vprsnn_ros.snn.params import NetworkParams


def simulate_reference(params: NetworkParams, dt: float, W: np.ndarray, slot: np.ndarray,
                       emissions: np.ndarray, n_rest: int, learn: bool,
                       state: dict[str, np.ndarray], t0: int = 0) -> tuple[np.ndarray, int]:
    """Simulate ``emissions`` (T x n_in bool: which inputs emit at each step) then ``n_rest`` steps.

    ``W`` (n_in, N) float32 is updated in place when learning; ``state`` holds
    float arrays v_e, ge_e, gi_e, theta, timer, post1, post2, v_i, ge_i, the int
    arrays last_e, last_i (global step of the last spike) and ``pre_hist``
    (D x n_in, the input emission traces of the last D steps, D > max slot),
    all updated in place. Returns (spike counts during the input steps, next t0).
    """
    p = params
    n_in, n = W.shape
    depth = state["pre_hist"].shape[0]
    past = state.setdefault("emit_hist", np.zeros((depth, n_in), bool))
    counts = np.zeros(n, np.int64)
    rows = np.arange(n_in)[:, None]
    for t in range(len(emissions) + n_rest):
        g = t0 + t
        e = emissions[t] if t < len(emissions) else np.zeros(n_in, bool)
        # state update (Euler for v, ge, gi, theta; exact decay for the STDP traces)
        free_e = g - state["last_e"] >= round(p.refrac_e / dt)
        v = state["v_e"]
        dv = dt / p.tau_e * ((p.v_rest_e - v) + state["ge_e"] * (0 - v) + state["gi_e"] * (p.e_inh_e - v))
        state["v_e"] = np.where(free_e, v + dv, v)
        state["ge_e"] = state["ge_e"] * (1 - dt / p.tau_ge)
        state["gi_e"] = state["gi_e"] * (1 - dt / p.tau_gi)
        state["timer"] = state["timer"] + p.timer_rate * dt
        if learn:
            state["theta"] = state["theta"] * (1 - dt / p.tau_theta)
        state["post1"] = state["post1"] * np.exp(-dt / p.tau_post1)
        state["post2"] = state["post2"] * np.exp(-dt / p.tau_post2)
        free_i = g - state["last_i"] >= round(p.refrac_i / dt)
        vi = state["v_i"]
        dvi = dt / p.tau_i * ((p.v_rest_i - vi) + state["ge_i"] * (0 - vi))
        state["v_i"] = np.where(free_i, vi + dvi, vi)
        state["ge_i"] = state["ge_i"] * (1 - dt / p.tau_ge_i)
        # input emission traces: decay, then 1 where an input emits now
        hist = state["pre_hist"]
        hist[g % depth] = np.where(e, 1.0, hist[(g - 1) % depth] * np.exp(-dt / p.tau_pre))
        past[g % depth] = e
        # thresholds
        spk_e = (state["v_e"] > p.v_thresh_e - p.offset + state["theta"]) & (state["timer"] > p.refrac_e) & free_e
        spk_i = (state["v_i"] > p.v_thresh_i) & free_i
        # delayed arrivals: synapse (i, j) receives input i's emission of slot[i, j] steps ago
        arrived = past[(g - slot) % depth, rows]
        state["ge_e"] = state["ge_e"] + (W * arrived).sum(axis=0, dtype=np.float64)
        if learn:
            W[:] = np.where(arrived, np.clip(W + p.nu_pre * state["post1"][None, :], 0, p.w_max), W)
        # post-synaptic pathway
        if learn and spk_e.any():
            pre = hist[(g - slot) % depth, rows]  # trace of the arrivals at j = delayed emission trace
            grown = np.clip(W + p.nu_post * pre * state["post2"][None, :], 0, p.w_max)
            W[:] = np.where(spk_e[None, :], grown, W)
        state["post1"] = np.where(spk_e, 1.0, state["post1"])
        state["post2"] = np.where(spk_e, 1.0, state["post2"])
        state["ge_i"] = state["ge_i"] + p.w_ei * spk_e
        state["gi_e"] = state["gi_e"] + p.w_ie * (spk_i.sum() - spk_i)
        # resets
        state["v_e"] = np.where(spk_e, p.v_reset_e, state["v_e"])
        state["timer"] = np.where(spk_e, 0.0, state["timer"])
        state["last_e"] = np.where(spk_e, g, state["last_e"])
        if learn:
            state["theta"] = state["theta"] + p.theta_plus * spk_e
        state["v_i"] = np.where(spk_i, p.v_reset_i, state["v_i"])
        state["last_i"] = np.where(spk_i, g, state["last_i"])
        if t < len(emissions):
            counts += spk_e
    return counts, t0 + len(emissions) + n_rest
