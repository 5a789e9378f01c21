"""Every option of a training run, with its one default: the table behind `vprsnn train`,
the trainer node's parameters and ``config/train.yaml``.

Network defaults come from :class:`~vprsnn_ros.snn.network.NetworkConfig`
itself, the profile's from :data:`~vprsnn_ros.snn.profiles.DEFAULT_PROFILE`;
nothing else writes them down. Field names are the CLI's argument names
(``--places-per-module`` is ``places_per_module``) and the node's parameter
names. ROS parameters cannot be None, so an option that may be unset has a
``node_none`` value (``""``, 0 or 0.0) that stands for it on the node.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.snn.profiles import DEFAULT_PROFILE

_NET = NetworkConfig()


def _opt(default: Any, help: str, *, group: str, node_none: Any = None, node_default: Any = MISSING,
         flag: str | None = None) -> Any:
    return field(default=default, metadata={"help": help, "group": group, "node_none": node_none,
                                            "node_default": node_default, "flag": flag})


@dataclass
class TrainOptions:
    """One training run: sources, places, network, calibration, ensemble, where it runs."""

    reference: list[str] = field(default_factory=list, metadata={
        "help": "reference traverses: image folders or bags, place i = i-th place of each",
        "group": "sources", "node_none": None, "node_default": MISSING, "flag": None})
    out: str = _opt("", "model directory to write (resumed when partial with resume)", group="sources")
    # Places (vprsnn_ros.io.sources.load_traverse).
    list: str | None = _opt(None, "CSV of file names (column 'filename') giving the places in order",
                            group="places", node_none="")
    exclude: str | None = _opt(None, "CSV of files to drop (column 'filename'; with flag columns, rows with "
                               "any flag set)", group="places", node_none="")
    every: int = _opt(1, "keep every K-th place (after exclude)", group="places")
    limit: int | None = _opt(None, "keep the first N places (after every)", group="places", node_none=0)
    topic: str | None = _opt(None, "bags: the image topic (default: the bag's only image topic)",
                             group="places", node_none="")
    every_seconds: float | None = _opt(None, "bags: one place every T seconds", group="places", node_none=0.0)
    every_metres: float | None = _opt(None, "bags with an Odometry or NavSatFix topic: one place every D metres "
                                      "(places keep their pose)", group="places", node_none=0.0)
    pose_topic: str | None = _opt(None, "bags: the Odometry or NavSatFix topic (default: the only one)",
                                  group="places", node_none="")
    poses: str | None = _opt(None, "image folders: CSV of the places' poses, one row per image: columns filename,x,y "
                             "and optionally z, and yaw (radians) or qx,qy,qz,qw (the first reference's; "
                             "docs/guides/poses.md)", group="places", node_none="")
    pose_frame: str = _opt("map", "the frame of --poses", group="places")
    strict: bool = _opt(False, "images of different sizes are an error, not a warning", group="places")
    # The network (defaults: NetworkConfig's).
    places_per_module: int = _opt(_NET.places_per_module, "places learned by each module", group="network")
    neurons: int = _opt(_NET.n_neurons, "excitatory neurons per module", group="network")
    epochs: int = _opt(_NET.epochs, "training epochs", group="network")
    seed: int = _opt(_NET.seed, "random seed (an ensemble uses seed, seed+1, ...)", group="network")
    shuffle: bool = _opt(_NET.shuffle, "seeded random regions instead of contiguous ones", group="network")
    dt: float = _opt(_NET.dt, "simulation step in ms", group="network")
    width: int = _opt(_NET.image_width, "network input width in pixels", group="network")
    height: int = _opt(_NET.image_height, "network input height in pixels", group="network")
    patch: int = _opt(_NET.patch, "patch-normalisation window (odd)", group="network")
    profile: str = _opt(DEFAULT_PROFILE, "faithful: the published method; tuned: z-score readout, T and K "
                        "chosen without queries (docs/guides/profiles.md)", group="network")
    # Calibration and ensemble.
    calibration_places: int = _opt(0, "the first N places form the calibration split", group="calibration")
    calibration_query: str | None = _opt(None, "query traverse whose first N places calibrate T (and the "
                                         "epochs, and K)", group="calibration", node_none="")
    epoch_checkpoints: str = _opt("", "epoch counts to compare during calibration, comma-separated (the final "
                                  "epochs count is always one)", group="calibration")
    ensemble: int = _opt(1, "train K seeds (seed, seed+1, ...); their scores are summed",
                         group="calibration")
    # Where it runs.
    workers: int = _opt(2, "modules trained in parallel in this process", group="run")
    resume: bool = _opt(False, "continue an interrupted training in out", group="run", node_default=True)
    cluster: str | None = _opt(None, "run on Dask: local[:N], tcp://HOST:PORT or a scheduler file "
                               "(needs vprsnn_ros[cluster])", group="run", node_none="")
    cluster_timeout: float = _opt(10.0, "seconds to wait for the Dask scheduler to answer", group="run")

    def network_config(self) -> NetworkConfig:
        """The network these options train (validated)."""
        return NetworkConfig(n_neurons=self.neurons, places_per_module=self.places_per_module,
                             epochs=self.epochs, dt=self.dt, seed=self.seed, shuffle=self.shuffle,
                             image_width=self.width, image_height=self.height, patch=self.patch).validate()

    def checkpoints(self) -> list[int]:
        """``epoch_checkpoints`` as a list of epoch counts."""
        try:
            out = [int(e) for e in (self.epoch_checkpoints or "").split(",") if e.strip()]
        except ValueError:
            raise ConfigError(f"--epoch-checkpoints must be comma-separated epoch counts, "
                              f"not {self.epoch_checkpoints!r}") from None
        if any(e < 1 or e > self.epochs for e in out):
            raise ConfigError(f"--epoch-checkpoints must lie in [1, --epochs {self.epochs}]")
        return out


def option_fields() -> list:
    """The dataclass fields of :class:`TrainOptions`, in order."""
    return list(fields(TrainOptions))


def node_default(f) -> Any:
    """The trainer node's default of option ``f`` (a ROS parameter value: never None)."""
    if f.metadata.get("node_default", MISSING) is not MISSING:
        return f.metadata["node_default"]
    if f.default_factory is not MISSING:  # reference: a string array
        return [""]
    return f.metadata["node_none"] if f.default is None else f.default


def from_node_values(values: dict[str, Any]) -> TrainOptions:
    """Options from the trainer node's parameter values (``node_none`` values mean None)."""
    kwargs = {}
    for f in option_fields():
        value = values[f.name]
        if f.name == "reference":
            value = [r for r in value if r]
        elif f.default is None and value == f.metadata["node_none"]:
            value = None
        kwargs[f.name] = value
    return TrainOptions(**kwargs)


_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "list[str]": list}


def option_type(f) -> type:
    """The value type of option ``f`` (int, float, bool, str or list), None allowed or not."""
    return _TYPES[str(f.type).replace(" | None", "")]


def option(name: str):
    """The field of option ``name``."""
    return next(f for f in option_fields() if f.name == name)
