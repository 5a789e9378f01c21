"""Launches that fail loudly (issue 10): a failing trainer, evaluator or localizer stops the
launch at once with a line naming the process and why.

Needs ``launch`` and ``launch_ros`` and the package installed the ROS way (colcon, so that
the executables are found under lib/vprsnn_ros); skipped elsewhere. Each launch runs in a
subprocess through ``launch.LaunchService``, as ``ros2 launch`` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("launch.launch_service", reason="launch is not installed (PyPI has no ROS 2 launch); "
                                     "this test runs on a full ROS 2 install")
pytest.importorskip("launch_ros", reason="launch_ros is not installed")
ament_index = pytest.importorskip("ament_index_python.packages", reason="ament_index_python is not installed")
try:
    SHARE = Path(ament_index.get_package_share_directory("vprsnn_ros"))
except ament_index.PackageNotFoundError:
    pytest.skip("vprsnn_ros is not installed the ROS way (colcon build; source install/setup.bash)",
                allow_module_level=True)

from vprsnn_ros.io.bags import write_bag_from_folder  # noqa: E402
from vprsnn_ros.io.synthetic import write_route  # noqa: E402

DOMAIN = int(os.environ.get("VPRSNN_TEST_DOMAIN_BASE", "40")) + 13
RUN_LAUNCH = """
import sys
from launch import LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
service = LaunchService()
service.include_launch_description(IncludeLaunchDescription(
    PythonLaunchDescriptionSource(sys.argv[1]), launch_arguments=[a.split(":=", 1) for a in sys.argv[2:]]))
sys.exit(service.run())
"""


def launch(name: str, *arguments: str, cwd: Path) -> str:
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    # Generous: the point is that it ends by itself (the nodes fail in seconds), not how fast.
    proc = subprocess.run([sys.executable, "-c", RUN_LAUNCH, str(SHARE / "launch" / name), *arguments],
                          cwd=str(cwd), env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    print(out)
    return out


def test_train_launch_with_a_missing_reference_stops_and_names_the_trainer(tmp_path):
    params = tmp_path / "train.yaml"
    params.write_text("/**:\n  ros__parameters:\n    reference: [missing_route.mcap]\n    out: model\n")
    out = launch("train.launch.py", f"params_file:={params}", cwd=tmp_path)
    failed = [line for line in out.splitlines() if "[vprsnn] trainer" in line and "failed" in line]
    assert failed, out
    assert "exit code 2" in failed[0] and "missing_route.mcap" in failed[0], failed[0]


def test_evaluate_launch_with_a_missing_model_stops_and_says_why(tmp_path):
    _, query = write_route(tmp_path / "route", 3, seed=0)
    bag = write_bag_from_folder(query, tmp_path / "bag", rate_hz=10.0)
    out = launch("evaluate.launch.py", f"model:={tmp_path / 'no_model'}", f"bag:={bag}",
                 f"report_dir:={tmp_path / 'report'}", cwd=tmp_path)
    failed = [line for line in out.splitlines() if "[vprsnn]" in line and "failed" in line]
    assert failed, out
    assert "no model at" in failed[0] and "exit code 2" in failed[0], failed[0]
    assert "shutting the launch down" in failed[0]
    # The player stopped by the shutdown exits cleanly.
    assert "process has died" not in "\n".join(line for line in out.splitlines() if "bag_player" in line), out


def test_localize_launch_with_a_missing_model_stops_and_says_why(tmp_path):
    out = launch("localize.launch.py", f"model:={tmp_path / 'no_model'}", cwd=tmp_path)
    failed = [line for line in out.splitlines() if "[vprsnn] localizer" in line and "failed" in line]
    assert failed, out
    assert "configure failed" in failed[0] and "no_model" in failed[0], failed[0]
