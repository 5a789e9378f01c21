"""Frozen inference of many modules at once: the lane engine (Numba kernels).

Every query starts from the resting state, with theta frozen and no learning
(the reference code's test phase without its carried-over state). All modules
of a network share their synaptic delays, so one input spike reaching neuron j
arrives at the same step in every module: the engine simulates ``GROUP`` = 8
modules side by side ("lanes") on one Poisson input train per query (stream
``(seed, query id, SHARED_STREAM)``), and one synaptic event becomes one 8-wide
vector add.

A query is computed in two phases per group of 8 modules:

1. **Drive.** The input is feed-forward, so the excitatory conductance each
   neuron receives at each step does not depend on the network state::

       drive[t, j, b] = sum_i  W_b[i, j] * [input i emitted at t - slot[i, j]]

   summed over i in ascending order (the order fixes the float32 rounding; the
   scalar kernel :func:`.scalar.simulate` adds in the same order). This is ~3.4 M
   vector adds per group and query, most of the cost.
2. **Dynamics.** The membrane equations of :func:`.scalar.simulate` (Euler, same
   order of operations), on the drive, all 8 lanes in one flat vectorised loop
   (:func:`_simulate_lanes`).

A group is a list of 8 module ids (-1 for an unused lane). The full network
runs fixed groups of consecutive modules whose weights were interleaved once
(:func:`interleave`); module pre-selection runs the modules it picked, and their
weights are interleaved block by block from the stored (M, n_in, N) array
while the drive is computed, so nothing is copied per query.

Threads: with at least as many (query, group) jobs as threads each thread runs
whole jobs with its own buffers (no synchronisation); with fewer (one
pre-selected group), the drive of one job is split over the threads by neuron
blocks and the dynamics run on one.

Exactness: spike counts equal those of :func:`.scalar.simulate` run on the same
shared input train, bit for bit, whichever modules share a group (tested).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.core import config as numba_config
from numba.typed import List

from vprsnn_ros.snn.kernels.common import (
    SHARED_STREAM,
    _euler_v_exc,
    _euler_v_inh,
    _neuron_constants,
    input_emissions,
    stream_seed,
)
from vprsnn_ros.snn.params import P_V_RESET_E, P_V_RESET_I

GROUP = 8      # modules per lane group (one float32 vector of 8 in the drive phase)
NO_THETA = 1e9         # theta of an unused lane: it never fires


BLOCK = 16  # neurons whose weights are interleaved together (16 float32 = one cache line)


@njit(cache=True, nogil=True)
def _gather_block(W, mods, j0, j1, wblk):
    """``wblk[jj, i, b] = W[mods[b], i, j0 + jj]`` for ``j0 <= j0 + jj < j1``.

    Interleaves the weights of the lanes' modules from the stored layout ``W``
    (M, n_in, N): the 16 neurons of a block share one cache line per module and
    input, so each stored weight is read from memory once. Unsigned indices
    spare Numba's negative-index checks (3.8 -> 2.9 ms per group).
    """
    n_in = W.shape[1]
    w0, w1, w2, w3 = W[mods[0]], W[mods[1]], W[mods[2]], W[mods[3]]
    w4, w5, w6, w7 = W[mods[4]], W[mods[5]], W[mods[6]], W[mods[7]]
    for jj in range(j1 - j0):
        j = np.uint64(j0 + jj)
        out = wblk[jj]
        for i in range(n_in):
            ui = np.uint64(i)
            o = out[i]
            o[0], o[1], o[2], o[3] = w0[ui, j], w1[ui, j], w2[ui, j], w3[ui, j]
            o[4], o[5], o[6], o[7] = w4[ui, j], w5[ui, j], w6[ui, j], w7[ui, j]


def _drive_block_py(wblk, slot_t, in_off, in_times, j0, j1, row, drive):
    """Phase 1 for neurons ``j0 <= j < j1`` of one group (see the module docstring).

    ``wblk`` (>= j1 - j0, n_in, 8) float32 their weights by lane, ``slot_t`` (N,
    n_in) delays in steps, ``row`` (T * 8,) float32 scratch, ``drive`` (T, N * 8)
    float32 output. Neuron j's drive is accumulated in ``row`` (the row and j's
    weights stay in L1 while every spike train is replayed onto it), then copied
    out.
    """
    n_t = drive.shape[0]
    n_in = wblk.shape[1]
    u1, u2, u3, u4 = np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(4)
    u5, u6, u7, u8 = np.uint64(5), np.uint64(6), np.uint64(7), np.uint64(8)
    for j in range(j0, j1):
        row[:] = 0.0
        w_j = wblk[j - j0]
        s_j = slot_t[j]
        for i in range(n_in):
            s = np.uint64(s_j[i])
            # Eight scalars in registers and eight adds with unsigned offsets: the
            # SLP vectoriser (enabled for this kernel only) makes them one vector add.
            w0, w1, w2, w3 = w_j[i, 0], w_j[i, 1], w_j[i, 2], w_j[i, 3]
            w4, w5, w6, w7 = w_j[i, 4], w_j[i, 5], w_j[i, 6], w_j[i, 7]
            for k in range(in_off[i], in_off[i + 1]):
                base = (np.uint64(in_times[k]) + s) * u8
                row[base] += w0
                row[base + u1] += w1
                row[base + u2] += w2
                row[base + u3] += w3
                row[base + u4] += w4
                row[base + u5] += w5
                row[base + u6] += w6
                row[base + u7] += w7
        out = j * GROUP
        for t in range(n_t):
            d = drive[t]
            for b in range(GROUP):
                d[out + b] = row[t * GROUP + b]


def _compile_slp(py_func, signature):
    """Compile with LLVM's SLP vectoriser, which Numba leaves off by default (~10x here)."""
    old = numba_config.SLP_VECTORIZE
    numba_config.SLP_VECTORIZE = 1
    try:
        return njit(signature, cache=True, nogil=True)(py_func)
    finally:
        numba_config.SLP_VECTORIZE = old


