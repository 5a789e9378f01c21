"""When the localizer re-initialises nav2's pose (``/initialpose``): plain logic, no ROS import.

nav2's AMCL takes a ``geometry_msgs/PoseWithCovarianceStamped`` on ``/initialpose``.
The localizer publishes one, the matched place's pose with the covariance of
``~/estimate``, when a match is trustworthy:

* the best places of the last ``frames`` processed frames agree: they all lie
  within ``tolerance`` places of each other (max - min <= tolerance), and
* every one of those frames has a place (not -1) and a confidence of at least
  ``min_confidence`` (0: agreement alone decides).

Modes (parameter ``relocalize``):

* ``off``: never; ``~/relocalize`` answers that it did not arm.
* ``auto``: on every trustworthy match, at most once every ``period`` seconds.
* ``on_request``: only after a ``~/relocalize`` call, which arms exactly one
  publication: the next trustworthy match (the frames before the call count
  towards the agreement). Each call gives at most one publication.

In ``auto`` mode a ``~/relocalize`` call arms one publication too, which is not
held back by ``period`` (an operator asked for it).

:class:`Relocalizer` is fed every processed frame by the node's inference thread
and armed by the service callback; a lock makes that safe.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from vprsnn_ros.errors import ConfigError

OFF, AUTO, ON_REQUEST = "off", "auto", "on_request"
MODES = (OFF, AUTO, ON_REQUEST)


def check_mode(mode) -> str:
    """The relocalize mode ``mode`` names, else a :class:`ConfigError` naming the choices.

    ``False`` is ``off``: YAML, and so a ROS parameter file or ``-p relocalize:=off``, reads a
    bare ``off`` as a boolean (the node declares the parameter with dynamic typing for this).
    """
    if mode is False:
        return OFF
    if not isinstance(mode, str) or mode not in MODES:
        raise ConfigError(f"relocalize must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def pose_problem(mode: str, has_poses: bool, model: str) -> str | None:
    """Why ``mode`` cannot run with this model (None: it can): relocalization needs place poses."""
    if mode == OFF or has_poses:
        return None
    return (f"relocalize is {mode!r} but the model {model} has no place poses (train it with poses: "
            f"--poses CSV, or a bag's Odometry/NavSatFix topic), or set relocalize to off")


@dataclass(frozen=True)
class RelocalizeSettings:
    """The ``relocalize*`` parameters."""

    mode: str = OFF  # or False, read as off (check_mode)
    min_confidence: float = 0.0
    frames: int = 5
    tolerance: int = 2
    period: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", check_mode(self.mode))
        if self.frames < 1:
            raise ConfigError(f"relocalize_frames must be >= 1, not {self.frames}")
        if self.tolerance < 0:
            raise ConfigError(f"relocalize_tolerance must be >= 0, not {self.tolerance}")
        if self.period < 0:
            raise ConfigError(f"relocalize_period must be >= 0, not {self.period}")


class Relocalizer:
    """Decides, frame by frame, whether to publish the matched place's pose on ``/initialpose``."""

    def __init__(self, settings: RelocalizeSettings | None = None) -> None:
        self._lock = threading.Lock()
        self._settings = settings or RelocalizeSettings()
        self._recent: deque[int] = deque(maxlen=self._settings.frames)
        self._armed = False
        self._last_published: float | None = None
        self.published = 0

    @property
    def settings(self) -> RelocalizeSettings:
        return self._settings

    @property
    def armed(self) -> bool:
        with self._lock:
            return self._armed

    def configure(self, settings: RelocalizeSettings) -> None:
        """New settings (run-time parameter change); the recent frames are kept, trimmed to ``frames``."""
        with self._lock:
            self._settings = settings
            self._recent = deque(self._recent, maxlen=settings.frames)
            if settings.mode == OFF:
                self._armed = False

    def reset(self) -> None:
        """Forget the recent frames (a new stream, or a new model); an armed request stays armed."""
        with self._lock:
            self._recent.clear()

    def status(self) -> dict:
        """Key/values for ``/diagnostics``."""
        with self._lock:
            return {"relocalize": self._settings.mode, "relocalize_armed": self._armed,
                    "relocalizations": self.published}

    def arm(self) -> tuple[bool, str]:
        """The ``~/relocalize`` service: arm one publication. Returns (armed, message)."""
        with self._lock:
            s = self._settings
            if s.mode == OFF:
                return False, "not armed: relocalize is off (set relocalize to on_request or auto)"
            self._armed = True
            return True, (f"armed: the next match agreeing over {s.frames} frames within {s.tolerance} "
                          f"places, confidence >= {s.min_confidence:g}, goes to /initialpose")

    def update(self, place_id: int, confidence: float, now: float) -> bool:
        """Feed one processed frame (``now``: monotonic seconds). True: publish this frame's pose."""
        with self._lock:
            s = self._settings
            if s.mode == OFF:
                return False
            if place_id < 0 or confidence < s.min_confidence:
                self._recent.clear()  # the run of trustworthy frames is broken
                return False
            self._recent.append(int(place_id))
            if len(self._recent) < s.frames or max(self._recent) - min(self._recent) > s.tolerance:
                return False
            if self._armed:
                self._armed = False
            elif s.mode != AUTO or (self._last_published is not None
                                    and now - self._last_published < s.period):
                return False
            self._last_published = now
            self.published += 1
            return True
