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
    :mod:`vprsnn_ros.readout`).
``auto_threshold``
    False (faithful): with no calibration query, the hyperactivity threshold T
    is 0 (no masking). True: T is chosen without any query image, by how well
    the network recognises a second, differently seeded presentation of the
    reference traverse itself (issue 7, item 3c;
    :func:`vprsnn_ros.training.choose_threshold_without_queries`). A
    calibration query, when given, still decides.

``preselect``
    False (faithful): every module processes every query (spec section 5).
    True: with a calibration query, training also chooses K, the number of
    modules the SNN runs per query after template pre-selection
    (:mod:`vprsnn_ros.preselect`; issue 8): the cheapest K whose calibration
    R@1 is within 0.005 of every module's. K is stored as ``preselect_k``;
    ``vprsnn evaluate --preselect`` and the node's ``preselect_k`` override it
    for any model.

Kernel switches (regular spike trains, ...) are added here the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from .errors import ConfigError
from .readout import check_readout


@dataclass(frozen=True)
class Profile:
    """One named set of switches; every default is the faithful behaviour."""

    name: str = "faithful"
    readout: str = "mean"
    auto_threshold: bool = False
    preselect: bool = False

    def validate(self) -> "Profile":
        check_readout(self.readout)
        for switch in ("auto_threshold", "preselect"):
            if not isinstance(getattr(self, switch), bool):
                raise ConfigError(f"{switch} must be true or false")
        return self

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


FAITHFUL = Profile()
TUNED = Profile(name="tuned", readout="zscore", auto_threshold=True, preselect=True)
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