_drive_block = _compile_slp(
    _drive_block_py,
    "void(float32[:, :, ::1], int16[:, ::1], int64[::1], int32[::1], int64, int64, "
    "float32[::1], float32[:, ::1])")


@njit(cache=True, nogil=True)
def _simulate_lanes(P, theta, drive, n_present, counts, lanes):
    """Frozen simulation from rest of ``lanes`` modules given their input drive.

    ``theta`` (N * lanes,), ``drive`` (T, N * lanes) from :func:`_drive_block`
    (flattened [neuron, lane]; lanes = 1 for :mod:`.modules`); ``counts``
    (N * lanes,) receives the excitatory spike counts. Same equations and order
    as :func:`.scalar.simulate` with ``learn=False`` and ``n_rest=0``. The neuron
    loops are branch-free (selects, refractory periods as step countdowns) so
    that they vectorise.
    """
    n = theta.shape[0]
    (a_e, a_i, d_ge, d_gi, d_ge_i, timer_inc, refrac_e_steps, refrac_i_steps, v_rest_e, v_rest_i,
     e_inh_e, thresh_e, thresh_i, timer_min, w_ei, w_ie) = _neuron_constants(P)
    refrac_e = float(refrac_e_steps)
    refrac_i = float(refrac_i_steps)
    n_exc = n // lanes

    v_e = np.full(n, v_rest_e)
    ge_e = np.zeros(n)
    gi_e = np.zeros(n)
    timer = np.full(n, 1e9)
    wait_e = np.zeros(n)  # steps of refractoriness left
    v_i = np.full(n, v_rest_i)
    ge_i = np.zeros(n)
    wait_i = np.zeros(n)
    fired_e = np.zeros(n, np.bool_)
    fired_i = np.zeros(n, np.bool_)
    n_fired_i = np.zeros(lanes)
    for t in range(n_present):
        d_t = drive[t]
        n_e = 0
        for k in range(n):
            w = wait_e[k] - 1.0
            wait_e[k] = w
            free = w <= 0.0
            v = v_e[k]
            moved = _euler_v_exc(v, ge_e[k], gi_e[k], a_e, v_rest_e, e_inh_e)
            v = moved if free else v
            v_e[k] = v
            ge_e[k] = ge_e[k] * d_ge + d_t[k]
            gi_e[k] *= d_gi
            tm = timer[k] + timer_inc
            timer[k] = tm
            f = (v > thresh_e + theta[k]) & (tm > timer_min) & free
            fired_e[k] = f
            n_e += f
        n_i = 0
        for k in range(n):
            w = wait_i[k] - 1.0
            wait_i[k] = w
            free = w <= 0.0
            v = v_i[k]
            moved = _euler_v_inh(v, ge_i[k], a_i, v_rest_i)
            v = moved if free else v
            v_i[k] = v
            ge_i[k] *= d_ge_i
            f = (v > thresh_i) & free
            fired_i[k] = f
            n_i += f
        if n_e > 0:
            for k in range(n):
                if fired_e[k]:
                    ge_i[k] += w_ei
                    v_e[k] = P[P_V_RESET_E]
                    timer[k] = 0.0
                    wait_e[k] = refrac_e
                    counts[k] += 1
        if n_i > 0:
            n_fired_i[:] = 0.0
            for j in range(n_exc):
                for b in range(lanes):
                    n_fired_i[b] += fired_i[j * lanes + b]
            for j in range(n_exc):
                for b in range(lanes):
                    k = j * lanes + b
                    gi_e[k] += w_ie * (n_fired_i[b] - fired_i[k])
                    if fired_i[k]:
                        v_i[k] = P[P_V_RESET_I]
                        wait_i[k] = refrac_i


