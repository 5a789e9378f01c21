"""The plain image-matching baseline: sum of absolute differences (SAD).

Every report scores it beside the network, on the very images the network
sees (the 28 x 28 patch-normalised output of :mod:`vprsnn_ros.io.preprocess`), so
that a user always sees what the spiking network adds over matching pixels::

    SAD[q, p] = sum_i |query[q, i] - reference[p, i]|,   score[q, p] = -SAD[q, p]

Scores are "higher is better", like the network's, so the same metrics and
sequence matchers apply unchanged.
"""

from __future__ import annotations

import time

import numpy as np

from vprsnn_ros.errors import ConfigError

# Queries per block: bounds the (block, n_places, n_inputs) int16 temporary to
# about this many elements (64 MB) whatever the number of places.
_BLOCK_ELEMENTS = 32_000_000


def _as_pixels(a: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] == 0:
        raise ConfigError(f"{what} must be (n_images, n_inputs), got shape {a.shape}")
    if a.dtype != np.uint8:
        raise ConfigError(f"{what} must be preprocessed uint8 pixels, got {a.dtype}")
    return a


def sad_scores(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Negated SAD (Q, P) float64 between preprocessed queries (Q, n) and references (P, n), uint8."""
    q = _as_pixels(query, "query pixels")
    r = _as_pixels(reference, "reference pixels")
    if q.shape[1] != r.shape[1]:
        raise ConfigError(f"query images have {q.shape[1]} pixels but reference images {r.shape[1]}")
    out = np.empty((len(q), len(r)), np.float64)
    # int16 holds every difference of two uint8 values; sums are exact in int64.
    ref16 = r.astype(np.int16)
    block = max(1, _BLOCK_ELEMENTS // max(1, r.size))
    for start in range(0, len(q), block):
        qb = q[start:start + block].astype(np.int16)
        diff = np.abs(qb[:, None, :] - ref16[None, :, :])
        out[start:start + block] = -diff.sum(axis=2, dtype=np.int64)
    return out


def baseline_report(query: np.ndarray, reference: np.ndarray, gt: np.ndarray, *,
                    places: np.ndarray | None = None, rows: np.ndarray | None = None,
                    sequence_length: int = 1,
                    sequence_matcher: str = "diagonal", tolerance: int = 0,
                    column_module: np.ndarray | None = None,
                    snn_ran: np.ndarray | None = None) -> dict:
    """SAD metrics on the same queries, places, ground truth and sequence matcher as the network.

    ``places``: the reference places that compete (columns kept, in order;
    default all); ``gt[q]`` is then an index into ``places`` (-1: no true
    place). ``rows``: the queries kept after sequence matching (default all;
    ``gt`` is then one per kept query). Returns the metric keys of :func:`~vprsnn_ros.eval.metrics.evaluate_scores`
    plus ``method``, ``sequence_length``, ``sequence_matcher`` and ``seconds``, and with
    ``column_module`` (the module of each kept column) ``where_loss``
    (:func:`vprsnn_ros.eval.loss.where_the_loss_is`); with ``snn_ran`` (the queries whose
    true module the SNN ran) also SAD's R@1 given the true module on those queries alone,
    the like-for-like comparison when pre-selection ran only some modules.
    """
    from vprsnn_ros.eval.metrics import evaluate_scores
    from vprsnn_ros.snn.sequence import match_sequences

    started = time.perf_counter()
    S = sad_scores(query, reference)
    if places is not None:
        S = S[:, np.asarray(places)]
    S = match_sequences(S, sequence_length, sequence_matcher)
    if rows is not None:
        S = S[np.asarray(rows)]
    seconds = time.perf_counter() - started
    report = evaluate_scores(S, gt, tolerance=tolerance)
    report.update({"method": "sad", "images": "preprocessed", "sequence_length": int(sequence_length),
                   "sequence_matcher": sequence_matcher, "seconds": round(seconds, 4)})
    if column_module is not None:
        from vprsnn_ros.eval.loss import where_the_loss_is

        report["where_loss"] = where_the_loss_is(S, gt, np.asarray(column_module))
        if snn_ran is not None:
            same = where_the_loss_is(S, gt, np.asarray(column_module), snn_ran)
            report["where_loss"]["recall_at_1_given_module_where_snn_ran"] = same["recall_at_1_given_module"]
    return report
