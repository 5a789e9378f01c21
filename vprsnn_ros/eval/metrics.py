"""Place-recognition metrics on a score matrix.

Conventions
-----------
``S`` has shape ``(n_queries, n_places)``; row ``q`` holds the scores of every
place for query ``q`` and higher is better.  ``gt`` is an int array
``(n_queries,)`` with the index of the true place, ``-1`` when the query has no
true match; by default ``gt[q] = q``.

A row that is entirely ``-inf`` is *undefined* (e.g. the first ``L-1`` queries
of sequence matching): it is skipped by every metric here.

PR-AUC integration
------------------
:func:`pr_auc` uses the trapezoid rule over recall, starting at the point
``(recall 0, precision 1)`` (the same as ``sklearn.metrics.auc(recall,
precision)`` on such a curve)::

    AUC = sum_i (R_{i+1} - R_i) * (P_{i+1} + P_i) / 2
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from vprsnn_ros.errors import ConfigError

RECALL_NS: tuple[int, ...] = (1, 5, 10, 15, 20, 25)

# Rows per block in recall_at_n: bounds the temporary boolean matrices to about
# this many elements whatever the size of S.
_BLOCK_ELEMENTS = 4_000_000


def _as_scores(S: np.ndarray) -> np.ndarray:
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] == 0 or S.shape[1] == 0:
        raise ConfigError(f"score matrix must be 2-D and non-empty, got shape {S.shape}")
    # -inf is meaningful (undefined entry); NaN and +inf would poison ranks and D = max(S) - S.
    if np.isnan(S).any() or np.isposinf(S).any():
        raise ConfigError("score matrix contains NaN or +inf")
    return S


def _as_gt(gt: np.ndarray | None, n_queries: int, n_places: int) -> np.ndarray:
    if gt is None:
        gt = np.arange(n_queries)
    gt = np.asarray(gt)
    if gt.shape != (n_queries,):
        raise ConfigError(f"gt must have shape ({n_queries},), got {gt.shape}")
    if gt.size and not np.issubdtype(gt.dtype, np.integer):
        if not np.array_equal(gt, np.round(gt)):
            raise ConfigError("gt must hold integer place indices")
    gt = gt.astype(np.int64)
    if gt.size and gt.max() >= n_places:
        raise ConfigError(
            f"gt holds place index {int(gt.max())} but there are only {n_places} places "
            "(use -1 for queries without a true match)"
        )
    return gt


def _as_tolerance(tolerance: int) -> int:
    if isinstance(tolerance, bool) or int(tolerance) != tolerance or tolerance < 0:
        raise ConfigError(f"tolerance must be a non-negative integer, got {tolerance!r}")
    return int(tolerance)


def _as_ns(ns: Iterable[int]) -> tuple[int, ...]:
    ns = tuple(ns)
    if not ns or any(isinstance(n, bool) or int(n) != n or n < 1 for n in ns):
        raise ConfigError(f"recall Ns must be positive integers, got {ns!r}")
    return tuple(int(n) for n in ns)


def _defined_rows(S: np.ndarray) -> np.ndarray:
    return ~np.all(np.isneginf(S), axis=1)


def _best_window_place(S: np.ndarray, gt: np.ndarray, tolerance: int) -> np.ndarray:
    """Place within ``[gt-tol, gt+tol]`` that ranks first under the stable tie rule.

    The stable order on -S ranks a higher score first and, among equal scores,
    the lower index first; so the best-ranked place of the window is its first
    argmax when the window is scanned by increasing index.
    """
    rows = np.arange(S.shape[0])
    offsets = np.arange(-tolerance, tolerance + 1)
    idx = gt[:, None] + offsets[None, :]
    valid = (idx >= 0) & (idx < S.shape[1])
    vals = np.where(valid, S[rows[:, None], np.clip(idx, 0, S.shape[1] - 1)], -np.inf)
    pick = np.argmax(vals, axis=1)
    # If the chosen slot is out of range, every in-range slot is -inf too, and
    # the first in-range one is the stable winner.
    first_valid = np.argmax(valid, axis=1)
    pick = np.where(valid[rows, pick], pick, first_valid)
    return idx[rows, pick]


def _stable_rank(S: np.ndarray, places: np.ndarray) -> np.ndarray:
    """0-based position of ``places[q]`` in ``argsort(-S[q], kind='stable')``.

        rank = #{j : S[q, j] > S[q, p]} + #{j < p : S[q, j] == S[q, p]}

    O(n_queries * n_places) with no sort, processed in row blocks.
    """
    n_q, n_p = S.shape
    ranks = np.empty(n_q, dtype=np.int64)
    cols = np.arange(n_p)
    block = max(1, _BLOCK_ELEMENTS // n_p)
    for start in range(0, n_q, block):
        sl = slice(start, min(start + block, n_q))
        Sb = S[sl]
        p = places[sl]
        s = Sb[np.arange(Sb.shape[0]), p][:, None]
        ranks[sl] = np.count_nonzero(Sb > s, axis=1) + np.count_nonzero(
            (Sb == s) & (cols[None, :] < p[:, None]), axis=1
        )
    return ranks


def _counted_queries(S: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return _defined_rows(S) & (gt >= 0)


def recall_at_n(
    S: np.ndarray,
    gt: np.ndarray | None = None,
    ns: Iterable[int] = RECALL_NS,
    tolerance: int = 0,
) -> dict[int, float]:
    """Recall@N for each N in ``ns``.

    Query q is correct at N when one of its N best places p (stable order on
    -S: ties broken by lower place index) satisfies ``|p - gt[q]| <= tolerance``::

        Recall@N = #{q counted : correct at N} / #{q counted}

    A query is counted when its row is not all -inf and ``gt[q] >= 0``.  N larger
    than ``n_places`` is clamped to ``n_places``.  With no counted query every
    recall is 0.0 (kept as a float so the result stays JSON-ready).
    """
    S = _as_scores(S)
    n_q, n_p = S.shape
    gt = _as_gt(gt, n_q, n_p)
    tolerance = _as_tolerance(tolerance)
    ns = _as_ns(ns)
    counted = _counted_queries(S, gt)
    n_counted = int(counted.sum())
    if n_counted == 0:
        return {n: 0.0 for n in ns}
    Sc, gtc = S[counted], gt[counted]
    # Correct at N  <=>  the best-ranked window place has rank < N, so one rank
    # per query answers every N at once.
    ranks = _stable_rank(Sc, _best_window_place(Sc, gtc, tolerance))
    return {n: float(np.count_nonzero(ranks < min(n, n_p)) / n_counted) for n in ns}


def best_matches(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best place per query (first maximum wins) and its score.

        best[q] = argmax_p S[q, p],   score[q] = S[q, best[q]]

    Undefined (all -inf) rows give place 0 and score -inf.
    """
    S = _as_scores(S)
    best = np.argmax(S, axis=1)
    return best, S[np.arange(S.shape[0]), best]


