"""Readouts: from per-place scores of the modules to one ranking over all places.

``mean`` (the faithful readout, spec section 5) ranks places by the mean spike
count of their neurons, over all modules at once, so one module that fires
more than the others wins most queries.

``zscore`` (profile switch ``readout``) merges the modules on a common scale:

1. per place, against the reference traverse: ``z1[q, p] = (s[q, p] - mu_p) /
   sd_p`` with ``mu_p, sd_p`` the mean and std of place p's score over every
   reference image (so a place whose neurons fire for everything no longer
   looks like a match for everything);
2. per module, within the query: ``z2[q, p] = (z1[q, p] - mean_m z1[q]) /
   std_m z1[q]`` over the places of p's module m (so every module's best place
   is judged by how much it stands out among its module's places);
3. the argmax over all places.

The reference statistics are kept as exact integer sums (:class:`ReferenceStats`)
from which ``mu_p, sd_p`` follow for any hyperactivity mask, so the model does
not fix the threshold T. Cost per frame: a few vector operations over the
places (well under 1 ms at 3,300 places).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from vprsnn_ros.errors import ConfigError

READOUTS = ("mean", "zscore")


def check_readout(name: str) -> str:
    if name not in READOUTS:
        raise ConfigError(f"readout must be one of {', '.join(READOUTS)}, not {name!r}")
    return name


@dataclass
class ReferenceStats:
    """Sums over the reference traverse from which each place's score mean and std follow.

    ``neuron_sum[m, n]``: total spikes of neuron n of module m over the reference
    images; ``pair_i, pair_j``: every ordered pair (including n with itself) of
    neurons of one module assigned to the same place, as flat ids ``m * N + n``;
    ``pair_sum``: sum over images of the product of their counts. With ``x_n``
    the count and ``A_p`` the neurons of place p (|A_p| = a_p, masked ones
    contributing 0 but counted, as in the faithful score)::

        mean_p = sum_{n in A_p} sum_i x_n(i) / (I a_p)
        E[s_p^2] = sum_{n, n' in A_p} sum_i x_n(i) x_n'(i) / (I a_p^2)
    """

    assignments: np.ndarray  # (M, N) global place ids, -1 = unassigned
    n_places: int
    n_images: int = 0
    neuron_sum: np.ndarray = field(default=None)  # (M, N) int64
    pair_i: np.ndarray = field(default=None)      # (P,) int64
    pair_j: np.ndarray = field(default=None)      # (P,) int64
    pair_sum: np.ndarray = field(default=None)    # (P,) int64
    _cache: dict = field(default_factory=dict, repr=False)
    _buckets: list | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        a = np.asarray(self.assignments)
        if self.neuron_sum is None:
            self.neuron_sum = np.zeros(a.shape, np.int64)
        if self.pair_i is None:
            self.pair_i, self.pair_j = same_place_pairs(a)
            self.pair_sum = np.zeros(len(self.pair_i), np.int64)

    def add(self, counts: np.ndarray) -> None:
        """Add the spike counts (B, M, N) of B more reference images."""
        flat = np.asarray(counts).reshape(len(counts), -1)
        self.neuron_sum += flat.sum(axis=0, dtype=np.int64).reshape(self.neuron_sum.shape)
        if self._buckets is None:
            self._buckets = _gram_buckets(self.assignments)
        # Places with the same number of neurons are done together: one batched
        # Gram matrix X^T X per place, laid out as same_place_pairs orders the pairs.
        # float32 is exact here: counts <= 7 per presentation (50 ms refractory), so an entry is
        # at most 49 * R^2 * B with R presentations per query, far below 2^24.
        x = flat.astype(np.float32)
        for members, offsets in self._buckets:
            g = members.shape[1]
            block = x[:, members]                                   # (B, k, g)
            gram = np.matmul(block.transpose(1, 2, 0), block.transpose(1, 0, 2))  # (k, g, g)
            index = offsets[:, None] + np.arange(g * g)[None, :]
            self.pair_sum[index] += gram.reshape(len(members), g * g).astype(np.int64)
        self.n_images += len(counts)
        self._cache.clear()

    def place_stats(self, masked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std (n_places,) of each place's reference score, hyperactive ``masked`` (M, N) zeroed."""
        key = None if masked is None else np.packbits(masked).tobytes()
        if key in self._cache:
            return self._cache[key]
        if self.n_images < 1:
            raise ConfigError("no reference statistics were recorded")
        flat_a = self.assignments.reshape(-1)
        keep = flat_a >= 0
        if masked is not None:
            keep_unmasked = keep & ~masked.reshape(-1)
        else:
            keep_unmasked = keep
        a_p = np.bincount(flat_a[keep], minlength=self.n_places).astype(np.float64)
        s1 = np.bincount(flat_a[keep_unmasked], weights=self.neuron_sum.reshape(-1)[keep_unmasked],
                         minlength=self.n_places)
        both = keep_unmasked[self.pair_i] & keep_unmasked[self.pair_j]
        s2 = np.bincount(flat_a[self.pair_i[both]], weights=self.pair_sum[both].astype(np.float64),
                         minlength=self.n_places)
        denom = np.maximum(a_p, 1.0) * self.n_images
        mean = s1 / denom
        var = np.maximum(s2 / (denom * np.maximum(a_p, 1.0)) - mean * mean, 0.0)
        result = (mean, np.sqrt(var))
        self._cache[key] = result
        return result

    def merge(self, S: np.ndarray, masked: np.ndarray | None, regions: Sequence[np.ndarray],
              modules: tuple[int, ...]) -> np.ndarray:
        """:func:`zscore_merge` of ``S`` with this traverse's statistics, layouts cached per module set."""
        key = ("merge", None if masked is None else np.packbits(masked).tobytes())
        if key not in self._cache:
            mean, std = self.place_stats(masked)
            self._cache[key] = (mean, std_floor(std))
        layout_key = ("layout", modules)
        if layout_key not in self._cache:
            # Pre-selection runs another module set on almost every frame: keep a few layouts only.
            layouts = [k for k in self._cache if isinstance(k, tuple) and k[:1] == ("layout",)]
            for old in layouts[:max(0, len(layouts) - 15)]:
                del self._cache[old]
            self._cache[layout_key] = MergeLayout(regions)
        mean, std = self._cache[key]
        return zscore_merge(S, mean, std, self._cache[layout_key], floored=True)

    def leading_modules(self, m: int) -> "ReferenceStats":
        """The statistics of modules 0..m-1 alone (the calibration modules come first).

        Exact: a pair never crosses modules, so the pairs of those modules are the
        ones whose flat ids are below m * N.
        """
        keep = self.pair_i < m * self.assignments.shape[1]
        return ReferenceStats(assignments=self.assignments[:m], n_places=self.n_places, n_images=self.n_images,
                              neuron_sum=self.neuron_sum[:m], pair_i=self.pair_i[keep], pair_j=self.pair_j[keep],
                              pair_sum=self.pair_sum[keep])

    def arrays(self) -> dict[str, np.ndarray]:
        return {"neuron_sum": self.neuron_sum, "pair_i": self.pair_i, "pair_j": self.pair_j,
                "pair_sum": self.pair_sum, "n_images": np.array(self.n_images, np.int64)}

    @classmethod
    def from_arrays(cls, assignments: np.ndarray, n_places: int, arrays: dict) -> "ReferenceStats":
        stats = cls(assignments=assignments, n_places=n_places, n_images=int(arrays["n_images"]),
                    neuron_sum=arrays["neuron_sum"], pair_i=arrays["pair_i"], pair_j=arrays["pair_j"],
                    pair_sum=arrays["pair_sum"])
        n_flat = assignments.size
        if stats.neuron_sum.shape != assignments.shape or len(stats.pair_i) != len(stats.pair_sum) \
                or len(stats.pair_j) != len(stats.pair_sum) or (len(stats.pair_i) and (
                    stats.pair_i.min() < 0 or stats.pair_j.min() < 0
                    or max(stats.pair_i.max(), stats.pair_j.max()) >= n_flat)):
            raise ConfigError("reference statistics do not match the network")
        return stats


def _place_groups(assignments: np.ndarray) -> list[np.ndarray]:
    """Flat ids of the neurons of each place that has some, places in increasing order."""
    flat = np.asarray(assignments).reshape(-1)
    ids = np.flatnonzero(flat >= 0)
    order = ids[np.argsort(flat[ids], kind="stable")]
    places = flat[order]
    starts = np.flatnonzero(np.r_[True, places[1:] != places[:-1]]) if len(order) else np.zeros(0, int)
    return np.split(order, starts[1:])


def same_place_pairs(assignments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat ids (i, j) of every ordered pair of neurons assigned to the same place (i == j included).

    Place by place (increasing), and within a place row-major over its neurons
    (i slow, j fast): the layout of each place's Gram matrix.
    """
    groups = [g for g in _place_groups(assignments) if len(g)]
    if not groups:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pi = np.concatenate([np.repeat(g, len(g)) for g in groups]).astype(np.int64)
    pj = np.concatenate([np.tile(g, len(g)) for g in groups]).astype(np.int64)
    return pi, pj


def _gram_buckets(assignments: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Places grouped by neuron count g: (members (k, g), offsets (k,) of their pairs)."""
    groups = [g for g in _place_groups(assignments) if len(g)]
    sizes = np.array([len(g) for g in groups], np.int64)
    offsets = np.r_[0, np.cumsum(sizes * sizes)[:-1]] if len(groups) else np.zeros(0, np.int64)
    buckets = []
    for g in np.unique(sizes):
        which = np.flatnonzero(sizes == g)
        buckets.append((np.stack([groups[k] for k in which]), offsets[which]))
    return buckets


class MergeLayout:
    """Which columns form each module's places, for :func:`zscore_merge` (built once per split)."""

    def __init__(self, regions: Sequence[np.ndarray]) -> None:
        self.lengths = np.array([len(r) for r in regions], np.int64)
        self.perm = np.concatenate(regions).astype(np.int64)
        self.starts = np.r_[0, np.cumsum(self.lengths)[:-1]]


def std_floor(std: np.ndarray) -> np.ndarray:
    """``std`` raised to a tenth of its median positive value.

    A place whose score never varied on the reference would otherwise turn any
    spike into an enormous z.
    """
    positive = std[std > 0]
    floor = 0.1 * float(np.median(positive)) if positive.size else 1.0
    return np.maximum(std, floor)


def zscore_merge(S: np.ndarray, mean: np.ndarray, std: np.ndarray,
                 regions: Sequence[np.ndarray] | MergeLayout, floored: bool = False) -> np.ndarray:
    """Per-place then per-module z-scores of ``S`` (Q, n_places); places of no region get -inf.

    ``std`` is floored by :func:`std_floor` unless ``floored`` says it already
    is. A module whose z1 is flat gives its places 0.
    """
    S = np.asarray(S, dtype=np.float64)
    layout = regions if isinstance(regions, MergeLayout) else MergeLayout(regions)
    z1 = (S - mean) / (std if floored else std_floor(std))
    block = z1[:, layout.perm]
    lengths = layout.lengths
    mu = np.repeat(np.add.reduceat(block, layout.starts, axis=1) / lengths, lengths, axis=1)
    dev = block - mu
    sd = np.sqrt(np.repeat(np.add.reduceat(dev * dev, layout.starts, axis=1) / lengths, lengths, axis=1))
    out = np.full(S.shape, -np.inf)
    out[:, layout.perm] = np.where(sd > 0, dev / np.where(sd > 0, sd, 1.0), 0.0)
    return out
