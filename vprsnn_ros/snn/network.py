"""The modular network: configuration, regions, neuron assignment and place scores.

Spec sections 4-6. One :class:`ModularSNN` holds every trained module of one
seed; an ensemble (section 7) is a list of them whose score matrices are summed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Sequence

import numpy as np

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.snn import engine as _engine
from vprsnn_ros.snn.coding import rates_hz as _rates_hz
from vprsnn_ros.snn.engine import REPEAT_STREAM  # noqa: F401 - part of this module's API
from vprsnn_ros.snn.layout import DelayLayout  # noqa: F401 - part of this module's API
from vprsnn_ros.snn.params import P_W_IE, NetworkParams, pack
from vprsnn_ros.snn.profiles import FAITHFUL, SPIKE_TRAINS, Profile
from vprsnn_ros.snn.readout import ReferenceStats, check_readout

# Hyperactivity thresholds swept by calibration (spec section 6; 0 = no removal).
DEFAULT_T_SWEEP = (0, 5, 10, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200)
NU_SCHEDULES = ("linear", "exponential", "step")
TRAVERSE_ORDERS = ("all", "cycle")


@dataclass(frozen=True)
class NetworkConfig:
    """Everything that determines a trained network besides its images."""

    n_neurons: int = 400
    places_per_module: int = 25
    epochs: int = 60
    dt: float = 0.5
    seed: int = 0
    shuffle: bool = False
    image_width: int = 28
    image_height: int = 28
    patch: int = 7
    assign_presentations: int = 250
    # Input coding (issue 7, hypothesis 3a; profile switches, profiles.py). 'poisson' is
    # the published method; 'regular_query' gives queries (and the reference recordings,
    # which are queries too) regular spike trains; 'regular' also trains on them.
    spike_trains: str = "poisson"
    # Queries only: input rates multiplied by this gain, and the spike counts of this many
    # presentations (each from rest, on its own random stream) summed.
    query_rate_gain: float = 1.0
    query_presentations: int = 1
    # Training schedule (issue 7, hypothesis 3b; not in the published method). How the
    # learning rates fall to params.nu_final_fraction of their value over the epochs
    # (NU_SCHEDULES); and which traverses an epoch presents: 'all' of them, in order
    # (published), or 'cycle': one per epoch, in turn (augmentation across epochs when
    # the traverses are photometric variants of one another).
    nu_schedule: str = "linear"
    traverse_order: str = "all"
    # Issue 16, item 4 (profile switches, profiles.py; not in the published method).
    # imprint: fraction of each module's initial weights taken from its places' images
    # (neuron j of a module of K places starts from place j mod K: u / 255, each column
    # scaled to params.weight_sum), the rest the random init scaled alike; 0.0 = random.
    # jitter: every training presentation shifts its image by a random (dy, dx) in
    # [-jitter, jitter]^2 pixels (edges repeated), new per presentation; 0 = as is.
    imprint: float = 0.0
    jitter: int = 0
    # Queries only (and the reference recordings, which are queries too): the I -> E weight
    # w_ie multiplied by this factor, so that more than the few first neurons answer a query
    # and the spike counts grade how well each template matches. 1.0 = as trained (published).
    query_inhibition: float = 1.0
    params: NetworkParams = field(default_factory=NetworkParams)

    @property
    def n_inputs(self) -> int:
        return self.image_width * self.image_height

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.image_width, self.image_height)

    def validate(self) -> "NetworkConfig":
        checks = [
            (self.n_neurons >= 1, "n_neurons must be >= 1"),
            (self.places_per_module >= 1, "places_per_module must be >= 1"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (0.0 < self.dt <= 1.0, "dt must be in (0, 1] ms"),
            (self.image_width >= 1 and self.image_height >= 1, "image size must be positive"),
            (self.patch >= 1 and self.patch % 2 == 1, "patch must be odd and >= 1"),
            (self.assign_presentations >= 1, "assign_presentations must be >= 1"),
            (self.seed >= 0, "seed must be >= 0"),
            (self.spike_trains in SPIKE_TRAINS, f"spike_trains must be one of {', '.join(SPIKE_TRAINS)}"),
            (self.query_rate_gain > 0, "query_rate_gain must be > 0"),
            (isinstance(self.query_presentations, int) and self.query_presentations >= 1,
             "query_presentations must be an integer >= 1"),
            (self.nu_schedule in NU_SCHEDULES, f"nu_schedule must be one of {', '.join(NU_SCHEDULES)}"),
            (self.traverse_order in TRAVERSE_ORDERS,
             f"traverse_order must be one of {', '.join(TRAVERSE_ORDERS)}"),
            (0.0 <= self.imprint <= 1.0, "imprint must be in [0, 1]"),
            (self.query_inhibition >= 0.0, "query_inhibition must be >= 0"),
            (isinstance(self.jitter, int) and 0 <= self.jitter < min(self.image_width, self.image_height),
             "jitter must be an integer >= 0, smaller than the image"),
            (0.0 < self.params.w_ie_start_fraction, "params.w_ie_start_fraction must be > 0"),
            (0.0 <= self.params.soft_bound <= 1.0, "params.soft_bound must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "params"}
        out["params"] = self.params.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkConfig":
        d = dict(d)
        params = NetworkParams.from_dict(d.pop("params", {}))
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown network options: {sorted(unknown)}")
        return cls(params=params, **d).validate()

    def with_(self, **changes) -> "NetworkConfig":
        return replace(self, **changes).validate()

    def packed(self, learning: bool) -> np.ndarray:
        """The kernels' parameter vector, with the input coding of training or of queries."""
        regular = self.spike_trains == "regular" or (self.spike_trains == "regular_query" and not learning)
        out = pack(self.params, self.dt, regular)
        if not learning and self.query_inhibition != 1.0:
            out[P_W_IE] = self.params.w_ie * self.query_inhibition
        return out

    def input_rates(self, pixels: np.ndarray) -> np.ndarray:
        """Input firing rates (float64 Hz) of preprocessed pixels: ``u * params.rate_scale``."""
        return _rates_hz(pixels, self.params.rate_scale).astype(np.float64)

    def query_rates(self, rates_hz: np.ndarray) -> np.ndarray:
        rates = np.ascontiguousarray(rates_hz, dtype=np.float64)
        return rates * self.query_rate_gain if self.query_rate_gain != 1.0 else rates


