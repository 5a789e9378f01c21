"""Sequence matching: the diagonal sum and SeqSLAM's contrast-normalised velocity search.

Two matchers, selected by name (:data:`SEQUENCE_MATCHERS`):

* ``diagonal`` -- the reference system's sum along one place per frame (below);
* ``seqslam`` -- as SeqSLAM (Milford & Wyeth, ICRA 2012): every query's
  scores are first contrast-normalised over a window of neighbouring places,
  then summed along straight trajectories of several velocities around one
  place per frame, keeping the best (see :func:`seqslam_scores`).

Both have an offline form (whole score matrix) and an online one (one frame at
a time, bounded memory) that give bit-identical answers.

The diagonal sum
----------------

The reference system writes it on distances and anchors a sequence at its
start::

    D_seq[r, q] = sum_{k=0}^{L-1} D[r+k, q+k]

We work on scores and anchor at the END, so a query's sequence score only needs
past frames and can be computed online::

    S_seq[q, p] = sum_{k=0}^{L-1} S[q-k, p-k]     for q >= L-1 and p >= L-1,
    S_seq[q, p] = -inf                             otherwise.

Why this ranks exactly like the reference:

* With ``D = max(S) - S`` the distance sum is ``L * max(S) - (score sum)``, a
  constant minus the score sum, so argmin over places of ``D_seq`` is argmax of
  the score sum (and any threshold on one is a threshold on the other).
* The end-anchored sum at ``(q, p)`` is the start-anchored one at
  ``(q-L+1, p-L+1)``: the matrix is shifted by ``L-1`` along BOTH indices, so a
  true match ``q -> q`` stays on the diagonal and the ground truth is unchanged.
"""

from __future__ import annotations

from collections import deque
from typing import Sequence

import numpy as np

from vprsnn_ros.errors import ConfigError


def _check_length(length: int) -> int:
    if isinstance(length, bool) or int(length) != length or length < 1:
        raise ConfigError(f"sequence length must be an integer >= 1, got {length!r}")
    return int(length)


def sequence_scores(S: np.ndarray, length: int) -> np.ndarray:
    """End-anchored sequence scores of a whole score matrix (float64 copy).

        S_seq[q, p] = sum_{k=0}^{L-1} S[q-k, p-k]   (q, p >= L-1; -inf elsewhere)

    Summed in the order k = 0, 1, ..., L-1 so that :class:`OnlineSequenceMatcher`
    reproduces every row bit for bit.  ``length == 1`` returns a copy of S.
    """
    L = _check_length(length)
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2:
        raise ConfigError(f"score matrix must be 2-D, got shape {S.shape}")
    n_q, n_p = S.shape
    out = np.full((n_q, n_p), -np.inf)
    if L > n_q or L > n_p:
        return out
    # One shifted slice per k: L passes over the matrix, no per-element Python loop.
    acc = S[L - 1 :, L - 1 :].copy()
    for k in range(1, L):
        acc += S[L - 1 - k : n_q - k, L - 1 - k : n_p - k]
    out[L - 1 :, L - 1 :] = acc
    return out


class _FrameHistory:
    """The last ``length`` frames' scores, shared by the online matchers (bounded memory)."""

    length: int
    _history: deque

    @property
    def n_buffered(self) -> int:
        """Number of score vectors held (never more than ``length``)."""
        return len(self._history)

    @property
    def ready(self) -> bool:
        """True once ``length`` frames have been seen, i.e. outputs are defined."""
        return len(self._history) == self.length

    def reset(self) -> None:
        """Forget all past frames (e.g. after a jump in the query stream)."""
        self._history.clear()


