"""When the localizer publishes ``/initialpose`` for nav2: the plain logic of
:mod:`vprsnn_ros.nodes.relocalize`, without a ROS graph (the node over DDS:
``test_localizer_nav.py``)."""

from __future__ import annotations

import pytest

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.nodes.localizer_params import PARAMETERS, RELOCALIZE_SETTINGS, relocalize_settings
from vprsnn_ros.nodes.relocalize import AUTO, OFF, ON_REQUEST, Relocalizer, RelocalizeSettings, check_mode, pose_problem


def feed(reloc: Relocalizer, frames, start: float = 0.0, step: float = 0.1) -> list[int]:
    """Indices of the frames ((place, confidence) pairs) that publish, frames ``step`` s apart."""
    return [k for k, (place, conf) in enumerate(frames) if reloc.update(place, conf, start + k * step)]


def test_auto_publishes_once_the_last_frames_agree_then_waits_for_the_period():
    reloc = Relocalizer(RelocalizeSettings(AUTO, min_confidence=0.5, frames=3, tolerance=1, period=10.0))
    frames = [(7, 0.9), (8, 0.9), (7, 0.9), (8, 0.9), (7, 0.9)]
    assert feed(reloc, frames) == [2]  # the third agreeing frame; then the period holds the others back
    assert reloc.published == 1
    assert feed(reloc, frames, start=20.0) == [0]  # after the period: at once (the run continues)


def test_auto_with_a_zero_period_publishes_on_every_agreeing_frame():
    reloc = Relocalizer(RelocalizeSettings(AUTO, frames=2, tolerance=0, period=0.0))
    assert feed(reloc, [(3, 0.1)] * 4) == [1, 2, 3]


def test_frames_that_do_not_agree_publish_nothing():
    reloc = Relocalizer(RelocalizeSettings(AUTO, frames=3, tolerance=2, period=0.0))
    # Neighbours two apart are within tolerance, but the three frames span 4 > 2 places.
    assert feed(reloc, [(0, 0.9), (2, 0.9), (4, 0.9), (6, 0.9), (8, 0.9)]) == []
    assert feed(reloc, [(0, 0.9), (9, 0.9), (1, 0.9), (8, 0.9)]) == []


def test_a_frame_below_the_confidence_or_without_a_place_breaks_the_run():
    settings = RelocalizeSettings(AUTO, min_confidence=0.5, frames=3, tolerance=0, period=0.0)
    reloc = Relocalizer(settings)
    assert feed(reloc, [(5, 0.9), (5, 0.9), (5, 0.49), (5, 0.9), (5, 0.9)]) == []
    assert feed(reloc, [(5, 0.9)]) == [0]  # three in a row at last
    reloc = Relocalizer(settings)
    assert feed(reloc, [(5, 0.9), (5, 0.9), (-1, 0.0), (5, 0.9), (5, 0.9)]) == []
    below = Relocalizer(RelocalizeSettings(AUTO, min_confidence=1.0, frames=1, tolerance=0, period=0.0))
    assert feed(below, [(5, 0.999)] * 5) == []


def test_on_request_publishes_once_per_call_and_never_unasked():
    reloc = Relocalizer(RelocalizeSettings(ON_REQUEST, frames=2, tolerance=1, period=100.0))
    agreeing = [(4, 0.9)] * 4
    assert feed(reloc, agreeing) == []
    assert reloc.arm()[0] is True and reloc.armed
    assert feed(reloc, agreeing) == [0]  # the frames before the call count towards agreement
    assert not reloc.armed
    assert feed(reloc, agreeing) == []
    # A call while frames disagree waits for the next agreeing match; the period does not apply.
    reloc.arm()
    assert feed(reloc, [(0, 0.9), (9, 0.9), (0, 0.9), (9, 0.9), (9, 0.9), (9, 0.9)], start=400.0) == [4]
    assert reloc.published == 2


def test_a_call_in_auto_mode_is_not_held_back_by_the_period():
    reloc = Relocalizer(RelocalizeSettings(AUTO, frames=1, tolerance=0, period=1000.0))
    assert feed(reloc, [(2, 0.5)] * 3) == [0]
    reloc.arm()
    assert feed(reloc, [(2, 0.5)] * 3, start=1.0) == [0]


def test_off_never_publishes_and_the_service_does_not_arm():
    reloc = Relocalizer()
    assert reloc.settings.mode == OFF
    armed, message = reloc.arm()
    assert armed is False and "off" in message
    assert feed(reloc, [(1, 1.0)] * 10) == []
    reloc.configure(RelocalizeSettings(ON_REQUEST, frames=1))
    assert reloc.arm()[0] is True
    reloc.configure(RelocalizeSettings(OFF))  # turning it off drops the request
    assert not reloc.armed


def test_reset_forgets_the_recent_frames_but_keeps_a_request():
    reloc = Relocalizer(RelocalizeSettings(ON_REQUEST, frames=2, tolerance=0))
    reloc.update(3, 1.0, 0.0)
    reloc.arm()
    reloc.reset()
    assert reloc.update(3, 1.0, 0.1) is False and reloc.update(3, 1.0, 0.2) is True


def test_status_for_diagnostics():
    reloc = Relocalizer(RelocalizeSettings(AUTO, frames=1, period=0.0))
    reloc.update(1, 1.0, 0.0)
    assert reloc.status() == {"relocalize": "auto", "relocalize_armed": False, "relocalizations": 1}


@pytest.mark.parametrize("mode", [OFF, AUTO, ON_REQUEST])
def test_modes(mode):
    assert check_mode(mode) == mode


def test_a_bare_off_read_as_false_by_yaml_is_off_and_other_values_are_errors():
    assert check_mode(False) == OFF
    assert RelocalizeSettings(False).mode == OFF
    for bad in (True, "Auto", "", "always", 1):
        with pytest.raises(ConfigError, match="off, auto, on_request"):
            check_mode(bad)
    with pytest.raises(ConfigError, match="relocalize_frames"):
        RelocalizeSettings(AUTO, frames=0)
    with pytest.raises(ConfigError, match="relocalize_tolerance"):
        RelocalizeSettings(AUTO, tolerance=-1)


def test_a_model_without_poses_cannot_relocalize():
    assert pose_problem(OFF, False, "m") is None
    assert pose_problem(AUTO, True, "m") is None
    problem = pose_problem(ON_REQUEST, False, "models/x")
    assert "models/x" in problem and "no place poses" in problem and "off" in problem
    assert "\n" not in problem


def test_the_parameter_table_gives_the_settings():
    defaults = {p.name: p.default for p in PARAMETERS}
    assert set(RELOCALIZE_SETTINGS) <= set(defaults)
    settings = relocalize_settings(defaults)
    assert settings == RelocalizeSettings(OFF, min_confidence=0.0, frames=5, tolerance=2, period=10.0)
    assert relocalize_settings({**defaults, "relocalize": "auto", "relocalize_frames": 3}).frames == 3
    with pytest.raises(ConfigError):
        relocalize_settings({**defaults, "relocalize": "sometimes"})