# --------------------------------------------------------------------------
# Random initial state, seeded per network and per module
# --------------------------------------------------------------------------

def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def make_delays(config: NetworkConfig) -> np.ndarray:
    """Synaptic delays (ms), uniform in [0, delay_max). Shared by all modules of a network."""
    rng = _rng(config.seed, 1)
    return (rng.random((config.n_inputs, config.n_neurons)) * config.params.delay_max).astype(np.float32)


def initial_weights(config: NetworkConfig, module: int) -> np.ndarray:
    """``(U[0,1) + 0.01) * 0.3``, seeded by (seed, module)."""
    rng = _rng(config.seed, 2, module)
    return ((rng.random((config.n_inputs, config.n_neurons)) + 0.01) * 0.3).astype(np.float32)


def imprinted_weights(config: NetworkConfig, module: int, pixels: np.ndarray) -> np.ndarray:
    """Initial weights (n_in, N) float32 of a module imprinted with its places' images.

    ``pixels`` (K, n_in) uint8: the module's places in region order. Neuron j is
    imprinted with place ``j mod K``: its column is ``u / 255`` scaled to sum to
    ``params.weight_sum`` (the total each column is normalised to before every
    presentation). With ``config.imprint`` f < 1 the column is ``f`` times that plus
    ``1 - f`` times :func:`initial_weights` scaled to the same total.
    """
    total = config.params.weight_sum
    images = np.asarray(pixels, np.float64)[np.arange(config.n_neurons) % len(pixels)].T / 255.0
    sums = images.sum(axis=0)
    images = np.where(sums > 0, images * total / np.where(sums > 0, sums, 1.0), total / config.n_inputs)
    f = float(config.imprint)
    if f < 1.0:
        random = initial_weights(config, module).astype(np.float64)
        images = f * images + (1.0 - f) * random * (total / random.sum(axis=0))
    return images.astype(np.float32)


def make_regions(n_places: int, per_module: int, shuffle: bool, seed: int,
                 calibration_places: int = 0) -> list[np.ndarray]:
    """Split place ids into non-overlapping regions of ``per_module`` places.

    The first ``calibration_places`` places form the calibration split and the
    rest the test split; regions never straddle the two. Within a split the
    regions are contiguous stretches of the route (ICRA) or, with ``shuffle``, a
    seeded random partition (journal version). A split whose size is not a
    multiple of ``per_module`` ends with a smaller region.
    """
    if not 0 <= calibration_places < n_places:
        raise ConfigError(f"calibration places must be in [0, {n_places}), got {calibration_places}")
    rng = _rng(seed, 3)
    regions: list[np.ndarray] = []
    for lo, hi in ((0, calibration_places), (calibration_places, n_places)):
        ids = np.arange(lo, hi)
        if shuffle:
            ids = rng.permutation(ids)
        regions += [np.sort(ids[k:k + per_module]) if shuffle else ids[k:k + per_module]
                    for k in range(0, len(ids), per_module)]
    return regions