def pr_curve(
    confidence: np.ndarray,
    correct: np.ndarray,
    has_match: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision-recall curve of accepting a query's best match by confidence.

    For each threshold t over the distinct confidences (descending), a query is
    accepted when ``confidence >= t`` (ties are accepted together)::

        TP(t) = #{accepted and correct}
        P(t)  = TP(t) / #{accepted}
        R(t)  = TP(t) / #{queries with a true match}

    An accepted wrong match is a false positive (this includes every accepted
    query without a true match); a correct best match that is rejected is a false
    negative.  ``has_match`` (default all True) marks the queries with
    ``gt >= 0``: the others are never correct and are left out of R's denominator.

    Returns ``(precision, recall, thresholds)``; index 0 is the start point
    ``(P=1, R=0, t=+inf)``.  When no query has a true match, recall is 0.
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    corr = np.asarray(correct, dtype=bool).ravel()
    if corr.shape != conf.shape:
        raise ConfigError(f"confidence {conf.shape} and correct {corr.shape} differ in length")
    if np.isnan(conf).any():
        raise ConfigError("confidence contains NaN")
    if has_match is None:
        has = np.ones_like(corr)
    else:
        has = np.asarray(has_match, dtype=bool).ravel()
        if has.shape != conf.shape:
            raise ConfigError(f"has_match {has.shape} and confidence {conf.shape} differ in length")
    corr = corr & has
    n_pos = int(has.sum())

    order = np.argsort(-conf, kind="stable")
    c_sorted = conf[order]
    tp = np.cumsum(corr[order])
    accepted = np.arange(1, conf.size + 1)
    # The curve point of threshold t is the last entry of t's tie group.
    group_end = np.r_[c_sorted[1:] != c_sorted[:-1], True] if conf.size else np.empty(0, bool)
    last = np.flatnonzero(group_end)
    tp, accepted, thr = tp[last], accepted[last], c_sorted[last]

    precision = np.r_[1.0, tp / accepted]
    recall = np.r_[0.0, tp / n_pos if n_pos else np.zeros(tp.shape)]
    thresholds = np.r_[np.inf, thr]
    return precision, recall, thresholds


def pr_auc(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the PR curve by the trapezoid rule over recall.

        AUC = sum_i (R_{i+1} - R_i) * (P_{i+1} + P_i) / 2

    Points are taken in the order given (as returned by :func:`pr_curve`, where
    recall never decreases).  A perfect classifier gives 1.
    """
    p = np.asarray(precision, dtype=np.float64).ravel()
    r = np.asarray(recall, dtype=np.float64).ravel()
    if p.shape != r.shape:
        raise ConfigError(f"precision {p.shape} and recall {r.shape} differ in length")
    if p.size < 2:
        return 0.0
    return float(np.sum(np.diff(r) * (p[1:] + p[:-1]) / 2.0))


def recall_at_100_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """Largest recall among the curve points with precision exactly 1 (0.0 if none)."""
    p = np.asarray(precision, dtype=np.float64).ravel()
    r = np.asarray(recall, dtype=np.float64).ravel()
    perfect = p == 1.0
    return float(r[perfect].max()) if perfect.any() else 0.0


def distance_confidence(S: np.ndarray) -> np.ndarray:
    """Confidence of each best match under the reference system's distance rule.

        D = max(S_finite) - S,   confidence[q] = -min_p D[q, p] = max_p S[q, p] - max(S_finite)

    Accepting when ``D_best < threshold`` is accepting when this confidence
    exceeds ``-threshold``.  Undefined rows get -inf.
    """
    S = _as_scores(S)
    finite = np.isfinite(S)
    if not finite.any():
        return np.full(S.shape[0], -np.inf)
    top = S[finite].max()
    _, score = best_matches(S)
    return score - top


def pr_curves(
    S: np.ndarray,
    gt: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    tolerance: int = 0,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """PR curves of the best matches, keyed ``"distance"`` and (if given) ``"confidence"``.

    A best match p is correct when ``gt[q] >= 0`` and ``|p - gt[q]| <= tolerance``.
    Undefined (all -inf) rows are left out.  Each value is ``pr_curve(...)``'s
    ``(precision, recall, thresholds)``.
    """
    S = _as_scores(S)
    n_q, n_p = S.shape
    gt = _as_gt(gt, n_q, n_p)
    tolerance = _as_tolerance(tolerance)
    defined = _defined_rows(S)
    best, _ = best_matches(S)
    has = gt >= 0
    correct = has & (np.abs(best - gt) <= tolerance)
    curves = {
        "distance": pr_curve(distance_confidence(S)[defined], correct[defined], has[defined])
    }
    if confidence is not None:
        conf = np.asarray(confidence, dtype=np.float64)
        if conf.shape != (n_q,):
            raise ConfigError(f"confidence must have shape ({n_q},), got {conf.shape}")
        curves["confidence"] = pr_curve(conf[defined], correct[defined], has[defined])
    return curves


def evaluate_scores(
    S: np.ndarray,
    gt: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    tolerance: int = 0,
    ns: Iterable[int] = RECALL_NS,
) -> dict:
    """All metrics of a score matrix as a JSON-ready dict.

    Keys: ``recall`` (str(N) -> Recall@N, exact match), ``recall_tolerance``
    (only when ``tolerance > 0``), ``pr_auc`` and ``recall_at_100_precision``
    (PR of the best matches ranked by ``confidence``, or by the distance rule when
    ``confidence`` is None), ``pr_auc_distance`` (always the distance rule, see
    :func:`distance_confidence`) and ``queries`` (number of queries counted in
    recall).  PR counts exact matches as correct; with ``tolerance > 0`` the
    PR-AUC with that tolerance is added as ``pr_auc_tolerance``.
    """
    S = _as_scores(S)
    gt = _as_gt(gt, *S.shape)
    ns = _as_ns(ns)
    out: dict = {
        "recall": {str(n): v for n, v in recall_at_n(S, gt, ns).items()},
    }
    if _as_tolerance(tolerance) > 0:
        out["recall_tolerance"] = {
            str(n): v for n, v in recall_at_n(S, gt, ns, tolerance).items()
        }
    # PR of exact matches, like the headline R@1; with a tolerance, also that PR-AUC.
    curves = pr_curves(S, gt, confidence, 0)
    p_d, r_d, _ = curves["distance"]
    p, r, _ = curves.get("confidence", curves["distance"])
    out["pr_auc"] = pr_auc(p, r)
    out["recall_at_100_precision"] = recall_at_100_precision(p, r)
    out["pr_auc_distance"] = pr_auc(p_d, r_d)
    if _as_tolerance(tolerance) > 0:
        tol = pr_curves(S, gt, confidence, tolerance)
        p_t, r_t, _ = tol.get("confidence", tol["distance"])
        out["pr_auc_tolerance"] = pr_auc(p_t, r_t)
    out["queries"] = int(_counted_queries(S, gt).sum())
    return out
