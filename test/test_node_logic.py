"""The localizer node's plain logic, without a ROS graph: parameters, the estimate's pose, diagnostics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml

from vprsnn_ros.localizer import Localizer
from vprsnn_ros.nodes.diagnostics import OK, WARN, FrameStats, localizer_status
from vprsnn_ros.nodes.estimate import place_pose, place_sigma
from vprsnn_ros.nodes.localizer_params import LOCALIZER_SETTINGS, PARAMETERS, localizer_settings

ROOT = Path(__file__).resolve().parents[1]


def test_config_localize_yaml_names_every_parameter_with_its_default():
    params = yaml.safe_load((ROOT / "config" / "localize.yaml").read_text())["/**"]["ros__parameters"]
    table = {p.name: p.default for p in PARAMETERS}
    assert set(params) == set(table)
    assert params == table


def test_localizer_settings_convert_the_unset_values():
    values = {p.name: p.default for p in PARAMETERS if p.name in LOCALIZER_SETTINGS}
    assert localizer_settings(values) == {"sequence_length": 1, "top_k": 5, "hyperactive_threshold": None,
                                          "preselect_k": None, "readout": None, "sequence_matcher": "diagonal"}
    assert localizer_settings({"preselect_k": 0, "readout": "zscore", "hyperactive_threshold": 3}) == {
        "preselect_k": 0, "readout": "zscore", "hyperactive_threshold": 3}


def test_pose_without_place_poses_is_the_place_id_along_a_line():
    pose = place_pose(7, 0.25, None, None, "route", 0.5, 10.0)
    sigma = 0.5 + 0.75 * 9.5
    assert pose.frame_id == "route" and pose.position == (7.0, 0.0, 0.0) and pose.orientation == (0, 0, 0, 1)
    cov = np.reshape(pose.covariance, (6, 6))
    assert cov[0, 0] == sigma ** 2 and cov[1, 1] == cov[2, 2] == 1e-9
    assert cov[3, 3] == cov[4, 4] == cov[5, 5] == 1e6
    assert np.count_nonzero(cov) == 6


def test_pose_with_place_poses_scales_sigma_by_the_spacing_to_the_next_place():
    poses = np.array([[0, 0, 0, 0, 0, 0, 1], [3, 4, 0, 0, 0, 0.6, 0.8], [3, 4, 2, 0, 0, 0, 1]], float)
    pose = place_pose(1, 1.0, poses, "odom", "route", 0.5, 10.0)
    assert pose.frame_id == "odom" and pose.position == (3.0, 4.0, 0.0) and pose.orientation == (0, 0, 0.6, 0.8)
    cov = np.reshape(pose.covariance, (6, 6))
    assert cov[0, 0] == cov[1, 1] == (0.5 * 2.0) ** 2  # spacing 1 -> 2 is 2 m
    last = place_pose(2, 0.0, poses, None, "route", 0.5, 10.0)  # the last place looks back: 2 m again
    assert last.frame_id == "map" and np.reshape(last.covariance, (6, 6))[0, 0] == (10.0 * 2.0) ** 2
    assert place_sigma(2.0, 1.0, 3.0) == 1.0 and place_sigma(-1.0, 1.0, 3.0) == 3.0


def test_frame_stats_snapshot():
    stats = FrameStats(received=5, processed=3, dropped=1, rejected=1)
    stats.latencies.extend([0.001, 0.002, 0.003])
    stats.arrivals.extend([10.0, 10.5, 11.0])
    snap = stats.snapshot()
    assert snap["latency_mean_ms"] == 2.0 and snap["input_rate_hz"] == 2.0
    assert snap["latency_p99_ms"] == round(float(np.percentile([1.0, 2.0, 3.0], 99)), 3)
    assert FrameStats().snapshot()["input_rate_hz"] == 0.0


def test_status_warns_on_rejected_frames(model16):
    loc = Localizer(model16)
    frames = FrameStats(received=4, processed=4).snapshot()
    level, message, values = localizer_status("m", loc, frames)
    assert (level, message) == (OK, "4 frames processed")
    assert values["places"] == loc.n_places and values["modules"] == loc.members[0].n_modules
    assert values["modules_run_per_frame"] == loc.members[0].n_modules
    level, message, _ = localizer_status("m", loc, FrameStats(received=4, processed=3, rejected=1).snapshot())
    assert level == WARN and message == "3 frames processed, 1 rejected, 0 failed"
    assert not math.isnan(values["latency_mean_ms"])