# --------------------------------------------------------------------------
# Assignment and scores (spec section 4)
# --------------------------------------------------------------------------

def assign_neurons(counts: np.ndarray, presented: np.ndarray, places: np.ndarray) -> np.ndarray:
    """Assign each neuron to the place it fires most for.

    ``counts`` (K, N): spike counts of K recorded training presentations;
    ``presented`` (K,): the place id shown in each. ``rate[n, p]`` is the mean
    count of n over the presentations of p; ``a_n = argmax_p rate[n, p]`` (first
    maximum wins, places in the order of ``places``); a neuron that never fired
    is unassigned (-1). Returns global place ids (int32).
    """
    rate = np.zeros((counts.shape[1], len(places)))
    for column, place in enumerate(places):
        shown = presented == place
        if shown.any():
            rate[:, column] = counts[shown].mean(axis=0)
    assigned = np.asarray(places, dtype=np.int32)[np.argmax(rate, axis=1)]
    assigned[counts.sum(axis=0) == 0] = -1
    return assigned


def place_scores(counts: np.ndarray, assignments: np.ndarray, n_places: int,
                 masked: np.ndarray | None = None) -> np.ndarray:
    """Score of every place for every query.

    ``score_p(q) = sum_{n: a_n = p} x_n(q) / |{n: a_n = p}|`` over the neurons of
    all modules (``counts`` (Q, M, N), ``assignments`` (M, N) global ids). A
    masked (hyperactive) neuron contributes x = 0 but still counts in the
    denominator, as in the reference code. A place without neurons scores 0.
    """
    flat = assignments.reshape(-1)
    valid = flat >= 0
    places = flat[valid]
    x = counts.reshape(counts.shape[0], -1)[:, valid].astype(np.float64)
    if masked is not None:
        x *= ~masked.reshape(-1)[valid]
    n_assigned = np.bincount(places, minlength=n_places).astype(np.float64)
    # Spike counts are integers, so these sums are exact whatever the order.
    sums = np.stack([np.bincount(places, weights=row, minlength=n_places) for row in x]) \
        if len(x) else np.zeros((0, n_places))
    return np.where(n_assigned > 0, sums / np.maximum(n_assigned, 1.0), 0.0)


def hyperactive_mask(active_images: np.ndarray, threshold: int) -> np.ndarray:
    """Neurons that fired in at least ``threshold`` reference images (0 = none masked)."""
    if threshold <= 0:
        return np.zeros(active_images.shape, dtype=bool)
    return active_images >= threshold


# --------------------------------------------------------------------------
# The trained network
# --------------------------------------------------------------------------

