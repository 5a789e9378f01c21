"""Module pre-selection: a cheap first stage that ranks a network's modules for a query.

Running every module on every query is what makes a large map slow (the cost
grows with the number of modules). Each place's learned weights are a template
of that place: the STDP rule pulls the incoming weights of the neurons that win
a place towards the place's input pattern. The first stage scores every place
by the normalised cross-correlation (NCC) of its template with the query's
preprocessed pixels, ranks modules by their best place, and the SNN then runs
on the top K modules only; places of the other modules score ``-inf``.

    template_p = mean over neurons n assigned to p (and not hyperactive) of W[:, n]
    ncc_p(q)   = <template_p - mean, u_q - mean> / (|template_p - mean| |u_q - mean|)
    rank of module m = max over its places p of ncc_p(q)

One matrix-vector product over all places (n_places x n_inputs) per query, a
fraction of a millisecond for 3,300 places. With K = all modules the result is
exactly the full network (tested).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from vprsnn_ros.snn.network import ModularSNN, hyperactive_mask
from vprsnn_ros.snn.threads import numba_threads


@njit(cache=True, parallel=True, nogil=True, fastmath=True)
def _row_dots(templates, queries):
    """``out[q, p] = sum_i templates[p, i] * queries[q, i]`` (float64 sums of float32 rows).

    The NCC product on Numba's threads: BLAS would start its own threads, which
    then fight the SNN kernels' threads for the same two cores (OpenBLAS with 2
    threads made a K = 1 query at 3,300 places 8.1 ms instead of 3.6 ms).
    ``fastmath`` lets the sums vectorise; their order, so the last bits, depends
    on the CPU's vector width, as a BLAS product's does.
    """
    n_p, n_in = templates.shape
    out = np.empty((queries.shape[0], n_p))
    for p in prange(n_p):
        t = templates[p]
        for q in range(queries.shape[0]):
            u = queries[q]
            acc = 0.0
            for i in range(n_in):
                acc += t[i] * u[i]
            out[q, p] = acc
    return out


def place_templates(net: ModularSNN, threshold: int | None = None) -> np.ndarray:
    """(n_places, n_inputs) float32: mean incoming weights of each place's neurons.

    Hyperactive neurons (at the network's threshold, or ``threshold``) are left
    out, since they answer to many places; a place whose neurons are all
    hyperactive keeps them all. A place without neurons has a zero template.
    """
    t = net.hyperactive_threshold if threshold is None else threshold
    masked = (hyperactive_mask(net.active_images, t) if t > 0 and np.all(net.active_images >= 0)
              else np.zeros(net.assignments.shape, bool))
    n_in = net.config.n_inputs
    sums, kept = np.zeros((net.n_places, n_in)), np.zeros(net.n_places)
    all_sums, all_kept = np.zeros_like(sums), np.zeros(net.n_places)
    # Module by module, as (places x neurons) one-hot @ (neurons x inputs): no copy of
    # all the weights (165 MB at 3,300 places) is ever made.
    for m in range(net.n_modules):
        assigned = net.assignments[m]
        for use, acc, count in ((~masked[m] & (assigned >= 0), sums, kept),
                                (assigned >= 0, all_sums, all_kept)):
            places, column = np.unique(assigned[use], return_inverse=True)
            if len(places) == 0:
                continue
            onehot = np.zeros((len(places), len(column)), np.float32)
            onehot[column, np.arange(len(column))] = 1.0
            acc[places] += onehot @ net.weights[m][:, use].T
            count[places] += onehot.sum(axis=1)
    fallback = kept == 0
    sums[fallback], kept[fallback] = all_sums[fallback], all_kept[fallback]
    return (sums / np.maximum(kept, 1)[:, None]).astype(np.float32)


def _centred_unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    x = x - x.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


class ModuleRanker:
    """Ranks the modules of one network (or a subset, e.g. the test split) for each query.

    >>> ranker = ModuleRanker(net)
    >>> top = ranker.top_modules(pixels, k=8)   # (Q, 8) module ids, best first
    """

    def __init__(self, net: ModularSNN, modules: np.ndarray | None = None,
                 threshold: int | None = None) -> None:
        self.modules = np.arange(net.n_modules) if modules is None else np.asarray(modules)
        places = [net.regions[m] for m in self.modules]
        # Places of the candidate modules, grouped by module, and where each group starts.
        self._places = np.concatenate(places)
        self._starts = np.cumsum([0] + [len(p) for p in places[:-1]])
        self._templates = np.ascontiguousarray(_centred_unit(place_templates(net, threshold)[self._places]))

    def module_scores(self, pixels: np.ndarray) -> np.ndarray:
        """(Q, len(modules)) best template NCC of each candidate module for each query."""
        u = _centred_unit(np.atleast_2d(pixels).reshape(len(np.atleast_2d(pixels)), -1))
        with numba_threads(1):  # a fraction of a millisecond: not worth a barrier (snn.threads)
            ncc = _row_dots(self._templates, np.ascontiguousarray(u))
        return np.maximum.reduceat(ncc, self._starts, axis=1)

    def top_modules(self, pixels: np.ndarray, k: int) -> np.ndarray:
        """(Q, min(k, M)) ids of the k best modules per query, best first (ties: lower id)."""
        scores = self.module_scores(pixels)
        k = min(int(k), scores.shape[1])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return self.modules[order]


def effective_k(net: ModularSNN, override: int | None, n_candidates: int) -> int:
    """Modules run per query: ``override`` (0 = all), else the network's calibrated K."""
    k = net.preselect_k if override is None else int(override)
    return n_candidates if k <= 0 or k >= n_candidates else k


# K values swept by calibration; the full network (every calibration module) is always added.
DEFAULT_K_SWEEP = (1, 2, 4, 8, 16, 32, 64)


def preselected_scores(net: ModularSNN, counts: np.ndarray, order: np.ndarray, k: int,
                       modules: np.ndarray, threshold: int | None = None) -> np.ndarray:
    """Place scores (Q, n_places) when only each query's ``k`` best modules had been run.

    ``counts`` (Q, len(modules), N) of every candidate module and ``order`` (Q,
    len(modules)) their ranking (indices into ``modules``). A module's counts do
    not depend on which other modules run (every query starts from rest on its
    own input train), so masking the full counts gives exactly what running the
    top k alone gives.
    """
    top = order[:, :k]
    picked = np.take_along_axis(counts, top[:, :, None], axis=1)
    return net.scores(picked, modules=np.asarray(modules)[top], threshold=threshold)


def calibrate_k(net: ModularSNN, query_pixels: np.ndarray, query_places: np.ndarray,
                modules: np.ndarray, threshold: int, counts: np.ndarray | None = None,
                sweep: tuple[int, ...] = DEFAULT_K_SWEEP) -> tuple[int, list[dict]]:
    """Choose K on calibration queries: the cheapest K whose R@1 is within 0.005 of all modules.

    Cost is that of the lane groups of 8 that K modules fill, so among K values
    of equal cost the best R@1 wins. Returns (K, table); K = 0 means every
    module (pre-selection does not pay on this data).
    """
    modules = np.asarray(modules)
    if counts is None:
        counts = net.spike_counts(net.config.input_rates(query_pixels),
                                  np.arange(len(query_pixels)), modules=modules)
    ranker = ModuleRanker(net, modules, threshold)
    order = np.argsort(-ranker.module_scores(query_pixels), axis=1, kind="stable")
    ks = sorted({k for k in sweep if k < len(modules)} | {len(modules)})
    table = []
    for k in ks:
        S = preselected_scores(net, counts, order, k, modules, threshold)[:, query_places]
        r1 = float(np.mean(np.argmax(S, axis=1) == np.arange(len(query_places))))
        table.append({"k": int(k), "recall_at_1": r1, "groups": -(-int(k) // 8)})
    full = table[-1]["recall_at_1"]
    ok = [r for r in table if r["recall_at_1"] >= full - 0.005]
    best = min(ok, key=lambda r: (r["groups"], -r["recall_at_1"], r["k"]))
    return (0 if best["k"] == len(modules) else best["k"]), table