class OnlineSequenceMatcher(_FrameHistory):
    """Streaming form of :func:`sequence_scores`, one query at a time.

    Keeps only the last ``length`` score vectors (a fixed-size ring buffer), so
    memory is O(L * n_places) and each update costs O(L * n_places).
    """

    def __init__(self, length: int, n_places: int) -> None:
        self.length = _check_length(length)
        if isinstance(n_places, bool) or int(n_places) != n_places or n_places < 1:
            raise ConfigError(f"n_places must be an integer >= 1, got {n_places!r}")
        self.n_places = int(n_places)
        self._history: deque[np.ndarray] = deque(maxlen=self.length)

    def update(self, scores: np.ndarray) -> np.ndarray:
        """Add one query's scores ``(n_places,)``; return its sequence scores ``(n_places,)``.

            out[p] = sum_{k=0}^{L-1} s_{t-k}[p-k]   (p >= L-1; -inf elsewhere)

        where ``s_t`` is this call's vector and ``s_{t-k}`` the one k calls ago.
        All -inf until ``length`` frames have been seen since the last reset.
        """
        # Copy: callers often reuse the buffer they pass in.
        s = np.array(scores, dtype=np.float64, copy=True)
        if s.shape != (self.n_places,):
            raise ConfigError(f"scores must have shape ({self.n_places},), got {s.shape}")
        self._history.append(s)
        L, n_p = self.length, self.n_places
        out = np.full(n_p, -np.inf)
        if not self.ready or L > n_p:
            return out
        # Same order as sequence_scores (k = 0 first) so results are bit-identical.
        acc = self._history[-1][L - 1 :].copy()
        for k in range(1, L):
            acc += self._history[-1 - k][L - 1 - k : n_p - k]
        out[L - 1 :] = acc
        return out


# --------------------------------------------------------------------------
# SeqSLAM: local contrast normalisation and a velocity search
# --------------------------------------------------------------------------

SEQUENCE_MATCHERS = ("diagonal", "seqslam")
# SeqSLAM's published defaults: a 10-place contrast window (5 on each side) and
# trajectories from 0.8 to 1.2 reference places per query frame.
DEFAULT_CONTRAST_RADIUS = 5
DEFAULT_VELOCITIES = (0.8, 0.9, 1.0, 1.1, 1.2)


def check_matcher(name: str) -> str:
    if name not in SEQUENCE_MATCHERS:
        raise ConfigError(f"sequence matcher must be one of {', '.join(SEQUENCE_MATCHERS)}, not {name!r}")
    return name


def local_contrast(S: np.ndarray, radius: int = DEFAULT_CONTRAST_RADIUS) -> np.ndarray:
    """Each row's scores normalised by the mean and std of the places around each place.

        N[q, p] = (S[q, p] - mean_w S[q, w]) / std_w S[q, w],   w in [p - r, p + r] within the route

    (population std; N = 0 where the window is flat). This is SeqSLAM's
    enhancement of the difference matrix written on scores: with D = c - S the
    normalised D is exactly -N, so it ranks the same. Rows are independent, so
    one frame's row is the same whether computed alone or in a matrix: the
    window is accumulated with one elementwise pass per offset, in a fixed order.
    """
    S = np.asarray(S, dtype=np.float64)
    if S.ndim not in (1, 2):
        raise ConfigError(f"scores must be 1-D or 2-D, got shape {S.shape}")
    if not np.all(np.isfinite(S)):
        raise ConfigError("contrast normalisation needs finite scores")
    if isinstance(radius, bool) or int(radius) != radius or radius < 0:
        raise ConfigError(f"contrast radius must be an integer >= 0, got {radius!r}")
    r, n = int(radius), S.shape[-1]
    padded = np.zeros(S.shape[:-1] + (n + 2 * r,))
    padded[..., r:r + n] = S
    inside = np.zeros(n + 2 * r)
    inside[r:r + n] = 1.0
    count = np.zeros(n)
    total = np.zeros(S.shape)
    for j in range(2 * r + 1):
        count += inside[j:j + n]
        total += padded[..., j:j + n]
    mean = total / count
    spread = np.zeros(S.shape)
    for j in range(2 * r + 1):
        d = (padded[..., j:j + n] - mean) * inside[j:j + n]
        spread += d * d
    std = np.sqrt(spread / count)
    return np.where(std > 0, (S - mean) / np.where(std > 0, std, 1.0), 0.0)


