"""Confidence of a match: the one rule used by the localizer, evaluation reports and replay reports.

The confidence of a frame is an increasing function of its best
(sequence-matched, ensemble-summed) place score ``s1``, computed from that
frame alone, so it works online. Which function depends on whether the scores
have an upper bound:

* **native** (``mean`` readout with the ``diagonal`` matcher): the best score as
  a fraction of the largest score the network can produce::

      confidence = s1 / (max_spikes * L * K)

  with ``max_spikes`` the most spikes one neuron can fire in a presentation
  (:func:`max_spikes_per_neuron`), L the sequence length and K the ensemble size.
* **bounded** (``zscore`` readout, or the ``seqslam`` matcher: no upper bound)::

      confidence = 1 / (1 + exp(-s1 / (L * K)))

Both are in [0, 1]; a frame with no finite score has confidence 0. The
reference code's rule thresholds the best match's distance ``max(S) - s1`` with
``max(S)`` over the whole query set: also increasing in ``s1``, so it accepts
the same queries in the same order, and PR curves and PR-AUC are identical.
Margin-based alternatives (``(s1 - s2) / s1``) were measured on Nordland and
gave a lower PR-AUC (0.015 vs 0.035 for single frames, 0.201 vs 0.206 with L = 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NATIVE_FORMULA = "s1 / (max_spikes * L * K)"
BOUNDED_FORMULA = "1 / (1 + exp(-s1 / (L * K)))"


def max_spikes_per_neuron(config) -> int:
    """Most spikes one excitatory neuron can fire during a presentation.

    A spike needs timer > refrac_e, and the timer restarts at 0 and grows by
    timer_rate * dt per step, so spikes are at least ceil(refrac_e /
    (timer_rate * dt)) + 1 steps apart; from rest the first can come at once.
    """
    p, dt = config.params, config.dt
    gap = int(np.floor(p.refrac_e / (p.timer_rate * dt) + 1e-9)) + 1
    return int((round(p.present_ms / dt) - 1) // gap + 1)


def _best(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    return np.max(np.where(np.isfinite(s), s, -np.inf), axis=-1)


def score_confidence(scores: np.ndarray, max_score: float) -> np.ndarray:
    """Native rule: best score of each row (last axis = places) over ``max_score``, clipped to [0, 1]."""
    best = _best(scores)
    return np.clip(np.where(np.isfinite(best), best / max_score, 0.0), 0.0, 1.0)


def bounded_confidence(scores: np.ndarray, n_terms: float) -> np.ndarray:
    """Bounded rule: ``1 / (1 + exp(-s1 / n_terms))`` of each row's best score; 0 where none is finite.

    ``n_terms`` is the number of summed score vectors (sequence length x
    ensemble size).
    """
    best = _best(scores)
    with np.errstate(over="ignore"):
        conf = 1.0 / (1.0 + np.exp(-np.where(np.isfinite(best), best, -np.inf) / n_terms))
    return np.where(np.isfinite(best), conf, 0.0)


@dataclass(frozen=True)
class ConfidenceRule:
    """The confidence rule of one setup: native (``scale`` None) or bounded.

    >>> rule = ConfidenceRule.for_setup(config, "zscore", "diagonal", sequence_length=1, ensemble=1)
    >>> rule(scores)            # (Q,) confidences of a (Q, n_places) score matrix
    """

    max_score: float            # max_spikes * L * K: the native rule's denominator
    scale: float | None = None  # L * K for the bounded rule; None = native

    @classmethod
    def for_setup(cls, config, readout: str, sequence_matcher: str, sequence_length: int,
                  ensemble: int) -> "ConfidenceRule":
        n_terms = sequence_length * ensemble
        native = readout == "mean" and sequence_matcher == "diagonal"
        return cls(max_score=float(max_spikes_per_neuron(config) * n_terms),
                   scale=None if native else float(n_terms))

    @classmethod
    def from_report(cls, report: dict) -> "ConfidenceRule":
        """The rule a report was written with (keys of :meth:`report_fields`)."""
        scale = report.get("confidence_scale")
        return cls(max_score=float(report["confidence_max_score"]), scale=float(scale) if scale else None)

    @property
    def native(self) -> bool:
        return self.scale is None

    @property
    def formula(self) -> str:
        return NATIVE_FORMULA if self.native else BOUNDED_FORMULA

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Confidence of each row of ``scores`` (a 0-d array for one score vector)."""
        if self.native:
            return score_confidence(scores, self.max_score)
        return bounded_confidence(scores, self.scale)

    def report_fields(self) -> dict:
        """What reports record so that the rule can be applied again (:meth:`from_report`)."""
        max_score = int(self.max_score) if float(self.max_score).is_integer() else self.max_score
        scale = None if self.scale is None else (int(self.scale) if float(self.scale).is_integer()
                                                  else self.scale)
        return {"confidence": self.formula, "confidence_max_score": max_score, "confidence_scale": scale}
