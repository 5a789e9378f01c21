"""Every parameter of the localizer node, as a plain table (no ROS import): name, default,
range, what it does. The node declares them from here (:func:`vprsnn_ros.nodes.ros_params.declare`);
``config/localize.yaml`` and the docs list the same names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from vprsnn_ros.nodes.relocalize import RelocalizeSettings


@dataclass(frozen=True)
class Param:
    """One node parameter; ``lo``/``hi`` give an integer or float range, ``read_only`` fixes it at start."""

    name: str
    default: Any
    description: str
    lo: float | None = None
    hi: float | None = None
    read_only: bool = False


PARAMETERS = (
    Param("model_path", "models/demo",
          "model directory (or ensemble); read at configure, changing it takes effect on ~/reload"),
    Param("autostart", True, "configure and activate at start-up (false: wait for ~/change_state)",
          read_only=True),
    Param("sequence_length", 1, "online sequence matching over the last N frames", 1, 100),
    Param("top_k", 5, "places kept in the estimate (logged at debug level)", 1, 1000),
    Param("hyperactive_threshold", -1,
          "override of the calibrated hyperactivity threshold T (-1: the model's, 0: no masking)", -1, 100000),
    Param("preselect_k", -1, "modules the SNN runs per frame, picked by template pre-selection (-1: the "
          "model's calibrated K, 0: every module)", -1, 100000),
    Param("readout", "", "place readout: '' = the model's profile, 'mean' (faithful) or 'zscore'"),
    Param("sequence_matcher", "diagonal", "sequence matching when sequence_length > 1: 'diagonal' (spec) or "
          "'seqslam'"),
    Param("min_confidence", 0.0, "below it ~/place_id publishes -1", 0.0, 1.0),
    Param("reliable", False, "reliable QoS for the image topics (replay) instead of sensor data QoS",
          read_only=True),
    Param("use_compressed", False, "also subscribe to image/compressed", read_only=True),
    Param("frame_id", "route", "frame of ~/estimate when the model has no place poses"),
    Param("sigma_min_places", 0.5, "estimate std at confidence 1 (places)", 0.0, 1e6),
    Param("sigma_max_places", 10.0, "estimate std at confidence 0 (places)", 0.0, 1e6),
    Param("publish_scores", False, "also publish ~/scores: every place's score as a 1 x N 32FC1 Image with the "
          "frame's stamp (for replay evaluation)", read_only=True),
    Param("publish_debug_image", False, "publish ~/debug_image for every frame even without subscribers (it is "
          "always published while someone subscribes)"),
    Param("diagnostics_period", 1.0, "seconds between /diagnostics messages", read_only=True),
    Param("threads", 0, "at most this many threads for the SNN kernels (0 = every core); a frame with few "
          "modules runs on one thread anyway (vprsnn_ros.snn.threads)", 0, 1024),
    Param("min_input_rate", 0.0, "/diagnostics WARN when the input rate (last 5 s) falls below it, in Hz "
          "(0: off)", 0.0, 1e6),
    Param("input_timeout", 5.0, "/diagnostics ERROR when no frame has arrived for this many seconds while "
          "active (0: off)", 0.0, 1e6),
    Param("relocalize", "off", "publish the matched place's pose on initialpose for nav2's AMCL: off, auto "
          "(confident agreeing matches, at most every relocalize_period s) or on_request (one per "
          "~/relocalize call); needs a model with place poses"),
    Param("relocalize_min_confidence", 0.0, "relocalize only on frames with at least this confidence "
          "(0: agreement alone decides)", 0.0, 1.0),
    Param("relocalize_frames", 5, "consecutive processed frames whose best places must agree", 1, 1000),
    Param("relocalize_tolerance", 2, "agreeing places lie within this many places of each other", 0, 1000000),
    Param("relocalize_period", 10.0, "minimum seconds between automatic relocalizations", 0.0, 1e6),
)

# Parameters of the relocalization (vprsnn_ros.nodes.relocalize.RelocalizeSettings): name -> field.
RELOCALIZE_SETTINGS = {"relocalize": "mode", "relocalize_min_confidence": "min_confidence",
                       "relocalize_frames": "frames", "relocalize_tolerance": "tolerance",
                       "relocalize_period": "period"}

# Parameters that are settings of the Localizer: parameter name -> (keyword, conversion).
# Changing one at run time rebuilds the Localizer around the loaded networks.
LOCALIZER_SETTINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "sequence_length": ("sequence_length", int),
    "top_k": ("top_k", int),
    "hyperactive_threshold": ("hyperactive_threshold", lambda v: None if v < 0 else int(v)),
    "preselect_k": ("preselect_k", lambda v: None if v < 0 else int(v)),
    "readout": ("readout", lambda v: str(v) or None),
    "sequence_matcher": ("sequence_matcher", str),
}


def relocalize_settings(values: dict[str, Any]) -> RelocalizeSettings:
    """The relocalization settings from parameter values (all five); ConfigError when invalid."""
    return RelocalizeSettings(**{field: values[name] for name, field in RELOCALIZE_SETTINGS.items()})


def localizer_settings(values: dict[str, Any]) -> dict[str, Any]:
    """:class:`~vprsnn_ros.localizer.Localizer` keyword arguments from parameter values."""
    return {LOCALIZER_SETTINGS[name][0]: LOCALIZER_SETTINGS[name][1](value)
            for name, value in values.items() if name in LOCALIZER_SETTINGS}
