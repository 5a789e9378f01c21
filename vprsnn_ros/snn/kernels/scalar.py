"""Numba kernels of one Modular SNN module, one module at a time (spec sections 2-3).

Plain arrays in, plain arrays out; the packed parameter vector comes from
:func:`vprsnn_ros.snn.params.pack`, the input trains and the neuron equations
from :mod:`.common`. Everything is Euler-integrated at step ``dt`` (ms), in the
order Brian2 uses within a step: state update, thresholds, synaptic events
(input arrivals, then the post-synaptic STDP pathway, then the E->I and I->E
connections), resets.

State: the twelve arrays of one module's neurons and inputs travel as one
:data:`NeuronState` (updated in place), its synapses as one :data:`Synapses`
(:func:`synapses`), both plain named tuples of arrays.

Synaptic events (times in ms). Input i's spike reaches excitatory neuron j
``slot[i, j]`` steps after its emission and then::

    ge_j += w_ij;   w_ij = clip(w_ij + nu_pre * post1_j, 0, w_max)   (learning)

An excitatory spike of j (learning)::

    w_ij = clip(w_ij + nu_post * pre_ij * post2_j, 0, w_max)  for every i
    post1_j = post2_j = 1

and it adds w_ei to the conductance of its inhibitory partner; each inhibitory
spike adds w_ie to the gi of every excitatory neuron but its partner.

``pre_ij`` is the trace of the arrivals of input i at j. It equals the
trace of input i's emissions taken ``slot[i, j]`` steps earlier, so only one
emission time per input is stored, not one trace per synapse. Traces are set
to 1 on their spike and decay exactly, ``exp(-dt/tau)`` per step (they are
event-driven in the reference code; v, ge, gi and theta use Euler, as there).

The delayed input drive dominates the cost (~3.5 M synaptic events per
presentation): each input's targets are sorted by delay (``tgt``, ``off``) so
that the arrivals of one emission at one delay are a contiguous run, and the
kernel keeps the weights in that same order (:func:`.common.by_delay`). While
learning, each excitatory spike reads 784 pre traces; ``exp`` of the whole steps
since the last emission is looked up in a table of the same values
(:func:`_trace_table`).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit, prange

from vprsnn_ros.snn.kernels.common import (
    NEVER,
    SHARED_STREAM,
    _euler_v_exc,
    _euler_v_inh,
    _neuron_constants,
    by_delay,
    delay_positions,
    from_delay,
    input_emissions,
    poisson_emissions,
    regular_emissions,
    stream_seed,
)
from vprsnn_ros.snn.params import (
    P_DT,
    P_NU_POST,
    P_NU_PRE,
    P_SOFT_BOUND,
    P_TAU_POST1,
    P_TAU_POST2,
    P_TAU_PRE,
    P_TAU_THETA,
    P_THETA_PLUS,
    P_V_RESET_E,
    P_V_RESET_I,
    P_V_REST_E,
    P_V_REST_I,
    P_W_MAX,
)

# The public names, with the emission helpers of .common that callers of the former
# single kernel module (bench/perf) still import from here.
__all__ = [
    "NEVER", "SHARED_STREAM", "NeuronState", "Synapses", "by_delay", "delay_positions", "from_delay",
    "infer_from_rest", "input_emissions", "learning_layout", "poisson_emissions",
    "regular_emissions", "rest_state", "simulate", "simulate_by_delay", "stream_seed", "synapses",
    "train_presentations",
]

NeuronState = namedtuple("NeuronState", [
    "v_e", "ge_e", "gi_e", "theta", "timer", "last_e", "post1", "post2", "v_i", "ge_i", "last_i",
    "last_emit"])
NeuronState.__doc__ = """State of one module, updated in place by the kernels.

Excitatory neurons (N,): ``v_e``, ``ge_e``, ``gi_e``, ``theta``, ``timer``,
``post1``, ``post2`` float64, ``last_e`` int64 (global step of the last spike,
NEVER if none); inhibitory neurons (N,): ``v_i``, ``ge_i`` float64, ``last_i``
int64; inputs (n_in,): ``last_emit`` int64, global step of the last emission
before the current presentation (for the pre traces)."""

Synapses = namedtuple("Synapses", ["Wd", "tgt", "off", "slot_t", "pos_t", "pre_after"])
Synapses.__doc__ = """The synapses of one module as :func:`simulate_by_delay` reads them.

