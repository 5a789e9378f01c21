"""Tracking: frame-by-frame scoring whose module candidates follow the sequence hypotheses.

With template pre-selection each frame runs only its K best modules by
template. With sequence matching (L > 1) that loses the sequence: the true
places of the previous frames sit in modules that were not run for those
frames, so the sums find nothing there. Tracking adds, for every frame, the
modules where the best current sequence hypotheses say this frame should be::

    H       = the ``hypotheses`` best places of the previous frame's sequence scores
    next    = { p + floor(v + 1/2) : p in H, v in the matcher's velocities }
    modules = template top K  U  { module(p') : p' in next }

(the diagonal matcher moves one place per frame: ``next = H + 1``). Before the
sequence history is full there are no hypotheses, and only the template's top
K run. The node, replay and offline evaluation all score through one
:class:`Tracker`, so they give the same answers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from vprsnn_ros.snn.inference import Scorer
from vprsnn_ros.snn.sequence import DEFAULT_VELOCITIES, check_matcher, online_matcher

# How many of the best sequence hypotheses propose modules for the next frame.
TRACKING_HYPOTHESES = 3


def step_offsets(matcher: str) -> np.ndarray:
    """How many places one frame moves along the matcher's trajectories (unique, increasing)."""
    if check_matcher(matcher) == "seqslam":
        return np.unique(np.floor(np.asarray(DEFAULT_VELOCITIES) + 0.5).astype(np.int64))
    return np.array([1], np.int64)


def place_modules_of(net) -> np.ndarray:
    """Module of every place of ``net`` (-1: none)."""
    out = np.full(net.n_places, -1, np.int64)
    for m, region in enumerate(net.regions):
        out[np.asarray(region, dtype=np.int64)] = m
    return out


class Tracker:
    """Scores one frame at a time, with sequence matching and tracked module candidates.

    ``columns``: the places (global ids) the sequence matcher ranks, default
    every place (a split's places in offline evaluation). ``step`` returns the
    frame's sequence scores over ``columns``.
    """

    def __init__(self, scorer: Scorer, sequence_length: int, matcher: str = "diagonal",
                 columns: np.ndarray | None = None, hypotheses: int = TRACKING_HYPOTHESES) -> None:
        self.scorer = scorer
        self.columns = np.arange(scorer.n_places) if columns is None else np.asarray(columns, dtype=np.int64)
        self.matcher = online_matcher(matcher, sequence_length, len(self.columns))
        self.active = sequence_length > 1 and scorer.preselecting
        self.hypotheses = int(hypotheses)
        self._offsets = step_offsets(matcher)
        self._place_module = [place_modules_of(net) for net in scorer.members]
        self._predicted: np.ndarray | None = None  # global place ids this frame should be near
        self.modules_run: list[int] = []            # modules run per frame, summed over members

    def reset(self) -> None:
        self.matcher.reset()
        self._predicted = None

    def _extra(self) -> list[np.ndarray] | None:
        """Per member, the modules of the predicted places (None: nothing predicted)."""
        if not self.active or self._predicted is None or len(self._predicted) == 0:
            return None
        return [np.unique(pm[self._predicted][pm[self._predicted] >= 0]) for pm in self._place_module]

    def frame_scores(self, pixels: np.ndarray, frame_id: int) -> np.ndarray:
        """Ensemble-summed scores (n_places,) of one preprocessed frame (n_inputs,), candidates tracked."""
        scores = self.scorer.scores(np.reshape(pixels, (1, -1)), [frame_id], extra=self._extra())[0]
        self.modules_run.append(int(sum(m.shape[1] for m in self.scorer.last_modules)))
        return scores

    def update(self, scores: np.ndarray) -> np.ndarray:
        """Sequence scores over ``columns`` of a frame's ``scores`` (n_places,); predicts the next frame."""
        seq = self.matcher.update(scores[self.columns])
        if self.active:
            finite = np.flatnonzero(np.isfinite(seq))
            if len(finite):
                best = finite[np.argsort(-seq[finite], kind="stable")[: self.hypotheses]]
                ahead = (best[:, None] + self._offsets[None, :]).reshape(-1)
                ahead = ahead[ahead < len(self.columns)]
                self._predicted = np.unique(self.columns[ahead])
            else:
                self._predicted = None
        return seq

    def step(self, pixels: np.ndarray, frame_id: int) -> np.ndarray:
        """:meth:`frame_scores` then :meth:`update`: one frame's sequence scores over ``columns``."""
        return self.update(self.frame_scores(pixels, frame_id))

    def run(self, pixels: np.ndarray, frame_ids: Sequence[int]) -> np.ndarray:
        """Sequence scores (Q, len(columns)) of frames in order (offline evaluation)."""
        return np.stack([self.step(p, i) for p, i in zip(pixels, frame_ids)]) if len(pixels) else \
            np.zeros((0, len(self.columns)))
