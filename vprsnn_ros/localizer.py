"""Per-frame place recognition: image in, place id, confidence and top-k out.

This is the object the ROS localizer node wraps; it has no ROS dependency.

Confidence
----------
The confidence of a frame is its best (sequence-matched, ensemble-summed) place
score as a fraction of the largest score the network can produce::

    confidence = s1 / (max_spikes * L * K)

with ``max_spikes`` the most spikes one neuron can fire in a 350 ms
presentation (its 50 ms timer allows 7), L the sequence length and K the
ensemble size; it is in [0, 1] and needs no other frame, so it is computed
online. The reference code's rule thresholds the best match's distance
``max(S) - s1`` with ``max(S)`` over the whole query set: both are increasing
functions of ``s1``, so they accept the same queries in the same order and
their PR curves and PR-AUC are identical. Margin-based alternatives
(``(s1 - s2) / s1``) were measured on Nordland and gave a lower PR-AUC
(0.015 vs 0.035 for single frames, 0.201 vs 0.206 with L = 4).

With the ``zscore`` readout or the ``seqslam`` matcher scores have no upper
bound, and the confidence is ``1 / (1 + exp(-s1 / (L * K)))`` instead
(:func:`~vprsnn_ros.snn.readout.bounded_confidence`): also increasing in ``s1``.
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
from vprsnn_ros.snn.coding import rates_hz
from vprsnn_ros.snn.network import ModularSNN, lane_spike_counts
from vprsnn_ros.snn.preselect import ModuleRanker, effective_k
from vprsnn_ros.snn.readout import bounded_confidence, check_readout
from vprsnn_ros.snn.sequence import online_matcher


def max_spikes_per_neuron(config) -> int:
    """Most spikes one excitatory neuron can fire during a presentation.

    A spike needs timer > refrac_e, and the timer restarts at 0 and grows by
    timer_rate * dt per step, so spikes are at least ceil(refrac_e /
    (timer_rate * dt)) + 1 steps apart; from rest the first can come at once.
    """
    p, dt = config.params, config.dt
    gap = int(np.floor(p.refrac_e / (p.timer_rate * dt) + 1e-9)) + 1
    return int((round(p.present_ms / dt) - 1) // gap + 1)


def score_confidence(scores: np.ndarray, max_score: float) -> np.ndarray:
    """Best score of each row (last axis = places) over ``max_score``, clipped to [0, 1]."""
    s = np.asarray(scores, dtype=np.float64)
    best = np.max(np.where(np.isfinite(s), s, -np.inf), axis=-1)
    return np.clip(np.where(np.isfinite(best), best / max_score, 0.0), 0.0, 1.0)


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
        if hyperactive_threshold is not None and hyperactive_threshold < 0:
            raise ConfigError("hyperactive_threshold must be >= 0 (0 = no masking)")
        if preselect_k is not None and preselect_k < 0:
            raise ConfigError("preselect_k must be >= 0 (0 = every module)")
        self.members = members
        self.top_k = min(top_k, members[0].n_places)
        self.threshold = hyperactive_threshold
        self.seed = seed
        self.sequence_length = sequence_length
        self.max_score = float(max_spikes_per_neuron(members[0].config) * sequence_length * len(members))
        # readout (None: the model's profile) and matcher: see readout.py and sequence.py.
        self.readout = check_readout(members[0].readout if readout is None else readout)
        self.sequence_matcher = sequence_matcher
        self._matcher = online_matcher(sequence_matcher, sequence_length, members[0].n_places)
        self._bounded = self.readout != "mean" or sequence_matcher != "diagonal"
        self.frames = 0
        # Modules each member runs per frame: the override, else the member's calibrated K.
        self.preselect = [effective_k(net, preselect_k, net.n_modules) for net in members]
        self._rankers = [ModuleRanker(net, threshold=self.threshold) if k < net.n_modules else None
                         for net, k in zip(members, self.preselect)]
        self.last_modules: list[np.ndarray] = []  # per member: (Q, K) modules run for the last frames

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
        ids = np.asarray(frame_ids)
        total = np.zeros((len(pixels), self.n_places))
        modules = [None if ranker is None else ranker.top_modules(pixels, k)
                   for ranker, k in zip(self._rankers, self.preselect)]
        # All members in one pass: their jobs share the threads (a 5-member
        # ensemble with pre-selection is 5 lane groups, not 5 sequential calls).
        counts = lane_spike_counts(self.members, rates, ids, modules)
        for net, c, m in zip(self.members, counts, modules):
            total += net.scores(c, modules=m, threshold=self.threshold, readout=self.readout)
        self.last_modules = [np.broadcast_to(np.arange(net.n_modules), (len(ids), net.n_modules))
                             if m is None else m for net, m in zip(self.members, modules)]
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
            return Estimate(-1, 0.0, empty, np.zeros(0), time.perf_counter() - start, seq)
        top = np.argsort(-seq, kind="stable")[: self.top_k]
        conf = bounded_confidence(seq, self.sequence_length * len(self.members)) if self._bounded \
            else score_confidence(seq, self.max_score)
        return Estimate(place_id=int(top[0]), confidence=float(conf),
                        top_places=top, top_scores=seq[top], latency_s=time.perf_counter() - start,
                        scores=seq)
