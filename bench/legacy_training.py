"""The training kernel as it was before the delay-ordered weights (commit e3f1d48), kept for benchmarks.

``bench/speed.py`` runs it in the same process as the current kernel, so that
the training rows have their ratio to the previous kernel on the same machine
(the two train to the same bits: test_kernels_faithful.py and the golden
checksums guard the current one). Not part of the package.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from vprsnn_ros.snn.kernels.scalar import NEVER, _euler_v_exc, _euler_v_inh, _neuron_constants, input_emissions
from vprsnn_ros.snn.params import (
    P_DT,
    P_NU_POST,
    P_NU_PRE,
    P_TAU_POST1,
    P_TAU_POST2,
    P_TAU_PRE,
    P_TAU_THETA,
    P_THETA_PLUS,
    P_V_RESET_E,
    P_V_RESET_I,
    P_W_MAX,
)


@njit(cache=True, nogil=True)
def simulate_plain(P, W, tgt, off, slot, rates_hz, n_present, n_rest, learn,
             v_e, ge_e, gi_e, theta, timer, last_e, post1, post2,
             v_i, ge_i, last_i, last_emit, t0, rng, counts):
    """Simulate ``n_present`` steps of input at ``rates_hz`` then ``n_rest`` steps of rest.

    State arrays are updated in place; ``t0`` is the global index of the first
    step (spike times in ``last_*`` are global). Excitatory spikes during the
    input steps are added to ``counts``. With ``learn`` the weights ``W`` (784 x
    N, float32) follow STDP and theta adapts; without it both are frozen.
    Returns the global index of the step after the last one simulated.
    """
    dt = P[P_DT]
    n_in, n_exc = W.shape
    n_slots = off.shape[1] - 1
    (a_e, a_i, d_ge, d_gi, d_ge_i, timer_inc, refrac_e, refrac_i, v_rest_e, v_rest_i, e_inh_e,
     thresh_e, v_thresh_i, timer_min, w_ei, w_ie) = _neuron_constants(P)
    d_theta = 1.0 - dt / P[P_TAU_THETA]
    # STDP traces are event-driven in the reference (Brian2 integrates them
    # exactly), so they decay by exp(-dt/tau), not by the Euler factor.
    d_post1 = np.exp(-dt / P[P_TAU_POST1])
    d_post2 = np.exp(-dt / P[P_TAU_POST2])
    log_d_pre = -dt / P[P_TAU_PRE]
    nu_pre = P[P_NU_PRE]
    nu_post = P[P_NU_POST]
    w_max = P[P_W_MAX]

    step_off, step_inputs, in_off, in_times = input_emissions(P, rates_hz, n_present, rng)
    emitted = in_off[:-1].copy()

    spk_e = np.empty(n_exc, np.int64)
    spk_i = np.empty(n_exc, np.int64)
    fired = np.zeros(n_exc, np.bool_)
    i_fired = np.zeros(n_exc, np.bool_)
    # theta decays only while learning; multiplying by 1.0 leaves it exactly frozen.
    d_theta_run = d_theta if learn else 1.0
    n_total = n_present + n_rest
    for t in range(n_total):
        g = t0 + t
        # 1. state update and thresholds, excitatory population (branch-free so
        #    that the loop vectorises; spikes are collected afterwards)
        n_spk_e = 0
        for j in range(n_exc):
            free = g - last_e[j] >= refrac_e
            v = v_e[j]
            moved = _euler_v_exc(v, ge_e[j], gi_e[j], a_e, v_rest_e, e_inh_e)
            v = moved if free else v
            v_e[j] = v
            ge_e[j] *= d_ge
            gi_e[j] *= d_gi
            tm = timer[j] + timer_inc
            timer[j] = tm
            post1[j] *= d_post1
            post2[j] *= d_post2
            th = theta[j] * d_theta_run
            theta[j] = th
            f = (v > thresh_e + th) & (tm > timer_min) & free
            fired[j] = f
            n_spk_e += f
        if n_spk_e > 0:
            n_spk_e = 0
            for j in range(n_exc):
                if fired[j]:
                    spk_e[n_spk_e] = j
                    n_spk_e += 1
        # 1b. inhibitory population (no gi: nothing inhibits it)
        n_spk_i = 0
        for k in range(n_exc):
            free = g - last_i[k] >= refrac_i
            v = v_i[k]
            moved = _euler_v_inh(v, ge_i[k], a_i, v_rest_i)
            v = moved if free else v
            v_i[k] = v
            ge_i[k] *= d_ge_i
            f = (v > v_thresh_i) & free
            i_fired[k] = f
            n_spk_i += f
        if n_spk_i > 0:
            n_spk_i = 0
            for k in range(n_exc):
                if i_fired[k]:
                    spk_i[n_spk_i] = k
                    n_spk_i += 1
        # 2. delayed input arrivals (emitted[i] counts the emissions of input i so far)
        if t < n_present:
            for e in range(step_off[t], step_off[t + 1]):
                emitted[step_inputs[e]] += 1
        for s in range(n_slots):
            te = t - s
            if te < 0:
                break
            if te >= n_present:
                continue
            for e in range(step_off[te], step_off[te + 1]):
                i = step_inputs[e]
                row = W[i]
                targets = tgt[i]
                if learn:
                    for pos in range(off[i, s], off[i, s + 1]):
                        j = targets[pos]
                        w = row[j]
                        ge_e[j] += w
                        row[j] = min(max(w + nu_pre * post1[j], 0.0), w_max)
                else:
                    for pos in range(off[i, s], off[i, s + 1]):
                        j = targets[pos]
                        ge_e[j] += row[j]
        # 3. excitatory spikes: post-synaptic STDP, E -> I
        for n in range(n_spk_e):
            j = spk_e[n]
            if learn:
                p2 = post2[j]
                for i in range(n_in):
                    # last emission of input i at or before global step g - slot
                    te_g = g - slot[i, j]
                    last = NEVER
                    # emitted[i] bounds the search to this input's emissions so far
                    for k in range(emitted[i] - 1, in_off[i] - 1, -1):
                        if t0 + in_times[k] <= te_g:
                            last = t0 + in_times[k]
                            break
                    if last == NEVER and last_emit[i] <= te_g:
                        last = last_emit[i]
                    if last != NEVER:
                        pre = np.exp(log_d_pre * (te_g - last))
                        w = W[i, j] + nu_post * pre * p2
                        W[i, j] = min(max(w, 0.0), w_max)
            post1[j] = 1.0
            post2[j] = 1.0
            ge_i[j] += w_ei
        # 3b. I -> E: every inhibitory spike reaches all but its partner
        if n_spk_i > 0:
            for j in range(n_exc):
                gi_e[j] += w_ie * (n_spk_i - (1 if i_fired[j] else 0))
        # 4. resets
        for n in range(n_spk_e):
            j = spk_e[n]
            v_e[j] = P[P_V_RESET_E]
            timer[j] = 0.0
            last_e[j] = g
            if learn:
                theta[j] += P[P_THETA_PLUS]
            if t < n_present:
                counts[j] += 1
        for n in range(n_spk_i):
            k = spk_i[n]
            v_i[k] = P[P_V_RESET_I]
            last_i[k] = g
    for i in range(n_in):
        if in_off[i + 1] > in_off[i]:
            last_emit[i] = t0 + in_times[in_off[i + 1] - 1]
    return t0 + n_total


@njit(cache=True, nogil=True)
def train_presentations_plain(P, W, tgt, off, slot, rates_hz, n_present, n_rest, weight_sum,
                        v_e, ge_e, gi_e, theta, timer, last_e, post1, post2,
                        v_i, ge_i, last_i, last_emit, t0, rng, counts):
    """Present each row of ``rates_hz`` (K x 784) once, learning, state carried over.

    Before every presentation each column of ``W`` is scaled to sum to
    ``weight_sum`` (the incoming weights of each excitatory neuron). Spike
    counts of presentation k go to ``counts[k]``. Returns the next global step.
    """
    n_in, n_exc = W.shape
    totals = np.empty(n_exc)
    scale = np.empty(n_exc)
    for k in range(rates_hz.shape[0]):
        # Row-major passes (W is n_in x N): contiguous and vectorised.
        totals[:] = 0.0
        for i in range(n_in):
            for j in range(n_exc):
                totals[j] += W[i, j]
        for j in range(n_exc):
            scale[j] = weight_sum / totals[j] if totals[j] > 0.0 else 1.0
        for i in range(n_in):
            for j in range(n_exc):
                W[i, j] = W[i, j] * scale[j]
        t0 = simulate_plain(P, W, tgt, off, slot, rates_hz[k], n_present, n_rest, True,
                      v_e, ge_e, gi_e, theta, timer, last_e, post1, post2,
                      v_i, ge_i, last_i, last_emit, t0, rng, counts[k])
    return t0
