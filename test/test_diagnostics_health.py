"""Health in ``/diagnostics``: the plain rules of :mod:`vprsnn_ros.nodes.diagnostics` (input rate,
latency against the input period, input timeout), without a ROS graph. The node's ERROR over DDS:
``test_localizer_nav.py``."""

from __future__ import annotations

from collections import deque

import pytest

from vprsnn_ros.localizer import Localizer
from vprsnn_ros.nodes.diagnostics import (
    ERROR,
    MIN_RATE_SPAN,
    OK,
    WARN,
    FrameStats,
    HealthLimits,
    health,
    localizer_status,
    recent_rate,
)


def stream(rate_hz: float, start: float, end: float, active_since: float | None = 0.0,
           latency_s: float = 0.001) -> FrameStats:
    """Frames arriving at ``rate_hz`` from ``start`` to ``end`` (monotonic seconds), all processed."""
    stats = FrameStats(active_since=active_since)
    n = int(round((end - start) * rate_hz))
    for k in range(n):
        stats.arrivals.append(start + k / rate_hz)
    stats.received = stats.processed = n
    stats.latencies.extend([latency_s] * n)
    return stats


def test_recent_rate_counts_the_last_seconds_since_the_activation():
    arrivals = deque((k / 10 for k in range(100)), maxlen=200)  # 10 Hz for 10 s
    # A frame more or less in the window: the rate is exact to 1 / window.
    assert recent_rate(arrivals, now=10.0, since=0.0) == pytest.approx(10.0, abs=0.2)
    assert recent_rate(arrivals, now=20.0, since=0.0) == 0.0  # stopped 10 s ago
    assert recent_rate(arrivals, now=9.0 + MIN_RATE_SPAN / 2, since=9.0) is None  # just activated
    assert recent_rate(arrivals, now=10.0, since=8.0) == pytest.approx(10.0, abs=0.5)
    # A deque too short for the window (a fast stream): the rate over what it holds.
    fast = deque((k / 1000 for k in range(5000)), maxlen=200)
    assert recent_rate(fast, now=5.0, since=0.0) == pytest.approx(1000.0, rel=0.01)


def test_a_steady_stream_is_healthy():
    stats = stream(30.0, 0.0, 20.0)
    snap = stats.snapshot(now=20.0)
    assert snap["active"] is True and snap["input_rate_recent_hz"] == pytest.approx(30.0, rel=0.02)
    assert snap["seconds_since_frame"] == pytest.approx(1 / 30, abs=1e-3)
    assert health(snap, HealthLimits(min_input_rate=25.0, input_timeout=1.0)) == []


def test_warn_below_min_input_rate():
    snap = stream(5.0, 0.0, 20.0).snapshot(now=20.0)
    problems = health(snap, HealthLimits(min_input_rate=10.0))
    assert [level for level, _ in problems] == [WARN]
    assert problems[0][1].startswith("input rate ") and "Hz < min_input_rate 10 Hz" in problems[0][1]
    assert snap["input_rate_recent_hz"] == pytest.approx(5.0, abs=0.2)
    assert health(snap, HealthLimits(min_input_rate=0.0)) == []  # 0: off


def test_warn_when_p99_latency_exceeds_the_input_period():
    snap = stream(20.0, 0.0, 10.0, latency_s=0.080).snapshot(now=10.0)  # 80 ms > 50 ms
    problems = health(snap, HealthLimits())
    assert [level for level, _ in problems] == [WARN]
    assert problems[0][1].startswith("p99 latency 80 ms > input period ")
    assert problems[0][1].endswith("(frames are dropped)")
    assert health(stream(10.0, 0.0, 10.0, latency_s=0.080).snapshot(now=10.0), HealthLimits()) == []


def test_error_when_no_frame_arrived_for_input_timeout_while_active():
    stats = stream(30.0, 0.0, 10.0)
    problems = health(stats.snapshot(now=13.0), HealthLimits(input_timeout=2.0))
    assert [level for level, _ in problems] == [ERROR]
    assert problems[0][1].startswith("no frame for 3.0 s (input_timeout 2 s)")
    assert health(stats.snapshot(now=13.0), HealthLimits(input_timeout=0.0)) == []  # 0: off
    # Counted from the activation when it is later than the last frame (a re-activation)...
    stats.active_since = 12.0
    assert health(stats.snapshot(now=13.0), HealthLimits(input_timeout=2.0)) == []
    # ... or when no frame ever came.
    assert [lv for lv, _ in health(FrameStats(active_since=0.0).snapshot(now=5.0), HealthLimits(input_timeout=2.0))
            ] == [ERROR]


def test_no_health_rule_while_inactive():
    stats = stream(1.0, 0.0, 10.0, active_since=None, latency_s=5.0)
    snap = stats.snapshot(now=100.0)
    assert snap["active"] is False and snap["seconds_since_frame"] is None
    assert health(snap, HealthLimits(min_input_rate=30.0, input_timeout=1.0)) == []


def test_status_level_is_the_worst_and_the_message_lists_every_problem(model16):
    loc = Localizer(model16)
    stats = stream(5.0, 0.0, 10.0, latency_s=0.5)
    stats.rejected, stats.received = 1, stats.received + 1
    level, message, values = localizer_status("m", loc, stats.snapshot(now=30.0),
                                              HealthLimits(min_input_rate=10.0, input_timeout=5.0))
    assert level == ERROR
    assert message.startswith(f"{stats.processed} frames processed, 1 rejected, 0 failed; no frame for")
    assert "min_input_rate" in message and "p99 latency" in message
    assert values["active"] is True and values["seconds_since_frame"] == pytest.approx(20.2, abs=0.01)
    assert values["input_rate_recent_hz"] == 0.0
    # Without limits (and inactive): the old behaviour, "n/a" for what does not apply.
    level, message, values = localizer_status("m", loc, FrameStats(received=2, processed=2).snapshot())
    assert (level, message) == (OK, "2 frames processed")
    assert values["seconds_since_frame"] == "n/a" and values["input_rate_recent_hz"] == "n/a"
