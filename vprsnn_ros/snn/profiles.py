"""Accuracy profiles: named bundles of switches that depart from the published method.

``faithful`` is the Modular SNN as published (spec): every switch off. A model
trained with it is bit-identical to one trained before profiles existed.
``tuned`` bundles the deviations; each switch is a documented field whose
default is the faithful behaviour, so a switch can also be measured alone
(``bench/ablation.py``).

The profile is recorded in ``model.yaml`` (key ``profile``: name and every
switch) and copied into each ``report.json``. A model without the key was
trained before profiles existed and is ``faithful``.

Switches
--------
``readout``
    'mean' (faithful): a place's score is the mean spike count of its neurons,
    all modules compared as they are. 'zscore': per-place then per-module
    z-scores, so one module cannot outvote the others (issue 7, item 3d;
    :mod:`vprsnn_ros.snn.readout`).
``auto_threshold``
    False (faithful): with no calibration query, the hyperactivity threshold T
    is 0 (no masking). True: T is chosen without any query image, by how well
    the network recognises a second, differently seeded presentation of the
    reference traverse itself (issue 7, item 3c;
    :func:`vprsnn_ros.train.training.choose_threshold_without_queries`). A
    calibration query, when given, still decides.

``preselect``
    False (faithful): every module processes every query (spec section 5).
    True: with a calibration query, training also chooses K, the number of
    modules the SNN runs per query after template pre-selection
    (:mod:`vprsnn_ros.snn.preselect`; issue 8): the cheapest K whose calibration
    R@1 is within 0.005 of every module's. K is stored as ``preselect_k``;
    ``vprsnn evaluate --preselect`` and the node's ``preselect_k`` override it
    for any model.

Input-coding switches (issue 7, hypothesis 3a). They are copied into the
network's configuration when it is trained (:meth:`Profile.configure`), so
every path that runs the network (node, evaluation, cluster tasks, extension)
applies them from ``model.yaml`` alone.

``spike_trains``
    'poisson' (faithful). 'regular_query': queries, and the reference
    recordings (hyperactivity, z-score statistics), get regular spike trains
    (:func:`vprsnn_ros.snn.kernels.scalar.regular_emissions`); 'regular': training too.
``query_rate_gain``
    1.0 (faithful). Input rates of queries multiplied by this gain: more input
    spikes, so less Poisson noise in the counts, at the same cost.
``query_presentations``
    1 (faithful). Each query presented this many times from rest, on
    independent streams, and the counts summed: a cost of that many queries.

Training switches of issue 16, item 4 (the gap between the SNN and SAD once the
true place's module is given). Copied into the configuration like the coding
switches, so that extension trains new modules the same way.

``imprint``
    0.0 (faithful): random initial weights. f > 0: a module's neuron j starts
    from the image of its place ``j mod K`` (u / 255 scaled to the weight
    normalisation total), mixed with the random init as f : 1 - f, then STDP
    (:func:`vprsnn_ros.snn.network.imprinted_weights`).
``jitter``
    0 (faithful). J > 0: every training presentation shows its image shifted
    by a random (dy, dx) in [-J, J]^2 pixels, a new shift each presentation
    (:func:`vprsnn_ros.snn.module_training.jittered`).
``inhibition_start``
    1.0 (faithful): constant w_ie. s < 1: w_ie grows linearly from s * w_ie in
    the first epoch to w_ie in the last; queries run with w_ie.
``soft_bound``
    0.0 (faithful): additive STDP clipped to [0, w_max]. b > 0: each update is
    multiplied by 1 - b * w / w_max (weight-dependent, soft-bound STDP).
``patch``
    None (faithful): the configuration's patch-normalisation window (``--patch``,
    7 as published). An odd integer: that window.
``query_inhibition``
    1.0 (faithful). Queries, and the reference recordings (hyperactivity,
    z-score statistics), run with the inhibitory weight w_ie multiplied by this
    factor; training is unchanged. With the trained inhibition only about 18 of
    a module's 400 neurons answer a query, and which ones fire first decides;
    weaker inhibition lets the counts grade how well each template matches.
``threshold_at_k``
    False (faithful: T is chosen with every module competing, as published). True,
    with ``preselect`` and a calibration query: T and K are chosen together, T at
    the K modules pre-selection will run
    (:func:`vprsnn_ros.train.calibration.choose_threshold_at_k`). Without a
    calibration query it changes nothing.
``shuffle``
    None (faithful): the configuration's region layout (``--shuffle``; contiguous
    by default, as in the ICRA paper). True / False: shuffled / contiguous.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Optional

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.snn.readout import check_readout

# Input spike trains: the published Poisson, regular for queries only, regular throughout.
SPIKE_TRAINS = ("poisson", "regular_query", "regular")


@dataclass(frozen=True)
class Profile:
    """One named set of switches; every default is the faithful behaviour."""

    name: str = "faithful"
    readout: str = "mean"
    auto_threshold: bool = False
    preselect: bool = False
    spike_trains: str = "poisson"
    query_rate_gain: float = 1.0
    query_presentations: int = 1
    imprint: float = 0.0
    jitter: int = 0
    inhibition_start: float = 1.0
    soft_bound: float = 0.0
    query_inhibition: float = 1.0
    threshold_at_k: bool = False
    patch: Optional[int] = None
    shuffle: Optional[bool] = None

    def validate(self) -> "Profile":
        check_readout(self.readout)
        for switch in ("auto_threshold", "preselect", "threshold_at_k"):
            if not isinstance(getattr(self, switch), bool):
                raise ConfigError(f"{switch} must be true or false")
        if self.spike_trains not in SPIKE_TRAINS:
            raise ConfigError("spike_trains must be 'poisson', 'regular_query' or 'regular'")
        if not (isinstance(self.query_rate_gain, (int, float)) and self.query_rate_gain > 0):
            raise ConfigError("query_rate_gain must be a number > 0")
        if not (isinstance(self.query_presentations, int) and self.query_presentations >= 1):
            raise ConfigError("query_presentations must be an integer >= 1")
        if not (_number(self.imprint) and 0.0 <= self.imprint <= 1.0):
            raise ConfigError("imprint must be a number in [0, 1]")
        if not (_integer(self.jitter) and self.jitter >= 0):
            raise ConfigError("jitter must be an integer >= 0")
        if not (_number(self.inhibition_start) and 0.0 < self.inhibition_start):
            raise ConfigError("inhibition_start must be a number > 0")
        if not (_number(self.soft_bound) and 0.0 <= self.soft_bound <= 1.0):
            raise ConfigError("soft_bound must be a number in [0, 1]")
        if not (_number(self.query_inhibition) and self.query_inhibition >= 0.0):
            raise ConfigError("query_inhibition must be a number >= 0")
        if self.patch is not None and not (_integer(self.patch) and self.patch >= 1 and self.patch % 2 == 1):
            raise ConfigError("patch must be null or an odd integer >= 1")
        if self.shuffle is not None and not isinstance(self.shuffle, bool):
            raise ConfigError("shuffle must be null, true or false")
        return self

    def configure(self, config):
        """``config`` (a NetworkConfig) with this profile's input-coding switches."""
        changes = {}
        if self.patch is not None:
            changes["patch"] = self.patch
        if self.shuffle is not None:
            changes["shuffle"] = self.shuffle
        params = replace(config.params, w_ie_start_fraction=float(self.inhibition_start),
                         soft_bound=float(self.soft_bound))
        return config.with_(spike_trains=self.spike_trains, query_rate_gain=float(self.query_rate_gain),
                            query_presentations=self.query_presentations, imprint=float(self.imprint),
                            jitter=self.jitter, query_inhibition=float(self.query_inhibition),
                            params=params, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Profile":
        """From ``model.yaml``; None (a model older than profiles) is faithful."""
        if d is None:
            return FAITHFUL
        if not isinstance(d, dict):
            raise ConfigError(f"profile must be a mapping, not {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown profile switches: {sorted(unknown)}")
        return cls(**d).validate()

    def with_(self, **changes) -> "Profile":
        return replace(self, **changes).validate()


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _integer(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


FAITHFUL = Profile()
# tuned's input coding. Regular trains: the best mean calibration R@1 over seeds 0 and 1
# of bench/hypotheses.py with query gain 2 (Nordland 300 places, calibration = the first
# 100, T chosen on the reference: 0.235 vs 0.145 for the published coding). The gain was
# then decided on the 3,300-place protocol's 600 calibration queries, 6x as many
# (bench/protocol_switches.py, K = 1): gain 1 0.292, gain 2 0.263; so it stays 1.
# query_inhibition (issue 16, item 4g): the within-module switch that won on calibration on
# both protocols (docs/results/2026-12-07-within-module.md). 300 places (calibration = the
# first 100, contiguous regions, zscore, every module): R@1 0.220 (T chosen on the reference)
# / 0.270 (T on calibration) at 0.25 against 0.190 / 0.200 at 1, R@1 given the true module
# 0.430 / 0.340 against 0.320 / 0.320; 3,300-place protocol (600 calibration queries, K = 2,
# T on calibration): 0.235 at 0.25 against 0.205 at 1 (given the true module 0.457 / 0.355).
# 0.1 was measured too: 300 places 0.260 / 0.260, 3,300 places 0.215 (below 0.25's 0.235),
# so 0.25 stays.
# threshold_at_k (issue 16): on the 3,300-place protocol's 600 calibration queries, T chosen
# with every module (20) and then K (2) gave 0.212; T and K together give T = 0, K = 1,
# 0.247 (docs/results/2026-12-07-within-module.md).
# inhibition_start (issue 16, item 4c): training starts with w_ie at 0.25 of its value and
# grows it linearly to its value by the last epoch. 300 places (calibration = the first 100,
# every module, T on calibration): 0.240 / 0.250 on seeds 0 / 1 against 0.200 / 0.210; the
# 3,300-place protocol (600 calibration queries, query_inhibition 0.25, T and K together:
# T = 0, K = 1): 0.275 against 0.247 (R@1 given the true module 0.448), sequences of 10 0.626
# against 0.530 (bench/accuracy/protocol_variant.py + protocol_switches.py).
TUNED = Profile(name="tuned", readout="zscore", auto_threshold=True, preselect=True,
                spike_trains="regular", query_inhibition=0.25, threshold_at_k=True,
                inhibition_start=0.25)
PROFILES = {p.name: p for p in (FAITHFUL, TUNED)}
# The default of `vprsnn train`: the profile that wins on calibration data (never
# the test queries). bench/ablation.py, Nordland 300 places, calibration split = the
# first 100: tuned R@1 0.160 / 0.120 vs faithful 0.160 / 0.030 (contiguous /
# shuffled regions), with sequences of 10 0.703 / 0.582 vs 0.670 / 0.319. The
# library function train_network stays faithful unless given a profile.
DEFAULT_PROFILE = "tuned"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
