"""Per-frame place recognition: image in, place id, confidence and top-k out.

This is the object the ROS localizer node wraps; it has no ROS dependency.
Scoring is the package's one scoring path (:class:`vprsnn_ros.snn.inference.Scorer`),
sequence matching is :mod:`vprsnn_ros.snn.sequence`, and the confidence is the
one rule of :mod:`vprsnn_ros.snn.confidence`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.io.preprocess import preprocess
from vprsnn_ros.model.ensemble import load_model
from vprsnn_ros.snn.confidence import (  # noqa: F401 - re-exported: vprsnn_ros.localizer API
    ConfidenceRule,
    max_spikes_per_neuron,
    score_confidence,
)
from vprsnn_ros.snn.inference import Scorer
from vprsnn_ros.snn.network import ModularSNN
from vprsnn_ros.snn.tracking import Tracker


@dataclass(frozen=True)
class Estimate:
    """The localizer's answer for one frame."""

    place_id: int            # best place, -1 until the sequence history is full
    confidence: float        # in [0, 1]
    top_places: np.ndarray   # (k,) place ids, best first
    top_scores: np.ndarray   # (k,) their scores
    latency_s: float         # wall time of this call
    scores: np.ndarray       # (n_places,) sequence-matched scores of every place (-inf: undefined)


class Localizer:
    """Recognise places one frame at a time with a trained model (or ensemble).

    >>> loc = Localizer("models/demo", sequence_length=1)
    >>> est = loc.localize(bgr_image)
    """

    def __init__(self, model: str | Path | ModularSNN | Sequence[ModularSNN], *,
                 sequence_length: int = 1, top_k: int = 5,
                 hyperactive_threshold: int | None = None, seed: int | None = None,
                 preselect_k: int | None = None, readout: str | None = None,
                 sequence_matcher: str = "diagonal") -> None:
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
        self.scorer = Scorer(members, threshold=hyperactive_threshold, preselect_k=preselect_k,
                             readout=readout)
        self.members = members
        self.top_k = min(top_k, members[0].n_places)
        self.threshold = hyperactive_threshold
        self.seed = seed
        self.sequence_length = sequence_length
        self.readout = self.scorer.readout
        self.sequence_matcher = sequence_matcher
        # Sequence matching and, with pre-selection and L > 1, tracked module candidates.
        self.tracker = Tracker(self.scorer, sequence_length, sequence_matcher)
        self.confidence_rule = ConfidenceRule.for_setup(members[0].config, self.readout, sequence_matcher,
                                                        sequence_length, len(members))
        self.max_score = self.confidence_rule.max_score
        self.frames = 0
        # Modules each member runs per frame: the override, else the member's calibrated K.
        self.preselect = self.scorer.k

    @property
    def n_places(self) -> int:
        return self.members[0].n_places

    @property
    def config(self):
        return self.members[0].config

    def reset(self) -> None:
        """Forget the sequence history and restart the frame counter."""
        self.tracker.reset()
        self.frames = 0

    def warm_up(self) -> None:
        """Run the kernels once so that the first real frame is not late (JIT load)."""
        cfg = self.config
        blank = np.zeros((cfg.image_height, cfg.image_width), np.uint8)
        self.scorer.warm_up(preprocess(blank, cfg.image_size, cfg.patch).reshape(1, -1))

    def frame_scores(self, image: np.ndarray, frame_id: int) -> np.ndarray:
        """Ensemble-summed place scores (n_places,) of one frame, before sequence matching."""
        cfg = self.config
        return self.tracker.frame_scores(preprocess(image, cfg.image_size, cfg.patch), frame_id)

    def scores_from_pixels(self, pixels: np.ndarray, frame_ids: Sequence[int]) -> np.ndarray:
        """Scores (Q, n_places) of preprocessed frames (Q, n_inputs) uint8."""
        return self.scorer.scores(pixels, frame_ids)

    @property
    def last_modules(self) -> list[np.ndarray]:
        """Per member: the (Q, K) modules the last frames ran."""
        return self.scorer.last_modules

    def localize(self, image: np.ndarray) -> Estimate:
        """Process the next frame of the stream."""
        start = time.perf_counter()
        scores = self.frame_scores(image, self.frames)
        self.frames += 1
        return self._estimate(self.tracker.update(scores), start)

    def _estimate(self, seq: np.ndarray, start: float) -> Estimate:
        if not np.isfinite(seq).any():
            empty = np.zeros(0, np.int64)
            return Estimate(-1, 0.0, empty, np.zeros(0), time.perf_counter() - start, seq)
        top = np.argsort(-seq, kind="stable")[: self.top_k]
        conf = self.confidence_rule(seq)
        return Estimate(place_id=int(top[0]), confidence=float(conf),
                        top_places=top, top_scores=seq[top], latency_s=time.perf_counter() - start,
                        scores=seq)
