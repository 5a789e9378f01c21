"""Per-frame place recognition: image in, place id, confidence and top-k out.

This is the object the ROS localizer node wraps; it has no ROS dependency.

Confidence
----------
For the (sequence-matched, ensemble-summed) score vector of a frame with best
score ``s1`` and second best ``s2``::

    confidence = (s1 - s2) / s1      (0 when s1 <= 0)

It is in [0, 1]: 0 when two places tie or nothing fired, 1 when only one place
has any support. Unlike the reference code's rule (threshold the best match's
distance ``max(S) - s1``, where ``max(S)`` is taken over the whole query set),
it needs no other frame, so it can be computed online. Its PR-AUC against the
distance rule is measured by ``vprsnn evaluate`` (both are in report.json).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .ensemble import load_model
from .errors import ConfigError
from .network import ModularSNN
from .preprocess import preprocess, rates_hz
from .sequence import OnlineSequenceMatcher


def margin_confidence(scores: np.ndarray) -> np.ndarray:
    """``(s1 - s2) / s1`` per row of ``scores`` (last axis = places); 0 where s1 <= 0."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape[-1] < 2:
        return np.where(s[..., 0] > 0, 1.0, 0.0)
    top2 = -np.partition(-s, 1, axis=-1)[..., :2]
    s1, s2 = top2[..., 0], top2[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(np.isfinite(s1) & (s1 > 0), (s1 - np.where(np.isfinite(s2), s2, 0.0)) / s1, 0.0)
    return np.clip(c, 0.0, 1.0)


@dataclass(frozen=True)
class Estimate:
    """The localizer's answer for one frame."""

    place_id: int            # best place, -1 until the sequence history is full
    confidence: float        # in [0, 1]
    top_places: np.ndarray   # (k,) place ids, best first
    top_scores: np.ndarray   # (k,) their scores
    latency_s: float         # wall time of this call


class Localizer:
    """Recognise places one frame at a time with a trained model (or ensemble).

    >>> loc = Localizer("models/demo", sequence_length=1)
    >>> est = loc.localize(bgr_image)
    """

    def __init__(self, model: str | Path | ModularSNN | Sequence[ModularSNN], *,
                 sequence_length: int = 1, top_k: int = 5,
                 hyperactive_threshold: int | None = None, seed: int | None = None) -> None:
        if isinstance(model, (str, Path)):
            members = load_model(model)
        elif isinstance(model, ModularSNN):
            members = [model]
        else:
            members = list(model)
        if not members:
            raise ConfigError("a localizer needs at least one network")
        if sequence_length < 1:
            raise ConfigError("sequence_length must be >= 1")
        if top_k < 1:
            raise ConfigError("top_k must be >= 1")
        if hyperactive_threshold is not None and hyperactive_threshold < 0:
            raise ConfigError("hyperactive_threshold must be >= 0 (0 = no masking)")
        self.members = members
        self.top_k = min(top_k, members[0].n_places)
        self.threshold = hyperactive_threshold
        self.seed = seed
        self.sequence_length = sequence_length
        self._matcher = OnlineSequenceMatcher(sequence_length, members[0].n_places)
        self.frames = 0

    @property
    def n_places(self) -> int:
        return self.members[0].n_places

    @property
    def config(self):
        return self.members[0].config

    def reset(self) -> None:
        """Forget the sequence history and restart the frame counter."""
        self._matcher.reset()
        self.frames = 0

    def warm_up(self) -> None:
        """Run the kernels once so that the first real frame is not late (JIT load)."""
        cfg = self.config
        blank = np.zeros((cfg.image_height, cfg.image_width), np.uint8)
        self.frame_scores(blank, frame_id=0)

    def frame_scores(self, image: np.ndarray, frame_id: int) -> np.ndarray:
        """Ensemble-summed place scores (n_places,) of one frame, before sequence matching."""
        cfg = self.config
        u = preprocess(image, cfg.image_size, cfg.patch).reshape(1, -1)
        return self.scores_from_pixels(u, [frame_id])[0]

    def scores_from_pixels(self, pixels: np.ndarray, frame_ids: Sequence[int]) -> np.ndarray:
        """Scores (Q, n_places) of preprocessed frames (Q, n_inputs) uint8."""
        rates = rates_hz(pixels).astype(np.float64)
        total = np.zeros((len(pixels), self.n_places))
        for net in self.members:
            counts = net.spike_counts(rates, np.asarray(frame_ids))
            total += net.scores(counts, threshold=self.threshold)
        return total

    def localize(self, image: np.ndarray) -> Estimate:
        """Process the next frame of the stream."""
        start = time.perf_counter()
        scores = self.frame_scores(image, self.frames)
        self.frames += 1
        return self._estimate(self._matcher.update(scores), start)

    def _estimate(self, seq: np.ndarray, start: float) -> Estimate:
        if not np.isfinite(seq).any():
            empty = np.zeros(0, np.int64)
            return Estimate(-1, 0.0, empty, np.zeros(0), time.perf_counter() - start)
        top = np.argsort(-seq, kind="stable")[: self.top_k]
        return Estimate(place_id=int(top[0]), confidence=float(margin_confidence(seq)),
                        top_places=top, top_scores=seq[top], latency_s=time.perf_counter() - start)