``Wd`` (n_in, N) float32: the weights by delay (:func:`.common.by_delay`),
learned in place; ``tgt`` (n_in, N) and ``off`` (n_in, n_slots + 1): each
input's targets by delay; ``slot_t`` (N, n_in), ``pos_t`` (N, n_in) and
``pre_after``: :func:`learning_layout`, empty when not learning."""


# --------------------------------------------------------------------------
# One presentation of one module
# --------------------------------------------------------------------------

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


@njit(cache=True)
def learning_layout(P, tgt, slot, learn):
    """(slot_t, pos_t, pre_after) of :data:`Synapses`: delays and weight positions by
    target neuron, and the pre-trace table; empty when not learning (only the
    post-synaptic STDP reads them)."""
    if not learn:
        return np.zeros((0, 0), slot.dtype), np.zeros((0, 0), np.int32), np.zeros(0)
    return (np.ascontiguousarray(slot.T), delay_positions(tgt),
            _trace_table(-P[P_DT] / P[P_TAU_PRE]))


@njit(cache=True)
def synapses(P, W, tgt, off, slot, learn):
    """:data:`Synapses` of weights ``W`` (n_in, N) as stored: a copy laid out by delay."""
    slot_t, pos_t, pre_after = learning_layout(P, tgt, slot, learn)
    return Synapses(by_delay(W, tgt), tgt, off, slot_t, pos_t, pre_after)


@njit(cache=True, nogil=True)
def simulate(P, W, tgt, off, slot, rates_hz, n_present, n_rest, learn, state, t0, rng, counts):
    """Simulate ``n_present`` steps of input at ``rates_hz`` then ``n_rest`` steps of rest.

    ``state`` (:data:`NeuronState`) is updated in place; ``t0`` is the global
    index of the first step (spike times in ``last_*`` are global). Excitatory
    spikes during the input steps are added to ``counts``. With ``learn`` the
    weights ``W`` (784 x N, float32) follow STDP and theta adapts; without it
    both are frozen. Returns the global index of the step after the last one
    simulated.
    """
    syn = synapses(P, W, tgt, off, slot, learn)
    t_next = simulate_by_delay(P, syn, rates_hz, n_present, n_rest, learn, state, t0, rng, counts)
    if learn:
        from_delay(syn.Wd, tgt, W)
    return t_next


@njit(cache=True, nogil=True)
def _post_stdp_soft(Wd, slot_j, pos_j, p2, g, t0, emitted, in_off, in_times, last_emit, pre_after,
                    log_d_pre, nu_post, w_max, soft):
    """The post-synaptic STDP of one excitatory spike at global step ``g``, soft-bound:
    as in :func:`simulate_by_delay`, each update multiplied by ``1 - soft * w``
    (``soft`` = params.soft_bound / w_max)."""
    for i in range(Wd.shape[0]):
        te_g = g - slot_j[i]
        last = NEVER
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
            w0 = Wd[i, pos]
            w = w0 + nu_post * pre * p2 * (1.0 - soft * w0)
            Wd[i, pos] = min(max(w, 0.0), w_max)


@njit(cache=True, nogil=True)
def simulate_by_delay(P, syn, rates_hz, n_present, n_rest, learn, state, t0, rng, counts):
    """:func:`simulate` on :data:`Synapses` ``syn`` (weights laid out by delay, learned in place).

    ``syn.slot_t`` (N x n_in) and ``syn.pos_t`` (:func:`.common.delay_positions`)
    hold, by target neuron, each synapse's delay and its place in ``syn.Wd``;
    ``syn.pre_after`` is :func:`_trace_table` of the pre trace. All three come
    from :func:`learning_layout`, are read only by the post-synaptic STDP
    (learning) and may be empty otherwise.

    Why this layout (bench/speed.py, training rows): the arrivals of one emission
    at one delay read and write a contiguous run of weights instead of scattered
    ones, and an excitatory spike reads its neuron's delays and weight positions
    as two contiguous rows instead of two 784-long strided columns. Same
    arithmetic in the same order as the plain layout, so trained weights are the
    same to the bit.
    """
    Wd, tgt, off, slot_t, pos_t, pre_after = syn
    v_e, ge_e, gi_e, theta, timer, last_e, post1, post2, v_i, ge_i, last_i, last_emit = state
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
    # Soft-bound STDP (profile switch; 0.0 = published): updates scaled by 1 - soft * w / w_max.
    # Tested once per run of synapses (an emission's arrivals at one delay, an excitatory
    # spike's 784 inputs), so the published path runs the same loops as before.
    soft = P[P_SOFT_BOUND] / w_max

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
                if learn and soft == 0.0:
                    for pos in range(off[i, s], off[i, s + 1]):
                        j = targets[pos]
                        w = row[pos]
                        ge_e[j] += w
                        row[pos] = min(max(w + nu_pre * post1[j], 0.0), w_max)
                elif learn:
                    for pos in range(off[i, s], off[i, s + 1]):
                        j = targets[pos]
                        w = row[pos]
                        ge_e[j] += w
                        row[pos] = min(max(w + nu_pre * post1[j] * (1.0 - soft * w), 0.0), w_max)
                else:
                    for pos in range(off[i, s], off[i, s + 1]):
                        ge_e[targets[pos]] += row[pos]
        # 3. excitatory spikes: post-synaptic STDP, E -> I
        for n in range(n_spk_e):
            j = spk_e[n]
            if learn and soft != 0.0:
                _post_stdp_soft(Wd, slot_t[j], pos_t[j], post2[j], g, t0, emitted, in_off, in_times,
                                last_emit, pre_after, log_d_pre, nu_post, w_max, soft)
            elif learn:
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
# Training, and frozen inference from rest or with the state carried over
# --------------------------------------------------------------------------

@njit(cache=True)
def rest_state(P, theta, n_in):
    """:data:`NeuronState` at rest, long after any spike, with thresholds ``theta`` (N,) (not copied)."""
    n_exc = theta.shape[0]
    v_e = np.empty(n_exc)
    v_e[:] = P[P_V_REST_E]
    # Long after its last spike, a neuron's timer is far above the refractory bound.
    timer = np.empty(n_exc)
    timer[:] = 1e9
    v_i = np.empty(n_exc)
    v_i[:] = P[P_V_REST_I]
    return NeuronState(v_e, np.zeros(n_exc), np.zeros(n_exc), theta, timer,
                       np.full(n_exc, NEVER, np.int64), np.zeros(n_exc), np.zeros(n_exc), v_i,
                       np.zeros(n_exc), np.full(n_exc, NEVER, np.int64), np.full(n_in, NEVER, np.int64))


@njit(cache=True, parallel=True, nogil=True)
def infer_from_rest(P, W, theta, tgt, off, slot, rates_hz, n_present, seed, query_ids, shared):
    """Spike counts of every module for every query, each run from the resting state.

    ``W``: (M, 784, N) float32, ``theta``: (M, N), ``rates_hz``: (Q, 784),
    ``query_ids``: (Q,) ids naming the random stream of each query, so that a
    query gets the same Poisson draws whether it runs alone or in a batch.
    Returns int32 counts (Q, M, N). Module m of query q draws its input spikes
    from the stream (seed, query_ids[q], m), or, with ``shared``, from the
    stream (seed, query_ids[q], SHARED_STREAM) that the lane engine uses.
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
        state = rest_state(P, theta[m].copy(), n_in)
        rng = np.empty(1, np.uint64)
        rng[0] = stream_seed(seed, query_ids[q], SHARED_STREAM if shared else m)
        simulate_by_delay(P, Synapses(Wd[m], tgt, off, no_slot, no_pos, no_table), rates_hz[q],
                          n_present, 0, False, state, 0, rng, counts[q, m])
    return counts


@njit(cache=True, nogil=True)
def train_presentations(P, W, tgt, off, slot, rates_hz, n_present, n_rest, weight_sum, state, t0, rng,
                        counts):
    """Present each row of ``rates_hz`` (K x 784) once, learning, ``state`` carried over.

    Before every presentation each column of ``W`` is scaled to sum to
    ``weight_sum`` (the incoming weights of each excitatory neuron). Spike
    counts of presentation k go to ``counts[k]``. Returns the next global step.
    """
    n_in, n_exc = W.shape
    totals = np.empty(n_exc)
    scale = np.empty(n_exc)
    syn = synapses(P, W, tgt, off, slot, True)
    Wd = syn.Wd
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
        t0 = simulate_by_delay(P, syn, rates_hz[k], n_present, n_rest, True, state, t0, rng, counts[k])
    from_delay(Wd, tgt, W)
    return t0