@njit(cache=True, nogil=True)
def _group_setup(groups, theta, mods, th):
    """Lane modules (unused lanes replay the first real one) and theta of one group; False if empty."""
    first = -1
    for b in range(GROUP):
        if groups[b] >= 0 and first < 0:
            first = groups[b]
    if first < 0:
        return False
    n_exc = theta.shape[1]
    for b in range(GROUP):
        m = groups[b]
        mods[b] = m if m >= 0 else first
        for j in range(n_exc):
            if m >= 0:
                th[j * GROUP + b] = theta[m, j]
            else:
                th[j * GROUP + b] = NO_THETA  # never fires
    return True


@njit(cache=True, nogil=True)
def _drive_blocks(W, Wl_g, mods, slot_t, in_off, in_times, blk_lo, blk_hi, row, wblk, drive):
    """Phase 1 for neuron blocks ``blk_lo <= blk < blk_hi``: fixed weights if given, else gathered."""
    n_exc = slot_t.shape[0]
    for blk in range(blk_lo, blk_hi):
        j0 = blk * BLOCK
        j1 = min(n_exc, j0 + BLOCK)
        if Wl_g.shape[0] > 0:
            _drive_block(Wl_g[j0:j1], slot_t, in_off, in_times, j0, j1, row, drive)
        else:
            _gather_block(W, mods, j0, j1, wblk)
            _drive_block(wblk, slot_t, in_off, in_times, j0, j1, row, drive)


@njit(cache=True, nogil=True)
def query_trains(P, seeds, rates_hz, n_present, query_ids):
    """Input trains of every (network, query), network-major: one train per query and
    network, shared by all its modules (stream ``(seed, query id, SHARED_STREAM)``)."""
    in_offs = []
    in_timess = []
    for e in range(seeds.shape[0]):
        for q in range(rates_hz.shape[0]):
            rng = np.empty(1, np.uint64)
            rng[0] = stream_seed(seeds[e], query_ids[q], SHARED_STREAM)
            _, _, in_off, in_times = input_emissions(P, rates_hz[q], n_present, rng)
            in_offs.append(in_off)
            in_timess.append(in_times)
    return in_offs, in_timess


