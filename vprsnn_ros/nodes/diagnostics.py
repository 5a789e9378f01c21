"""The localizer's frame bookkeeping and its ``/diagnostics`` status, as plain data (no ROS import).

The node's callbacks and inference thread update :class:`FrameStats` under its
lock; :meth:`FrameStats.snapshot` copies what a status needs, and
:func:`localizer_status` turns a snapshot into (level, message, key/values),
which the node wraps in a ``diagnostic_msgs/DiagnosticStatus``.

Health rules (while the node is active):

* WARN when frames were rejected or failed;
* WARN when the input rate over the last ``RATE_WINDOW`` seconds is below
  ``min_input_rate`` (0: off);
* WARN when the p99 latency exceeds the period of the input (frames are dropped);
* ERROR when no frame has arrived for ``input_timeout`` seconds (0: off), counted
  from the last frame or from the activation, whichever is later.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

OK, WARN, ERROR = "OK", "WARN", "ERROR"
_RANK = {OK: 0, WARN: 1, ERROR: 2}
RATE_WINDOW = 5.0     # seconds of arrivals the recent input rate is measured over
MIN_RATE_SPAN = 1.0   # no recent rate (and no rate warning) until active this long


def recent_rate(arrivals: deque, now: float, since: float | None, window: float = RATE_WINDOW) -> float | None:
    """Frames per second that arrived in the last ``window`` seconds (only those since ``since``,
    the activation); None while that span is shorter than ``MIN_RATE_SPAN``. When ``arrivals``
    (a bounded deque) does not reach back over the span, the rate over what it holds."""
    start = now - window if since is None else max(now - window, since)
    span = now - start
    if span < MIN_RATE_SPAN:
        return None
    times = [t for t in arrivals if start <= t <= now]
    if arrivals.maxlen is not None and len(times) == len(arrivals) == arrivals.maxlen and len(times) > 1:
        return (len(times) - 1) / max(now - times[0], 1e-9)
    return len(times) / span


@dataclass(frozen=True)
class HealthLimits:
    """The health parameters: ``min_input_rate`` (Hz) and ``input_timeout`` (s); 0 turns a rule off."""

    min_input_rate: float = 0.0
    input_timeout: float = 0.0


@dataclass
class FrameStats:
    """Frame counters and latencies, shared by the callbacks and the inference thread."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    rejected: int = 0
    failed: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=1000))  # seconds
    arrivals: deque = field(default_factory=lambda: deque(maxlen=200))    # monotonic seconds
    active_since: float | None = None  # monotonic seconds of the activation; None while not active

    def snapshot(self, now: float | None = None) -> dict:
        """Counters, latency and input rate at ``now`` (monotonic seconds; default: the clock).
        Take it under the node's lock."""
        now = time.monotonic() if now is None else now
        lat = np.array(self.latencies) * 1e3
        arrivals = list(self.arrivals)
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
        active = self.active_since is not None
        since_frame = None
        if active:
            last = max(arrivals[-1], self.active_since) if arrivals else self.active_since
            since_frame = round(max(now - last, 0.0), 3)
        rate = recent_rate(self.arrivals, now, self.active_since) if active else None
        return {
            "frames_received": self.received, "frames_processed": self.processed,
            "frames_dropped": self.dropped, "frames_rejected": self.rejected, "frames_failed": self.failed,
            "latency_mean_ms": round(float(lat.mean()), 3) if lat.size else 0.0,
            "latency_p99_ms": round(float(np.percentile(lat, 99)), 3) if lat.size else 0.0,
            "input_rate_hz": round((len(arrivals) - 1) / span, 3) if span > 0 else 0.0,
            "active": active,
            "seconds_since_frame": since_frame,
            "input_rate_recent_hz": None if rate is None else round(rate, 3),
        }


def health(frames: dict, limits: HealthLimits) -> list[tuple[str, str]]:
    """(level, problem) of each health rule a :meth:`FrameStats.snapshot` breaks (module docstring)."""
    if not frames.get("active"):
        return []
    problems = []
    since = frames.get("seconds_since_frame")
    if limits.input_timeout > 0 and since is not None and since > limits.input_timeout:
        problems.append((ERROR, f"no frame for {since:.1f} s (input_timeout {limits.input_timeout:g} s)"))
    rate = frames.get("input_rate_recent_hz")
    if limits.min_input_rate > 0 and rate is not None and rate < limits.min_input_rate:
        problems.append((WARN, f"input rate {rate:.1f} Hz < min_input_rate {limits.min_input_rate:g} Hz"))
    period_rate = rate if rate else frames["input_rate_hz"]
    p99 = frames["latency_p99_ms"]
    if period_rate and period_rate > 0 and p99 > 1e3 / period_rate:
        problems.append((WARN, f"p99 latency {p99:.0f} ms > input period {1e3 / period_rate:.0f} ms "
                               f"(frames are dropped)"))
    return problems


def localizer_status(model: str, localizer, frames: dict,
                     limits: HealthLimits | None = None) -> tuple[str, str, dict]:
    """(level, message, values) of the localizer's status from a :meth:`FrameStats.snapshot`
    and the health ``limits`` (default: rules with a limit off)."""
    values = {
        "model": model,
        "places": localizer.n_places,
        "modules": sum(m.n_modules for m in localizer.members),
        # What the last frame ran (with tracking, the template's K plus the sequence's modules).
        "modules_run_per_frame": (localizer.tracker.modules_run[-1] if localizer.tracker.modules_run
                                  else sum(localizer.preselect)),
        "networks": len(localizer.members),
        "masked_neurons": sum(m.n_masked(localizer.threshold) for m in localizer.members),
        "frames_received": frames["frames_received"], "frames_processed": frames["frames_processed"],
        "frames_dropped": frames["frames_dropped"], "frames_rejected": frames["frames_rejected"],
        "frames_failed": frames["frames_failed"],
        "latency_mean_ms": frames["latency_mean_ms"], "latency_p99_ms": frames["latency_p99_ms"],
        "input_rate_hz": frames["input_rate_hz"],
        "sequence_length": localizer.sequence_length,
        "active": frames.get("active", False),
        "seconds_since_frame": _or_na(frames.get("seconds_since_frame")),
        "input_rate_recent_hz": _or_na(frames.get("input_rate_recent_hz")),
    }
    level, message = OK, f"{frames['frames_processed']} frames processed"
    if frames["frames_rejected"] or frames["frames_failed"]:
        level = WARN
        message += f", {frames['frames_rejected']} rejected, {frames['frames_failed']} failed"
    for problem_level, problem in health(frames, limits or HealthLimits()):
        level = max(level, problem_level, key=_RANK.get)
        message += f"; {problem}"
    return level, message, values


def _or_na(value):
    return "n/a" if value is None else value
