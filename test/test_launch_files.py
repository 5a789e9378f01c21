"""Every launch file imports and builds its launch description, as ``ros2 launch`` loads it.

Needs ROS 2's ``launch`` and ``launch_ros`` (a full ROS 2 install; PyPI has neither):
skipped with the reason elsewhere, CI included. The package is found through a
temporary ament prefix (conftest.ament_prefix), so no colcon build is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted(p.name for p in (REPO / "launch").glob("*.launch.py"))

NEEDS_LAUNCH = pytest.mark.requires("launch", "launch_ros", "ament_index_python")

# The processes each file starts, and whether a clean exit of each ends the launch.
PROCESSES = {
    "localize.launch.py": {"localizer": False},
    "train.launch.py": {"trainer": True},
    "evaluate.launch.py": {"localizer": False, "evaluator": True, "bag_player": False},
}


def test_every_launch_file_is_listed():
    assert sorted(PROCESSES) == LAUNCH_FILES


def _description(name, ament_prefix, monkeypatch):
    """The file's LaunchDescription, loaded as ``ros2 launch`` loads it."""
    import launch
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join(
        p for p in (str(ament_prefix), os.environ.get("AMENT_PREFIX_PATH", "")) if p))
    path = ament_prefix / "share" / "vprsnn_ros" / "launch" / name
    description = PythonLaunchDescriptionSource(str(path)).get_launch_description(launch.LaunchContext())
    assert isinstance(description, launch.LaunchDescription)
    return description


def _event(kind, node, **fields):
    return kind(action=node, name=f"{node.node_executable}-1", cmd=[node.node_executable], cwd=None,
                env=None, pid=4242, **fields)


@NEEDS_LAUNCH
@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_launch_file_builds_its_description(name, ament_prefix, monkeypatch):
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    entities = _description(name, ament_prefix, monkeypatch).entities
    arguments = [e for e in entities if isinstance(e, DeclareLaunchArgument)]
    assert arguments and all(a.description and a.description != "no description given" for a in arguments), \
        [a.name for a in arguments]
    assert sorted(e.node_executable for e in entities if isinstance(e, Node)) == sorted(PROCESSES[name])


@NEEDS_LAUNCH
@pytest.mark.parametrize("name", LAUNCH_FILES)
def test_a_failing_process_logs_one_error_line_and_fails_the_launch(name, ament_prefix, monkeypatch):
    """Each process is watched: its last error line on stderr becomes the reason of one ERROR
    line, the launch shuts down and then raises (``ros2 launch`` exits 1, not 0); a clean exit
    ends the launch only for a job that is done."""
    import launch
    import launch.logging
    from launch.actions import OpaqueFunction, RegisterEventHandler, Shutdown
    from launch.events.process import ProcessExited, ProcessStderr
    from launch_ros.actions import Node

    from vprsnn_ros.nodes.launch_support import LaunchFailed

    entities = _description(name, ament_prefix, monkeypatch).entities
    handlers = [e.event_handler for e in entities if isinstance(e, RegisterEventHandler)]
    logged = []

    class Logger:
        def error(self, message):
            logged.append(("error", message))

        def info(self, message):
            logged.append(("info", message))

    monkeypatch.setattr(launch.logging, "get_logger", lambda name=None: Logger())
    for node in (e for e in entities if isinstance(e, Node)):
        exe = node.node_executable
        context = launch.LaunchContext()
        stderr = _event(ProcessStderr, node, text=(
            f"[INFO] [1.0] [vprsnn_{exe}]: starting\n"
            f"[ERROR] [2.0] [vprsnn_{exe}]: no model at /nowhere\n").encode())
        readers = [h for h in handlers if h.matches(stderr)]
        assert len(readers) == 1, f"{exe}: stderr read by {len(readers)} handlers"
        readers[0].handle(stderr, context)
        failed = _event(ProcessExited, node, returncode=2)
        watchers = [h for h in handlers if h.matches(failed)]
        assert len(watchers) == 1, f"{exe}: exit watched by {len(watchers)} handlers"
        actions = watchers[0].handle(failed, context)
        assert [type(a) for a in actions] == [OpaqueFunction, Shutdown, OpaqueFunction], actions
        reason = f"{exe}-1 failed, exit code 2 (bad parameters or input): no model at /nowhere"
        assert actions[1].event.reason == reason
        logged.clear()
        actions[0].execute(context)
        assert logged == [("error", f"{reason}; shutting the launch down")]
        with pytest.raises(LaunchFailed, match="no model at /nowhere"):
            actions[2].execute(context)
        done = watchers[0].handle(_event(ProcessExited, node, returncode=0), launch.LaunchContext())
        if PROCESSES[name][exe]:
            assert [type(a) for a in done] == [Shutdown] and done[0].event.reason == f"{exe}-1 finished"
        else:
            assert done is None, f"a clean exit of {exe} ended the launch"