@njit(cache=True, parallel=True, nogil=True)
def _infer(P, Ws, Wls, thetas, slots, seeds, rates_hz, n_present, query_ids, groups,
           rows, wblk, drive):
    """Spike counts (E, Q, G, N * 8) of E networks (see :func:`infer_groups`, :func:`infer_members`).

    ``Ws``, ``Wls``, ``thetas``, ``slots``: typed lists with one array per
    network, ``seeds`` (E,), ``groups`` (E, Q, G, 8). Jobs are (network, query,
    group) triples.
    """
    n_net = len(Ws)
    n_q = rates_hz.shape[0]
    n_groups = groups.shape[2]
    n_exc = Ws[0].shape[2]
    n_workers = drive.shape[0]
    out = np.zeros((n_net, n_q, n_groups, n_exc * GROUP), np.int32)
    in_offs, in_timess = query_trains(P, seeds, rates_hz, n_present, query_ids)
    n_jobs = n_net * n_q * n_groups
    n_blocks = -(-n_exc // BLOCK)
    if n_jobs >= n_workers:
        for worker in prange(n_workers):
            mods = np.empty(GROUP, np.int64)
            th = np.empty(n_exc * GROUP)
            for job in range(worker, n_jobs, n_workers):
                e = job // (n_q * n_groups)
                q = job // n_groups % n_q
                g = job % n_groups
                if not _group_setup(groups[e, q, g], thetas[e], mods, th):
                    continue
                wl = Wls[e]
                _drive_blocks(Ws[e], wl[g if wl.shape[1] > 0 else 0], mods, slots[e],
                              in_offs[e * n_q + q], in_timess[e * n_q + q], 0, n_blocks,
                              rows[worker], wblk[worker], drive[worker])
                _simulate_lanes(P, th, drive[worker], n_present, out[e, q, g], GROUP)
    else:
        # Fewer jobs than threads (one pre-selected group): split each drive by neuron blocks.
        mods = np.empty(GROUP, np.int64)
        th = np.empty(n_exc * GROUP)
        per = -(-n_blocks // n_workers)
        for job in range(n_jobs):
            e = job // (n_q * n_groups)
            q = job // n_groups % n_q
            g = job % n_groups
            if not _group_setup(groups[e, q, g], thetas[e], mods, th):
                continue
            wl = Wls[e]
            for c in prange(n_workers):
                _drive_blocks(Ws[e], wl[g if wl.shape[1] > 0 else 0], mods, slots[e],
                              in_offs[e * n_q + q], in_timess[e * n_q + q], c * per,
                              min(n_blocks, (c + 1) * per), rows[c], wblk[c], drive[0])
            _simulate_lanes(P, th, drive[0], n_present, out[e, q, g], GROUP)
    return out


def _typed(arrays):
    out = List()
    for a in arrays:
        out.append(a)
    return out


def infer_groups(P: np.ndarray, W: np.ndarray, Wl: np.ndarray, theta: np.ndarray,
                 slot_t: np.ndarray, rates_hz: np.ndarray, n_present: int, seed,
                 query_ids: np.ndarray, groups: np.ndarray, rows: np.ndarray, wblk: np.ndarray,
                 drive: np.ndarray) -> np.ndarray:
    """Spike counts (Q, G, N * 8) int32 ([neuron, lane]) of the modules in ``groups``, each query from rest.

    ``W`` (M, n_in, N) float32 and ``theta`` (M, N): all modules of one network
    as stored; ``slot_t`` (N, n_in) their shared delays in steps; ``rates_hz``
    (Q, n_in); ``query_ids`` (Q,) name each query's random stream (with
    ``seed``); ``groups`` (Q, G, 8) module ids per lane, -1 for an unused lane
    (its counts are 0), so each query may run its own modules (pre-selection).
    ``Wl`` is either (G, N, n_in, 8), the weights interleaved once for exactly
    these groups (:func:`interleave`: the full network's fast path), or (1, 0,
    n_in, 8) (:func:`no_interleave`): then each group's weights are gathered
    from ``W`` block by block. ``rows``, ``wblk`` and ``drive`` are scratch
    buffers for K threads, reused from call to call (:func:`scratch`).
    """
    return infer_members(P, [W], [Wl], [theta], [slot_t], [seed], rates_hz, n_present,
                         query_ids, groups[None], rows, wblk, drive)[0]


def infer_members(P: np.ndarray, Ws, Wls, thetas, slots, seeds, rates_hz: np.ndarray,
                  n_present: int, query_ids: np.ndarray, groups: np.ndarray, rows: np.ndarray,
                  wblk: np.ndarray, drive: np.ndarray) -> np.ndarray:
    """:func:`infer_groups` for the E members of an ensemble in one pass: (E, Q, G, N * 8).

    Members have their own weights, delays and seeds (spec section 7), so they
    share only the preprocessed query; all their (query, group) jobs are shared
    out among the threads together. ``groups`` (E, Q, G, 8).
    """
    return _infer(P, _typed(Ws), _typed(Wls), _typed(thetas), _typed(slots),
                  np.asarray(seeds, dtype=np.uint64), np.ascontiguousarray(rates_hz, np.float64),
                  n_present, np.asarray(query_ids, np.int64), np.ascontiguousarray(groups, np.int64),
                  rows, wblk, drive)


def scratch(n_present: int, slot_t: np.ndarray, workers: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, wblk, drive) scratch buffers of :func:`infer_groups` for ``workers`` threads."""
    n_t = n_present + int(slot_t.max()) + 1
    n_exc, n_in = slot_t.shape
    return (np.empty((workers, n_t * GROUP), np.float32),
            np.empty((workers, BLOCK, n_in, GROUP), np.float32),
            np.empty((workers, n_t, n_exc * GROUP), np.float32))


def make_groups(modules: np.ndarray) -> np.ndarray:
    """Lane groups (Q, G, 8) from module ids (Q, K) or (K,): in the given order, -1 padded."""
    mods = np.atleast_2d(np.asarray(modules, dtype=np.int64))
    q, k = mods.shape
    g = -(-k // GROUP)
    out = np.full((q, g * GROUP), -1, np.int64)
    out[:, :k] = mods
    return out.reshape(q, g, GROUP)


def interleave(weights: np.ndarray) -> np.ndarray:
    """(M, n_in, N) weights -> (G, N, n_in, 8) for the groups ``make_groups(arange(M))``.

    Lanes past M are zero (their theta is NO_THETA in :func:`infer_groups`).
    """
    m, n_in, n = weights.shape
    g = -(-m // GROUP)
    w = np.zeros((g * GROUP, n_in, n), np.float32)
    w[:m] = weights
    return np.ascontiguousarray(w.reshape(g, GROUP, n_in, n).transpose(0, 3, 2, 1))


def no_interleave(n_inputs: int) -> np.ndarray:
    """The ``Wl`` argument of :func:`infer_groups` that makes it gather weights per group."""
    return np.zeros((1, 0, n_inputs, GROUP), np.float32)


def lane_counts(counts: np.ndarray, n_modules: int) -> np.ndarray:
    """(Q, G, N * 8) counts of :func:`infer_groups` -> (Q, n_modules, N), in group order."""
    q, g, n8 = counts.shape
    return counts.reshape(q, g, n8 // GROUP, GROUP).transpose(0, 1, 3, 2).reshape(
        q, g * GROUP, n8 // GROUP)[:, :n_modules]
