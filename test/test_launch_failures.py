"""Launches that fail loudly (issue 10, issue 17): a failing trainer, evaluator or localizer
stops the launch at once with one ERROR line naming the process and the reason, and
the launch exits non-zero.

Needs ROS 2's ``launch`` and ``launch_ros`` (a full ROS 2 install); skipped with the
reason elsewhere. Each launch runs in a subprocess through ``launch.LaunchService``,
as ``ros2 launch`` does, with the package found through a temporary ament prefix
whose executables run this checkout (conftest.ament_prefix): no colcon build needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vprsnn_ros.io.bags import write_bag_from_folder
from vprsnn_ros.io.synthetic import write_route

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.requires("launch", "launch_ros", "ament_index_python")]

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


def launch(name: str, *arguments: str, cwd: Path, prefix: Path, domain_env: dict) -> subprocess.CompletedProcess:
    env = dict(domain_env, AMENT_PREFIX_PATH=os.pathsep.join(
        p for p in (str(prefix), os.environ.get("AMENT_PREFIX_PATH", "")) if p))
    # Generous: the point is that it ends by itself (the nodes fail in seconds), not how fast.
    proc = subprocess.run([sys.executable, "-c", RUN_LAUNCH, str(prefix / "share" / "vprsnn_ros" / "launch" / name),
                           *arguments], cwd=str(cwd), env=env, capture_output=True, text=True, timeout=120)
    print(proc.stdout + proc.stderr)
    return proc


def failure_line(proc: subprocess.CompletedProcess, process: str) -> str:
    """The one ERROR line of the vprsnn logger, naming ``process``; the launch exited 1."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"a failed launch exited {proc.returncode}:\n{out}"
    lines = [line for line in out.splitlines() if "[vprsnn]" in line]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("[ERROR] [vprsnn]: ") and f"{process}-1 failed, exit code 2" in line, line
    assert line.endswith("; shutting the launch down"), line
    # Just the reason: not the node's own log line with its prefixes.
    reason = line.split("(bad parameters or input): ", 1)[1]
    assert "[ERROR]" not in reason and f"[{process}-1]" not in reason and ": error:" not in reason, line
    return reason


def test_train_launch_with_a_missing_reference_stops_and_names_the_trainer(tmp_path, ament_prefix, ros_domains):
    params = tmp_path / "train.yaml"
    params.write_text("/**:\n  ros__parameters:\n    reference: [missing_route.mcap]\n    out: model\n")
    proc = launch("train.launch.py", f"params_file:={params}", cwd=tmp_path, prefix=ament_prefix,
                  domain_env=ros_domains.env(ros_domains.new()))
    reason = failure_line(proc, "trainer")
    assert "missing_route.mcap" in reason, reason
    assert not (tmp_path / "model").exists()


def test_evaluate_launch_with_a_missing_model_stops_and_says_why(tmp_path, ament_prefix, ros_domains):
    _, query = write_route(tmp_path / "route", 3, seed=0)
    bag = write_bag_from_folder(query, tmp_path / "bag", rate_hz=10.0)
    proc = launch("evaluate.launch.py", f"model:={tmp_path / 'no_model'}", f"bag:={bag}",
                  f"report_dir:={tmp_path / 'report'}", cwd=tmp_path, prefix=ament_prefix,
                  domain_env=ros_domains.env(ros_domains.new()))
    out = proc.stdout + proc.stderr
    lines = [line for line in out.splitlines() if line.startswith("[ERROR] [vprsnn]: ")]
    # The localizer or the evaluator sees the missing model first; either names it.
    assert len(lines) == 1 and "no model at" in lines[0], out
    process = "localizer" if "localizer-1 failed" in lines[0] else "evaluator"
    failure_line(proc, process)
    # The player stopped by the shutdown exits cleanly.
    assert "process has died" not in "\n".join(line for line in out.splitlines() if "bag_player" in line), out
    assert not (tmp_path / "report").exists()


def test_localize_launch_with_a_missing_model_stops_and_says_why(tmp_path, ament_prefix, ros_domains):
    proc = launch("localize.launch.py", f"model:={tmp_path / 'no_model'}", cwd=tmp_path, prefix=ament_prefix,
                  domain_env=ros_domains.env(ros_domains.new()))
    reason = failure_line(proc, "localizer")
    assert "configure failed" in reason and "no_model" in reason, reason


def test_a_clean_job_ends_the_launch_with_status_0(tmp_path, ament_prefix, ros_domains):
    """also_on_success: the trainer finishing ends train.launch.py, and that is a success."""
    ref, _ = write_route(tmp_path / "route", 4, seed=0)
    params = tmp_path / "train.yaml"
    params.write_text(f"/**:\n  ros__parameters:\n    reference: ['{ref}']\n    out: model\n    neurons: 10\n"
                      f"    places_per_module: 2\n    epochs: 1\n    workers: 1\n")
    proc = launch("train.launch.py", f"params_file:={params}", cwd=tmp_path, prefix=ament_prefix,
                  domain_env=ros_domains.env(ros_domains.new()))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[vprsnn]" not in proc.stdout + proc.stderr
    assert (tmp_path / "model" / "model.yaml").is_file()