@dataclass
class ModularSNN:
    """All trained modules of one seed, with what is needed to score queries.

    Arrays are stacked over modules: ``weights`` (M, n_in, N) float32, ``theta``
    (M, N), ``assignments`` (M, N) global place ids, ``active_images`` (M, N)
    (number of reference images each neuron fired in; -1 before recording).
    """

    config: NetworkConfig
    delays: np.ndarray
    n_places: int
    regions: list[np.ndarray]
    n_calibration_modules: int
    weights: np.ndarray
    theta: np.ndarray
    assignments: np.ndarray
    active_images: np.ndarray
    hyperactive_threshold: int = 0
    # Modules the SNN runs per query after template pre-selection (0 = all; see preselect.py).
    preselect_k: int = 0
    place_names: list[str] | None = None
    # Optional pose of each place from the training data: (n_places, 7) rows of
    # x, y, z, qx, qy, qz, qw in frame ``pose_frame``.
    place_poses: np.ndarray | None = None
    pose_frame: str | None = None
    # The profile it was trained with (profiles.py) and its readout ('mean' is the faithful one).
    profile: Profile = FAITHFUL
    readout: str = "mean"
    # Sums over the reference traverse for the 'zscore' readout (None: not recorded).
    reference_stats: ReferenceStats | None = None
    # Preprocessed reference images (n_places, n_inputs) uint8, for the SAD baseline.
    reference_pixels: np.ndarray | None = None

    @property
    def n_modules(self) -> int:
        return self.weights.shape[0]

    @property
    def layout(self) -> DelayLayout:
        """The delays laid out for the kernels (built on each call; scorers keep their own)."""
        return DelayLayout.build(self.delays, self.config.dt, self.config.params.delay_max)

    def module_split(self, split: str) -> np.ndarray:
        """Indices of the 'calibration', 'test' or 'all' modules."""
        ids = np.arange(self.n_modules)
        if split == "calibration":
            return ids[: self.n_calibration_modules]
        if split == "test":
            return ids[self.n_calibration_modules:]
        if split == "all":
            return ids
        raise ConfigError(f"unknown split {split!r}")

    def split_places(self, split: str) -> np.ndarray:
        mods = self.module_split(split)
        if len(mods) == 0:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.concatenate([self.regions[m] for m in mods]))

    def spike_counts(self, rates_hz: np.ndarray, query_ids: Sequence[int] | np.ndarray,
                     modules: np.ndarray | None = None, seed: int | None = None,
                     engine: str = "lanes") -> np.ndarray:
        """Frozen spike counts (Q, K, N) of the chosen modules, each query from rest.

        ``modules``: None (all), (K,) module ids for every query, or (Q, K) ids
        per query (pre-selection). ``engine``: 'lanes' (fast: modules in groups
        of 8 on one shared input train per query, :mod:`vprsnn_ros.snn.engine`) or
        'scalar' (each module on its own input train, as separate Brian2 runs
        of the reference code would; ~10x slower; no per-query modules).
        Each call lays the weights out anew: to score many queries, use a
        :class:`~vprsnn_ros.snn.inference.Scorer`, which keeps them.
        """
        rates = np.ascontiguousarray(rates_hz, dtype=np.float64)
        if rates.ndim == 1:
            rates = rates[None]
        ids = np.asarray(query_ids, dtype=np.int64)
        seed = self.config.seed if seed is None else seed
        if engine == "scalar":
            return _engine.scalar_spike_counts(self, rates, ids, modules, seed)
        if engine != "lanes":
            raise ConfigError(f"unknown inference engine {engine!r}")
        return _engine.spike_counts([self], rates, ids, [modules], seeds=[seed])[0]

    def scores(self, counts: np.ndarray, modules: np.ndarray | None = None,
               threshold: int | None = None, readout: str | None = None) -> np.ndarray:
        """Place scores (Q, n_places) from spike counts of ``modules`` (all by default).

        ``modules`` (K,) for every query or (Q, K) per query (pre-selection).
        ``readout`` (default: the network's) 'mean' gives the faithful scores,
        places of modules that were not run scoring 0; 'zscore' merges the
        modules by z-scores (readout.py), places of other modules then score
        -inf.
        """
        mods = np.arange(self.n_modules) if modules is None else np.asarray(modules)
        t = self.hyperactive_threshold if threshold is None else threshold
        if t > 0 and np.any(self.active_images[np.unique(mods)] < 0):
            raise ConfigError("hyperactivity was not recorded for this network")
        if mods.ndim == 2:
            return np.concatenate([self.scores(counts[q:q + 1], mods[q], t, readout)
                                   for q in range(len(mods))]) if len(mods) else \
                np.zeros((0, self.n_places))
        masked = hyperactive_mask(self.active_images[mods], t) if t > 0 else None
        S = place_scores(counts, self.assignments[mods], self.n_places, masked)
        if check_readout(self.readout if readout is None else readout) == "mean":
            return S
        if self.reference_stats is None:
            raise ConfigError("the zscore readout needs reference statistics, which this model "
                              "lacks (retrain it with this version)")
        full_mask = hyperactive_mask(self.active_images, t) if t > 0 else None
        Z = self.reference_stats.merge(S, full_mask, [self.regions[m] for m in mods],
                                       tuple(int(m) for m in mods))
        if len(mods) < self.n_modules:
            # Places of modules that did not run (pre-selection) score the query's lowest
            # score, as they do (0 spikes) with the mean readout: finite, so that sequence
            # sums and ensemble sums still rank the places that did run.
            low = np.min(np.where(np.isfinite(Z), Z, np.inf), axis=1, keepdims=True)
            Z = np.where(np.isfinite(Z), Z, np.where(np.isfinite(low), low, -np.inf))
        return Z

    def n_masked(self, threshold: int | None = None) -> int:
        t = self.hyperactive_threshold if threshold is None else threshold
        return int(hyperactive_mask(self.active_images, t).sum()) if t > 0 else 0
