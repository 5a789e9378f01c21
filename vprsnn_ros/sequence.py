"""Sequence matching with a constant, forward velocity (SeqSLAM-style).

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

import numpy as np

from .errors import ConfigError


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


class OnlineSequenceMatcher:
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
