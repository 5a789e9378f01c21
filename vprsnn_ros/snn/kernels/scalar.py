"""Numba kernels of one Modular SNN module (spec sections 2-3).

Plain arrays in, plain arrays out; the packed parameter vector comes from
:func:`vprsnn_ros.snn.params.pack`. Everything is Euler-integrated at step ``dt``
(ms), in the order Brian2 uses within a step: state update, thresholds,
synaptic events (input arrivals, then the post-synaptic STDP pathway, then the
E->I and I->E connections), resets.

Equations (times in ms):

Excitatory neuron j (not refractory)::

    v  += dt/tau_e * ((v_rest_e - v) + ge*(0 - v) + gi*(e_inh_e - v))
    ge *= 1 - dt/tau_ge;  gi *= 1 - dt/tau_gi;  timer += timer_rate*dt
    theta *= 1 - dt/tau_theta                      (learning only)
    spike  if v > v_thresh_e - offset + theta  and  timer > refrac_e
    reset  v = v_reset_e, timer = 0, theta += theta_plus (learning only)

Inhibitory neuron k: the same with tau_i, v_rest_i, e_inh_i, tau_ge_i, no
timer or theta, threshold v_thresh_i, reset v_reset_i.

Input i emits with probability p_i = rate_i * dt per step (Poisson). Its spike
reaches excitatory neuron j ``slot[i, j]`` steps later and then::

    ge_j += w_ij;   w_ij = clip(w_ij + nu_pre * post1_j, 0, w_max)   (learning)

An excitatory spike of j (learning)::

    w_ij = clip(w_ij + nu_post * pre_ij * post2_j, 0, w_max)  for every i
    post1_j = post2_j = 1

where ``pre_ij`` is the trace of the arrivals of input i at j. It equals the
trace of input i's emissions taken ``slot[i, j]`` steps earlier, so only one
emission time per input is stored, not one trace per synapse. Traces are set
to 1 on their spike and decay exactly, ``exp(-dt/tau)`` per step (they are
event-driven in the reference code; v, ge, gi and theta use Euler, as there).

The delayed input drive dominates the cost (~3.5 M synaptic events per
presentation): each input's targets are sorted by delay (``tgt``, ``off``) so
that the arrivals of one emission at one delay are a contiguous run, and the
kernel keeps the weights in that same order (:func:`by_delay`). While learning,
each excitatory spike reads 784 pre traces; ``exp`` of the whole steps since the
last emission is looked up in a table of the same values (:func:`_trace_table`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from vprsnn_ros.snn.params import (
    P_DT,
    P_E_INH_E,
    P_NU_POST,
    P_NU_PRE,
    P_OFFSET,
    P_REFRAC_E,
    P_REFRAC_I,
    P_REGULAR,
    P_TAU_E,
    P_TAU_GE,
    P_TAU_GE_I,
    P_TAU_GI,
    P_TAU_I,
    P_TAU_POST1,
    P_TAU_POST2,
    P_TAU_PRE,
    P_TAU_THETA,
    P_THETA_PLUS,
    P_TIMER_RATE,
    P_V_RESET_E,
    P_V_RESET_I,
    P_V_REST_E,
    P_V_REST_I,
    P_V_THRESH_E,
    P_V_THRESH_I,
    P_W_EI,
    P_W_IE,
    P_W_MAX,
)

NEVER = -(1 << 60)  # "last spike" of a neuron or input that never spiked
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_U30 = np.uint64(30)
_U27 = np.uint64(27)
_U31 = np.uint64(31)
_U11 = np.uint64(11)
_INV_2_53 = 1.0 / 9007199254740992.0


# --------------------------------------------------------------------------
# Random numbers: splitmix64, so that a (seed, stream) pair gives the same
# draws whatever thread runs it.
# --------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _mix64(z):
    z = (z ^ (z >> _U30)) * _MIX1
    z = (z ^ (z >> _U27)) * _MIX2
    return z ^ (z >> _U31)


@njit(cache=True, inline="always")
def _next_uniform(state):
    """Uniform in [0, 1); advances ``state`` (a uint64[1])."""
    state[0] += _GOLDEN
    return (_mix64(state[0]) >> _U11) * _INV_2_53


@njit(cache=True)
def stream_seed(seed, a, b):
    """Seed of the independent random stream (seed, a, b)."""
    z = _mix64(np.uint64(seed) + _GOLDEN)
    z = _mix64(z ^ (np.uint64(a) * _MIX1 + _GOLDEN))
    return _mix64(z ^ (np.uint64(b) * _MIX2 + _GOLDEN))


# --------------------------------------------------------------------------
# Poisson input
# --------------------------------------------------------------------------

@njit(cache=True)
def poisson_emissions(rates_hz, n_steps, dt, rng):
    """Emission steps of Poisson inputs over ``n_steps`` steps of ``dt`` ms.

    Each input emits in a step with probability ``p = rate * dt``, independently
    (Brian2's PoissonGroup). The gaps between emissions are then geometric,
    ``gap = 1 + floor(ln U / ln(1 - p))``, which needs one random number per
    spike instead of one per input and step.

    Returns ``(step_off, step_inputs, in_off, in_times)``: the inputs emitting at
    step t are ``step_inputs[step_off[t]:step_off[t+1]]``; the emission steps of
    input i, ascending, are ``in_times[in_off[i]:in_off[i+1]]``.
    """
    n_in = rates_hz.size
    expected = 0.0
    for i in range(n_in):
        expected += rates_hz[i]
    cap = int(expected * n_steps * dt * 1e-3 * 1.3) + 256
    in_times = np.empty(cap, np.int32)
    in_off = np.zeros(n_in + 1, np.int64)
    n = 0
    for i in range(n_in):
        p = rates_hz[i] * dt * 1e-3
        if p > 0.0:
            log_q = np.log1p(-min(p, 1.0))
            t = -1
            while True:
                u = 1.0 - _next_uniform(rng)  # in (0, 1]
                t += 1 + int(np.log(u) / log_q)
                if t >= n_steps:
                    break
                if n == cap:
                    grown = np.empty(cap * 2, np.int32)
                    grown[:cap] = in_times
                    in_times = grown
                    cap *= 2
                in_times[n] = t
                n += 1
        in_off[i + 1] = n
    return _step_index(in_off, in_times, n, n_steps)


@njit(cache=True)
def regular_emissions(rates_hz, n_steps, dt, rng):
    """Regular (deterministic-rate) emissions: the same format as :func:`poisson_emissions`.

    Profile switch ``spike_trains`` (issue 7, hypothesis 3a): input i emits
    every ``1000 / (rate_i dt)`` steps, from a uniformly random phase within
    its first period (one random number per input, so that inputs do not fire
    in lockstep). Each input's count over the presentation is then its rate
    times the duration to within one spike, where Poisson counts spread by
    their square root (~4 spikes of ~11 per input at 32 Hz for 350 ms).
    """
    n_in = rates_hz.size
    expected = 0.0
    for i in range(n_in):
        expected += rates_hz[i]
    cap = int(expected * n_steps * dt * 1e-3) + n_in + 1
    in_times = np.empty(cap, np.int32)
    in_off = np.zeros(n_in + 1, np.int64)
    n = 0
    for i in range(n_in):
        p = rates_hz[i] * dt * 1e-3  # spikes per step
        if p * n_steps > 1e-12:  # below that, not one spike in 10^12 presentations
            period = max(1.0, 1.0 / p)
            t = _next_uniform(rng) * period
            while t < n_steps:
                in_times[n] = int(t)
                n += 1
                t += period
        in_off[i + 1] = n
    return _step_index(in_off, in_times, n, n_steps)


@njit(cache=True, inline="always")
def input_emissions(P, rates_hz, n_steps, rng):
    """Poisson emissions, or regular ones when the packed switch ``P_REGULAR`` is set."""
    if P[P_REGULAR] != 0.0:
        return regular_emissions(rates_hz, n_steps, P[P_DT], rng)
    return poisson_emissions(rates_hz, n_steps, P[P_DT], rng)


@njit(cache=True)
def _step_index(in_off, in_times, n, n_steps):
    """(step_off, step_inputs, in_off, in_times[:n]): the emissions indexed by step as well as by input."""
    n_in = in_off.size - 1
    step_off = np.zeros(n_steps + 1, np.int64)
    for k in range(n):
        step_off[in_times[k] + 1] += 1
    for t in range(n_steps):
        step_off[t + 1] += step_off[t]
    cursor = step_off[:-1].copy()
    step_inputs = np.empty(n, np.int32)
    for i in range(n_in):
        for k in range(in_off[i], in_off[i + 1]):
            t = in_times[k]
            step_inputs[cursor[t]] = i
            cursor[t] += 1
    return step_off, step_inputs, in_off, in_times[:n]


# --------------------------------------------------------------------------
# The membrane equations, shared by the training and the lane kernels
# --------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _neuron_constants(P):
    """Per-step factors of the neuron equations (Euler) shared by all kernels.

    Returns (a_e, a_i, d_ge, d_gi, d_ge_i, timer_inc, refrac_e_steps,
    refrac_i_steps, v_rest_e, v_rest_i, e_inh_e, thresh_e, thresh_i,
    timer_min, w_ei, w_ie) where a = dt/tau, d = 1 - dt/tau and
    thresh_e = v_thresh_e - offset (theta is added per neuron).
    """
    dt = P[P_DT]
    return (dt / P[P_TAU_E], dt / P[P_TAU_I], 1.0 - dt / P[P_TAU_GE], 1.0 - dt / P[P_TAU_GI],
            1.0 - dt / P[P_TAU_GE_I], P[P_TIMER_RATE] * dt, int(round(P[P_REFRAC_E] / dt)),
            int(round(P[P_REFRAC_I] / dt)), P[P_V_REST_E], P[P_V_REST_I], P[P_E_INH_E],
            P[P_V_THRESH_E] - P[P_OFFSET], P[P_V_THRESH_I], P[P_REFRAC_E], P[P_W_EI], P[P_W_IE])


@njit(cache=True, inline="always")
def _euler_v_exc(v, ge, gi, a_e, v_rest_e, e_inh_e):
    """One Euler step of ``tau_e dv/dt = (v_rest_e - v) + ge (0 - v) + gi (e_inh_e - v)``."""
    return v + a_e * ((v_rest_e - v) - ge * v + gi * (e_inh_e - v))


@njit(cache=True, inline="always")
def _euler_v_inh(v, ge, a_i, v_rest_i):
    """One Euler step of ``tau_i dv/dt = (v_rest_i - v) + ge (0 - v)`` (nothing inhibits it)."""
    return v + a_i * ((v_rest_i - v) - ge * v)


# --------------------------------------------------------------------------
# One presentation of one module
# --------------------------------------------------------------------------

@njit(cache=True)
def by_delay(W, tgt):
    """``W`` (n_in x N) re-laid in each input's delay order: ``out[i, pos] = W[i, tgt[i, pos]]``."""
    out = np.empty_like(W)
    for i in range(W.shape[0]):
        for pos in range(W.shape[1]):
            out[i, pos] = W[i, tgt[i, pos]]
    return out


@njit(cache=True)
def from_delay(Wd, tgt, W):
    """Inverse of :func:`by_delay`, written into ``W``."""
    for i in range(W.shape[0]):
        for pos in range(W.shape[1]):
            W[i, tgt[i, pos]] = Wd[i, pos]


@njit(cache=True)
def delay_positions(tgt):
    """``pos[j, i]``: where synapse (i, j) sits in the delay-ordered row i (by target, so
    that a neuron's incoming synapses are one contiguous row)."""
    pos = np.empty((tgt.shape[1], tgt.shape[0]), np.int32)
    for i in range(tgt.shape[0]):
        for p in range(tgt.shape[1]):
            pos[tgt[i, p], i] = p
    return pos


PRE_TABLE = 4096  # steps: 2 s at dt 0.5 ms, longer than any gap between two emissions that matters


@njit(cache=True)
def _trace_table(log_decay):
    """``exp(log_decay * d)`` for d < PRE_TABLE: the pre trace d steps after an emission.

    The same scalar ``exp`` call as the kernel would make, so looking a value up
    changes no bit. The early exit once it underflows keeps the loop scalar (a
    vectorised exp may round differently).
    """
    table = np.zeros(PRE_TABLE)
    for d in range(PRE_TABLE):
        table[d] = np.exp(log_decay * d)
        if table[d] == 0.0:
            break
    return table


@njit(cache=True, nogil=True)
def simulate(P, W, tgt, off, slot, rates_hz, n_present, n_rest, learn,
             v_e, ge_e, gi_e, theta, timer, last_e, post1, post2,
             v_i, ge_i, last_i, last_emit, t0, rng, counts):
    """Simulate ``n_present`` steps of input at ``rates_hz`` then ``n_rest`` steps of rest.

    State arrays are updated in place; ``t0`` is the global index of the first
    step (spike times in ``last_*`` are global). Excitatory spikes during the
    input steps are added to ``counts``. With ``learn`` the weights ``W`` (784 x
    N, float32) follow STDP and theta adapts; without it both are frozen.
    Returns the global index of the step after the last one simulated.
    """
    Wd = by_delay(W, tgt)
    slot_t, pos_t, pre_after = learning_layout(P, tgt, slot, learn)
    t_next = simulate_by_delay(P, Wd, tgt, off, slot_t, pos_t, pre_after, rates_hz, n_present,
                               n_rest, learn, v_e, ge_e, gi_e, theta, timer, last_e, post1, post2,
                               v_i, ge_i, last_i, last_emit, t0, rng, counts)
    if learn:
        from_delay(Wd, tgt, W)
    return t_next


@njit(cache=True)
def learning_layout(P, tgt, slot, learn):
    """(slot_t, pos_t, pre_after) of :func:`simulate_by_delay`: delays and weight positions
    by target neuron, and the pre-trace table; empty when not learning (only the
    post-synaptic STDP reads them)."""
    if not learn:
        return np.zeros((0, 0), slot.dtype), np.zeros((0, 0), np.int32), np.zeros(0)
    return (np.ascontiguousarray(slot.T), delay_positions(tgt),
            _trace_table(-P[P_DT] / P[P_TAU_PRE]))


@njit(cache=True, nogil=True)
def simulate_by_delay(P, Wd, tgt, off, slot_t, pos_t, pre_after, rates_hz, n_present, n_rest, learn,
                      v_e, ge_e, gi_e, theta, timer, last_e, post1, post2,
                      v_i, ge_i, last_i, last_emit, t0, rng, counts):
    """:func:`simulate` on weights laid out by delay (``Wd`` from :func:`by_delay`).

    ``slot_t`` (N x n_in) and ``pos_t`` (:func:`delay_positions`) hold, by target
    neuron, each synapse's delay and its place in ``Wd``; ``pre_after`` is
    :func:`_trace_table` of the pre trace. All three come from
    :func:`learning_layout`, are read only by the post-synaptic STDP (learning)
    and may be empty otherwise.

    Why this layout (bench/speed.py, training rows): the arrivals of one emission
    at one delay read and write a contiguous run of weights instead of scattered
    ones, and an excitatory spike reads its neuron's delays and weight positions
    as two contiguous rows instead of two 784-long strided columns. Same
    arithmetic in the same order as the plain layout, so trained weights are the
    same to the bit.
    """
    dt = P[P_DT]
    n_in, n_exc = Wd.shape
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
                row = Wd[i]
                targets = tgt[i]
                if learn:
                    for pos in range(off[i, s], off[i, s + 1]):
                        j = targets[pos]
                        w = row[pos]
                        ge_e[j] += w
                        row[pos] = min(max(w + nu_pre * post1[j], 0.0), w_max)
                else:
                    for pos in range(off[i, s], off[i, s + 1]):
                        ge_e[targets[pos]] += row[pos]
        # 3. excitatory spikes: post-synaptic STDP, E -> I
        for n in range(n_spk_e):
            j = spk_e[n]
            if learn:
                p2 = post2[j]
                slot_j = slot_t[j]
                pos_j = pos_t[j]
                for i in range(n_in):
                    # last emission of input i at or before global step g - slot
                    te_g = g - slot_j[i]
                    last = NEVER
                    # emitted[i] bounds the search to this input's emissions so far
                    for k in range(emitted[i] - 1, in_off[i] - 1, -1):
                        if t0 + in_times[k] <= te_g:
                            last = t0 + in_times[k]
                            break
                    if last == NEVER and last_emit[i] <= te_g:
                        last = last_emit[i]
                    if last != NEVER:
                        d = te_g - last
                        pre = pre_after[d] if d < PRE_TABLE else np.exp(log_d_pre * d)
                        pos = pos_j[i]
                        w = Wd[i, pos] + nu_post * pre * p2
                        Wd[i, pos] = min(max(w, 0.0), w_max)
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


# --------------------------------------------------------------------------
# Frozen inference from the resting state, many modules and queries at once
# --------------------------------------------------------------------------

@njit(cache=True)
def _rest_state(P, n_exc, v_e, ge_e, gi_e, timer, last_e, post1, post2, v_i, ge_i, last_i):
    v_e[:] = P[P_V_REST_E]
    ge_e[:] = 0.0
    gi_e[:] = 0.0
    # Long after its last spike, a neuron's timer is far above the refractory bound.
    timer[:] = 1e9
    last_e[:] = NEVER
    post1[:] = 0.0
    post2[:] = 0.0
    v_i[:] = P[P_V_REST_I]
    ge_i[:] = 0.0
    last_i[:] = NEVER


@njit(cache=True, parallel=True, nogil=True)
def infer_from_rest(P, W, theta, tgt, off, slot, rates_hz, n_present, seed, query_ids, shared):
    """Spike counts of every module for every query, each run from the resting state.

    ``W``: (M, 784, N) float32, ``theta``: (M, N), ``rates_hz``: (Q, 784),
    ``query_ids``: (Q,) ids naming the random stream of each query, so that a
    query gets the same Poisson draws whether it runs alone or in a batch.
    Returns int32 counts (Q, M, N). Module m of query q draws its input spikes
    from the stream (seed, query_ids[q], m), or, with ``shared``, from the
    stream (seed, query_ids[q], SHARED_STREAM) that :func:`lane_engine.infer_groups` uses.
    Each module's weights are laid out by delay once, for all its queries.
    """
    n_mod, n_in, n_exc = W.shape
    n_q = rates_hz.shape[0]
    counts = np.zeros((n_q, n_mod, n_exc), np.int32)
    Wd = np.empty_like(W)
    for m in prange(n_mod):
        Wd[m] = by_delay(W[m], tgt)
    no_slot, no_pos, no_table = learning_layout(P, tgt, slot, False)
    for job in prange(n_q * n_mod):
        q = job // n_mod
        m = job % n_mod
        v_e = np.empty(n_exc)
        ge_e = np.empty(n_exc)
        gi_e = np.empty(n_exc)
        timer = np.empty(n_exc)
        last_e = np.empty(n_exc, np.int64)
        post1 = np.empty(n_exc)
        post2 = np.empty(n_exc)
        v_i = np.empty(n_exc)
        ge_i = np.empty(n_exc)
        last_i = np.empty(n_exc, np.int64)
        last_emit = np.full(n_in, NEVER, np.int64)
        _rest_state(P, n_exc, v_e, ge_e, gi_e, timer, last_e, post1, post2, v_i, ge_i, last_i)
        th = theta[m].copy()
        rng = np.empty(1, np.uint64)
        rng[0] = stream_seed(seed, query_ids[q], SHARED_STREAM if shared else m)
        simulate_by_delay(P, Wd[m], tgt, off, no_slot, no_pos, no_table, rates_hz[q], n_present, 0,
                          False, v_e, ge_e, gi_e, th, timer, last_e, post1, post2,
                          v_i, ge_i, last_i, last_emit, 0, rng, counts[q, m])
    return counts


@njit(cache=True, nogil=True)
def train_presentations(P, W, tgt, off, slot, rates_hz, n_present, n_rest, weight_sum,
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
    Wd = by_delay(W, tgt)
    slot_t, pos_t, pre_after = learning_layout(P, tgt, slot, True)
    for k in range(rates_hz.shape[0]):
        # Each neuron's total is summed over i in increasing order, as over the
        # plain layout, so the normalised weights are the same to the bit.
        totals[:] = 0.0
        for i in range(n_in):
            targets = tgt[i]
            for pos in range(n_exc):
                totals[targets[pos]] += Wd[i, pos]
        for j in range(n_exc):
            scale[j] = weight_sum / totals[j] if totals[j] > 0.0 else 1.0
        for i in range(n_in):
            targets = tgt[i]
            for pos in range(n_exc):
                Wd[i, pos] = Wd[i, pos] * scale[targets[pos]]
        t0 = simulate_by_delay(P, Wd, tgt, off, slot_t, pos_t, pre_after, rates_hz[k], n_present,
                               n_rest, True, v_e, ge_e, gi_e, theta, timer, last_e, post1, post2,
                               v_i, ge_i, last_i, last_emit, t0, rng, counts[k])
    from_delay(Wd, tgt, W)
    return t0


@njit(cache=True, nogil=True)
def infer_carry_over(P, W, theta, tgt, off, slot, rates_hz, n_present, n_rest,
                     v_e, ge_e, gi_e, timer, last_e, post1, post2,
                     v_i, ge_i, last_i, last_emit, t0, rng, counts):
    """Frozen queries of one module with state carried from query to query.

    This is the reference code's test procedure (each query followed by the
    rest period, nothing reset); kept to measure what starting every query from
    rest changes. ``counts`` is (Q, N).
    """
    th = theta.copy()
    Wd = by_delay(W, tgt)
    no_slot, no_pos, no_table = learning_layout(P, tgt, slot, False)
    for q in range(rates_hz.shape[0]):
        t0 = simulate_by_delay(P, Wd, tgt, off, no_slot, no_pos, no_table, rates_hz[q], n_present,
                               n_rest, False, v_e, ge_e, gi_e, th, timer, last_e, post1, post2,
                               v_i, ge_i, last_i, last_emit, t0, rng, counts[q])
    return t0


# Stream id of the input train shared by all modules of a query (lane engine,
# and infer_from_rest with ``shared``).
SHARED_STREAM = 1 << 32
