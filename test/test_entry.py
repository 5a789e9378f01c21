"""The node executables exit quietly on a Ctrl-C that comes while they are still importing."""

from __future__ import annotations

import importlib
import select
import signal
import subprocess
import sys
import time

import pytest


def test_sigint_during_the_import_exits_130_without_a_traceback(tmp_path):
    (tmp_path / "slow_node.py").write_text(
        "import sys, time\nprint('importing', flush=True)\ntime.sleep(60)\n\ndef main():\n    return 0\n")
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from vprsnn_ros.nodes.entry import _run; "
            f"sys.exit(_run('slow_node', 'localizer'))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)  # never wait forever on the pipe
        assert ready and proc.stdout.readline().strip() == "importing"  # the node module is being imported
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err.strip() == "vprsnn localizer: interrupted while starting"


@pytest.mark.ros
def test_every_node_executable_goes_through_the_guard():
    from importlib.metadata import distribution

    scripts = {ep.name: ep.value for ep in distribution("vprsnn_ros").entry_points
               if ep.group == "console_scripts"}
    assert scripts == {"vprsnn": "vprsnn_ros.cli:main", "localizer": "vprsnn_ros.nodes.entry:localizer",
                       "trainer": "vprsnn_ros.nodes.entry:trainer",
                       "bag_player": "vprsnn_ros.nodes.entry:bag_player",
                       "evaluator": "vprsnn_ros.nodes.entry:evaluator"}
    for module in ("localizer_node", "trainer_node", "bag_player", "evaluator"):
        assert callable(importlib.import_module(f"vprsnn_ros.nodes.{module}").main)
