"""The localizer's frame bookkeeping and its ``/diagnostics`` status, as plain data (no ROS import).

The node's callbacks and inference thread update :class:`FrameStats` under its
lock; :meth:`FrameStats.snapshot` copies what a status needs, and
:func:`localizer_status` turns a snapshot into (level, message, key/values),
which the node wraps in a ``diagnostic_msgs/DiagnosticStatus``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

OK, WARN, ERROR = "OK", "WARN", "ERROR"


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

    def snapshot(self) -> dict:
        """Counters, latency and input rate now (take it under the node's lock)."""
        lat = np.array(self.latencies) * 1e3
        arrivals = list(self.arrivals)
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
        return {
            "frames_received": self.received, "frames_processed": self.processed,
            "frames_dropped": self.dropped, "frames_rejected": self.rejected, "frames_failed": self.failed,
            "latency_mean_ms": round(float(lat.mean()), 3) if lat.size else 0.0,
            "latency_p99_ms": round(float(np.percentile(lat, 99)), 3) if lat.size else 0.0,
            "input_rate_hz": round((len(arrivals) - 1) / span, 3) if span > 0 else 0.0,
        }


def localizer_status(model: str, localizer, frames: dict) -> tuple[str, str, dict]:
    """(level, message, values) of the localizer's status from a :meth:`FrameStats.snapshot`."""
    values = {
        "model": model,
        "places": localizer.n_places,
        "modules": sum(m.n_modules for m in localizer.members),
        "modules_run_per_frame": sum(localizer.preselect),
        "networks": len(localizer.members),
        "masked_neurons": sum(m.n_masked(localizer.threshold) for m in localizer.members),
        "frames_received": frames["frames_received"], "frames_processed": frames["frames_processed"],
        "frames_dropped": frames["frames_dropped"], "frames_rejected": frames["frames_rejected"],
        "frames_failed": frames["frames_failed"],
        "latency_mean_ms": frames["latency_mean_ms"], "latency_p99_ms": frames["latency_p99_ms"],
        "input_rate_hz": frames["input_rate_hz"],
        "sequence_length": localizer.sequence_length,
    }
    level, message = OK, f"{frames['frames_processed']} frames processed"
    if frames["frames_rejected"] or frames["frames_failed"]:
        level = WARN
        message += f", {frames['frames_rejected']} rejected, {frames['frames_failed']} failed"
    return level, message, values
