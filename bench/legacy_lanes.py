"""The lane engine as it was before module pre-selection (commit 21823f1), kept for benchmarks.

``bench/speed.py`` runs it in the same process as the current engine, so that
every speed figure has its ratio to the previous engine on the same machine.
Not part of the package; the dynamics kernel is shared with the package (it did
not change), the drive and the job loop are the old ones.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from vprsnn_ros.snn.kernels.lanes import _compile_slp, _simulate_lanes
from vprsnn_ros.snn.kernels.scalar import SHARED_STREAM, poisson_emissions, stream_seed
from vprsnn_ros.snn.params import P_DT

LANES = 8

def _drive_lanes_py(W, slot_t, in_off, in_times, drive):
    """Synaptic drive of LANES modules: ``drive[t, j, b]`` = sum of the weights arriving at step t.

    ``W`` (N, n_in, LANES) float32 and ``slot_t`` (N, n_in) are laid out by
    target neuron, so that one neuron's incoming weights (25 KB) and its row of
    ``drive`` (a few tens of KB) stay in L1 while every input spike train is
    replayed onto it: input i's emission at step e arrives at e + slot[i, j].
    The input is a feed-forward Poisson train, so the drive does not depend on
    the network state and can be computed before the time loop.
    """
    n_exc, n_in, n_lanes = W.shape
    n_t = drive.shape[0]
    row = np.empty(n_t * 8, np.float32)
    u1, u2, u3, u4 = np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(4)
    u5, u6, u7, u8 = np.uint64(5), np.uint64(6), np.uint64(7), np.uint64(8)
    for j in range(n_exc):
        row[:] = 0.0
        w_j = W[j]
        s_j = slot_t[j]
        for i in range(n_in):
            s = np.uint64(s_j[i])
            # The 8 weights are held in registers and the 8 adds written out
            # with unsigned offsets: the SLP vectoriser (enabled for this
            # kernel only, see below) then makes them one vector add.
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
        for t in range(n_t):
            for b in range(8):
                drive[t, j, b] = row[t * 8 + b]



_drive_lanes = _compile_slp(
    _drive_lanes_py,
    "void(float32[:, :, ::1], int16[:, ::1], int64[::1], int32[::1], float32[:, :, ::1])")


@njit(cache=True, parallel=True, nogil=True)
def infer_lanes(P, W, theta, slot_t, rates_hz, n_present, seed, query_ids, scratch):
    """Spike counts (Q, G, N, LANES) of lane-grouped modules, every query from rest.

    ``W`` (G, N, n_in, LANES) float32 and ``theta`` (G, N, LANES) hold the
    modules in groups of LANES (see :func:`to_lanes`), ``slot_t`` (N, n_in) the
    shared delays in steps. All modules of query q see the input train of
    stream (seed, query_ids[q], SHARED_STREAM). ``scratch`` (K, T, N, LANES)
    float32, T = n_present + max slot + 1, holds one drive buffer per parallel
    worker (K >= 1), allocated once by the caller: a fresh 9 MB buffer per job
    costs more in page faults than the drive itself.
    """
    n_groups, n_exc, n_in, n_lanes = W.shape
    n_q = rates_hz.shape[0]
    n_t = scratch.shape[1]
    n_workers = scratch.shape[0]
    n_jobs = n_q * n_groups
    out = np.zeros((n_q, n_groups, n_exc, LANES), np.int32)
    for worker in prange(n_workers):
        drive = scratch[worker]
        for job in range(worker, n_jobs, n_workers):
            q = job // n_groups
            g = job % n_groups
            rng = np.empty(1, np.uint64)
            rng[0] = stream_seed(seed, query_ids[q], SHARED_STREAM)
            _, _, in_off, in_times = poisson_emissions(rates_hz[q], n_present, P[P_DT], rng)
            _drive_lanes(W[g], slot_t, in_off, in_times, drive)
            _simulate_lanes(P, theta[g].reshape(n_exc * LANES), drive.reshape(n_t, n_exc * LANES),
                            n_present, out[q, g].reshape(n_exc * LANES), LANES)
    return out


def lane_scratch(n_present: int, slot_t: np.ndarray, workers: int | None = None) -> np.ndarray:
    """Drive buffers for :func:`infer_lanes`, one per Numba thread."""
    from numba import get_num_threads  # noqa: PLC0415

    k = workers or get_num_threads()
    return np.empty((k, n_present + int(slot_t.max()) + 1, slot_t.shape[0], LANES), np.float32)


def from_lanes(counts: np.ndarray, n_modules: int) -> np.ndarray:
    """(Q, G, N, LANES) lane counts -> (Q, M, N), padding lanes dropped."""
    q, g, n, lanes = counts.shape
    return counts.transpose(0, 1, 3, 2).reshape(q, g * lanes, n)[:, :n_modules]


def to_lanes(weights: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Regroup (M, n_in, N) weights and (M, N) theta into (G, N, n_in, LANES) / (G, N, LANES).

    Missing lanes of the last group are padding modules with zero weights (they never fire).
    """
    m, n_in, n = weights.shape
    groups = -(-m // LANES)
    w = np.zeros((groups * LANES, n_in, n), np.float32)
    w[:m] = weights
    th = np.full((groups * LANES, n), 1e9)
    th[:m] = theta
    return (np.ascontiguousarray(w.reshape(groups, LANES, n_in, n).transpose(0, 3, 2, 1)),
            np.ascontiguousarray(th.reshape(groups, LANES, n).transpose(0, 2, 1)))
