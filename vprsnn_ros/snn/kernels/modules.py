"""Frozen inference one module per job: the engine for a few pre-selected modules.

The lane engine (:mod:`.lanes`) runs 8 modules side by side, one 8-wide
vector add per synaptic event. With pre-selection a query often runs fewer
modules than that (K = 1 by default on Nordland), and the empty lanes cost as
much as full ones: 8x the synaptic work, plus interleaving the chosen module's
weights. Here each (network, query, module) job runs one module alone:

1. **Drive**, per neuron j, inputs i ascending, emissions ascending::

       drive[t, j] = sum_i  W[m, i, j] * [input i emitted at t - slot[i, j]]

   one scalar add per synaptic event, accumulated in rows of T floats that
   stay in L1 (the same order of float32 additions as the lane and scalar
   kernels, so the counts are the same bit for bit);
2. **Dynamics**: :func:`.lanes._simulate_lanes` with one lane (vectorised
   across the module's neurons instead of across modules).

Threads: with at least as many jobs as threads each thread runs whole jobs;
otherwise each job's drive is split over the threads by neuron blocks.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from vprsnn_ros.snn.kernels.lanes import _simulate_lanes, query_trains

# Below this many modules per query, one module per job beats lane groups of 8
# (bench/speed.py --preselect 1 2 4 8 prints both).
MAX_MODULES = 4


@njit(cache=True, nogil=True, inline="always")
def _copy_out(row, drive, j):
    for t in range(drive.shape[0]):
        drive[t, j] = row[t]


@njit(cache=True, nogil=True)
def _drive_module(W, m, slot_t, in_off, in_times, j0, j1, rows, drive):
    """Phase 1 of module ``m`` for its neurons ``j0 <= j < j1`` (see the module docstring).

    ``W`` (M, n_in, N) float32 as stored, ``slot_t`` (N, n_in) delays in steps,
    ``rows`` (4, T) float32 scratch, ``drive`` (T, N) float32 output. Four
    neurons are replayed together: each emission time is loaded once for four
    independent accumulations (2.2x faster than one neuron at a time, same sums).
    """
    n_in = W.shape[1]
    w_m = W[m]
    r0, r1, r2, r3 = rows[0], rows[1], rows[2], rows[3]
    j = j0
    while j + 4 <= j1:
        rows[:] = 0.0
        s0, s1, s2, s3 = slot_t[j], slot_t[j + 1], slot_t[j + 2], slot_t[j + 3]
        for i in range(n_in):
            ui = np.uint64(i)
            a0, a1 = np.uint64(s0[ui]), np.uint64(s1[ui])
            a2, a3 = np.uint64(s2[ui]), np.uint64(s3[ui])
            w_i = w_m[ui]
            w0, w1, w2, w3 = w_i[j], w_i[j + 1], w_i[j + 2], w_i[j + 3]
            for k in range(in_off[i], in_off[i + 1]):
                t = np.uint64(in_times[k])
                r0[t + a0] += w0
                r1[t + a1] += w1
                r2[t + a2] += w2
                r3[t + a3] += w3
        _copy_out(r0, drive, j)
        _copy_out(r1, drive, j + 1)
        _copy_out(r2, drive, j + 2)
        _copy_out(r3, drive, j + 3)
        j += 4
    for jj in range(j, j1):  # the last neurons of an N that is not a multiple of 4
        r0[:] = 0.0
        s_j = slot_t[jj]
        for i in range(n_in):
            s = np.uint64(s_j[i])
            w = w_m[np.uint64(i), np.uint64(jj)]
            for k in range(in_off[i], in_off[i + 1]):
                r0[np.uint64(in_times[k]) + s] += w
        _copy_out(r0, drive, jj)


@njit(cache=True, parallel=True, nogil=True)
def _infer_modules(P, Ws, thetas, slots, seeds, rates_hz, n_present, query_ids, modules, rows, drive):
    """Spike counts (E, Q, K, N) int32 of ``modules`` (E, Q, K) (-1: none, counts 0)."""
    n_net, n_q, n_k = modules.shape
    n_exc = Ws[0].shape[2]
    n_workers = drive.shape[0]
    out = np.zeros((n_net, n_q, n_k, n_exc), np.int32)
    in_offs, in_timess = query_trains(P, seeds, rates_hz, n_present, query_ids)
    n_jobs = n_net * n_q * n_k
    if n_jobs >= n_workers:
        for worker in prange(n_workers):
            for job in range(worker, n_jobs, n_workers):
                e = job // (n_q * n_k)
                q = job // n_k % n_q
                m = modules[e, q, job % n_k]
                if m < 0:
                    continue
                _drive_module(Ws[e], m, slots[e], in_offs[e * n_q + q], in_timess[e * n_q + q], 0,
                              n_exc, rows[worker], drive[worker])
                _simulate_lanes(P, thetas[e][m], drive[worker], n_present, out[e, q, job % n_k], 1)
    else:
        per = -(-n_exc // n_workers)
        for job in range(n_jobs):
            e = job // (n_q * n_k)
            q = job // n_k % n_q
            m = modules[e, q, job % n_k]
            if m < 0:
                continue
            for c in prange(n_workers):
                _drive_module(Ws[e], m, slots[e], in_offs[e * n_q + q], in_timess[e * n_q + q], c * per,
                              min(n_exc, (c + 1) * per), rows[c], drive[0])
            _simulate_lanes(P, thetas[e][m], drive[0], n_present, out[e, q, job % n_k], 1)
    return out


def infer_modules(P: np.ndarray, Ws, thetas, slots, seeds, rates_hz: np.ndarray, n_present: int,
                  query_ids: np.ndarray, modules: np.ndarray, rows: np.ndarray,
                  drive: np.ndarray) -> np.ndarray:
    """Spike counts (E, Q, K, N) of each network's ``modules`` (E, Q, K) for each query, from rest.

    Arguments as :func:`.lanes.infer_members` (``thetas`` (M, N) float64
    per network); ``rows`` and ``drive`` from :func:`scratch`. Equal to the lane
    engine's counts for the same modules, bit for bit.
    """
    # Tuples, not typed lists: building three typed lists cost 0.3 ms a query (a tuple
    # compiles once per ensemble size).
    Ws = tuple(np.ascontiguousarray(w, np.float32) for w in Ws)  # one array type: a homogeneous tuple
    thetas = tuple(np.ascontiguousarray(t, np.float64) for t in thetas)
    slots = tuple(np.ascontiguousarray(s, np.int16) for s in slots)
    return _infer_modules(P, Ws, thetas, slots, np.asarray(seeds, dtype=np.uint64),
                          np.ascontiguousarray(rates_hz, np.float64), n_present,
                          np.asarray(query_ids, np.int64), np.ascontiguousarray(modules, np.int64), rows, drive)


def scratch(n_present: int, slot_t: np.ndarray, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, drive) scratch buffers of :func:`infer_modules` for ``workers`` threads."""
    n_t = n_present + int(slot_t.max()) + 1
    return (np.empty((workers, 4, n_t), np.float32),
            np.empty((workers, n_t, slot_t.shape[0]), np.float32))