def velocity_offsets(velocities: Sequence[float], length: int) -> np.ndarray:
    """(n_v, L) int: how many places back frame t-k lies on a trajectory of velocity v.

        offset[v, k] = floor(v * k + 1/2)
    """
    v = np.asarray(velocities, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ConfigError(f"velocities must be a non-empty list of numbers >= 0, got {velocities!r}")
    k = np.arange(_check_length(length))
    return np.floor(v[:, None] * k[None, :] + 0.5).astype(np.int64)


def _trajectory_best(rows: Sequence[np.ndarray], offsets: np.ndarray, n_p: int,
                     lead: tuple[int, ...]) -> np.ndarray:
    """max over velocities of sum_k rows[k][..., p - offset[v, k]], -inf where a trajectory leaves the route.

    ``rows[k]`` is the normalised frame k steps back (shape lead + (n_p,)); summed
    k = 0, 1, ... so that the offline and online forms add in the same order.
    """
    out = np.full(lead + (n_p,), -np.inf)
    for off in offsets:
        first = int(off[-1])  # offsets grow with k: the last one bounds the valid places
        if first >= n_p:
            continue
        acc = rows[0][..., first - off[0]: n_p - off[0]].copy()
        for k in range(1, len(off)):
            acc += rows[k][..., first - off[k]: n_p - off[k]]
        np.maximum(out[..., first:], acc, out=out[..., first:])
    return out


def seqslam_scores(S: np.ndarray, length: int, velocities: Sequence[float] = DEFAULT_VELOCITIES,
                   radius: int = DEFAULT_CONTRAST_RADIUS) -> np.ndarray:
    """SeqSLAM sequence scores of a whole score matrix, end-anchored like :func:`sequence_scores`.

        N = local_contrast(S, radius)
        S_seq[q, p] = max_v sum_{k=0}^{L-1} N[q-k, p - floor(v k + 1/2)]

    for q >= L-1 (-inf before, and for places whose trajectory would start
    before the first place). Higher is better. :class:`OnlineSeqSlamMatcher`
    gives the same rows bit for bit.
    """
    L = _check_length(length)
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2:
        raise ConfigError(f"score matrix must be 2-D, got shape {S.shape}")
    offsets = velocity_offsets(velocities, L)
    n_q, n_p = S.shape
    out = np.full((n_q, n_p), -np.inf)
    if L > n_q:
        return out
    N = local_contrast(S, radius)
    rows = [N[L - 1 - k: n_q - k] for k in range(L)]
    out[L - 1:] = _trajectory_best(rows, offsets, n_p, (n_q - L + 1,))
    return out


class OnlineSeqSlamMatcher(_FrameHistory):
    """Streaming form of :func:`seqslam_scores`: keeps the last ``length`` normalised frames."""

    def __init__(self, length: int, n_places: int, velocities: Sequence[float] = DEFAULT_VELOCITIES,
                 radius: int = DEFAULT_CONTRAST_RADIUS) -> None:
        self.length = _check_length(length)
        if isinstance(n_places, bool) or int(n_places) != n_places or n_places < 1:
            raise ConfigError(f"n_places must be an integer >= 1, got {n_places!r}")
        self.n_places = int(n_places)
        self.offsets = velocity_offsets(velocities, self.length)
        self.radius = radius
        local_contrast(np.zeros(1), radius)  # validate now, not at the first frame
        self._history: deque[np.ndarray] = deque(maxlen=self.length)

    def update(self, scores: np.ndarray) -> np.ndarray:
        """Add one query's scores ``(n_places,)``; return its sequence scores (-inf until ready)."""
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != (self.n_places,):
            raise ConfigError(f"scores must have shape ({self.n_places},), got {s.shape}")
        self._history.append(local_contrast(s, self.radius))
        if not self.ready:
            return np.full(self.n_places, -np.inf)
        rows = [self._history[-1 - k] for k in range(self.length)]
        return _trajectory_best(rows, self.offsets, self.n_places, ())


def match_sequences(S: np.ndarray, length: int, matcher: str = "diagonal") -> np.ndarray:
    """Offline sequence scores of ``S`` with the named matcher (``length`` 1 + diagonal = copy)."""
    if check_matcher(matcher) == "seqslam":
        return seqslam_scores(S, length)
    return sequence_scores(S, length)


def online_matcher(matcher: str, length: int, n_places: int):
    """The online matcher of that name; ``update(scores)`` returns what :func:`match_sequences` would."""
    if check_matcher(matcher) == "seqslam":
        return OnlineSeqSlamMatcher(length, n_places)
    return OnlineSequenceMatcher(length, n_places)
