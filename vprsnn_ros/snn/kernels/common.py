"""Building blocks shared by the Numba kernels of the Modular SNN (spec sections 1-2).

The scalar kernels (:mod:`.scalar`), the lane engine (:mod:`.lanes`) and the
module engine (:mod:`.modules`) draw the same input trains and integrate the
same neuron equations from here, so that they agree bit for bit.

Random streams: splitmix64. A (seed, a, b) triple names an independent stream
(:func:`stream_seed`), so a module or query gets the same draws whatever thread
runs it; ``(seed, query id, SHARED_STREAM)`` is the input train shared by all
modules of a query.

Input i emits with probability p_i = rate_i * dt per step (Poisson,
:func:`poisson_emissions`), or every 1 / p_i steps from a random phase
(:func:`regular_emissions`, profile switch ``P_REGULAR``).

Neuron equations, Euler-integrated at step ``dt`` (ms)::

    excitatory j (not refractory):
    v  += dt/tau_e * ((v_rest_e - v) + ge*(0 - v) + gi*(e_inh_e - v))
    ge *= 1 - dt/tau_ge;  gi *= 1 - dt/tau_gi;  timer += timer_rate*dt
    theta *= 1 - dt/tau_theta                      (learning only)
    spike  if v > v_thresh_e - offset + theta  and  timer > refrac_e
    reset  v = v_reset_e, timer = 0, theta += theta_plus (learning only)

    inhibitory k: the same with tau_i, v_rest_i, e_inh_i, tau_ge_i, no timer or
    theta, threshold v_thresh_i, reset v_reset_i.

The per-step factors are :func:`_neuron_constants`, one Euler step of v is
:func:`_euler_v_exc` / :func:`_euler_v_inh`.

Delay layout: each input's targets are sorted by delay (``tgt``, ``off``, from
:class:`vprsnn_ros.snn.network.DelayLayout`); :func:`by_delay` lays the weights
out in the same order, so that the arrivals of one emission at one delay are a
contiguous run, and :func:`delay_positions` finds a synapse in that order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from vprsnn_ros.snn.params import (
    P_DT,
    P_E_INH_E,
    P_OFFSET,
    P_REFRAC_E,
    P_REFRAC_I,
    P_REGULAR,
    P_TAU_E,
    P_TAU_GE,
    P_TAU_GE_I,
    P_TAU_GI,
    P_TAU_I,
    P_TIMER_RATE,
    P_V_REST_E,
    P_V_REST_I,
    P_V_THRESH_E,
    P_V_THRESH_I,
    P_W_EI,
    P_W_IE,
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
# The membrane equations, shared by the training, scalar, lane and module kernels
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
# Weights laid out by delay
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


# Stream id of the input train shared by all modules of a query (lane and module
# engines, and scalar.infer_from_rest with ``shared``).
SHARED_STREAM = 1 << 32
