"""``bag_player`` stopped with SIGINT (how launch and replay end it) exits 0, not 130 (issue 10)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

try:  # optional: the `ros` marker skips the test (fails it in CI) without rclpy
    import rclpy
    from rclpy.context import Context
except ImportError:
    pass

from vprsnn_ros.io.bags import write_bag_from_folder
from vprsnn_ros.io.synthetic import write_route

pytestmark = pytest.mark.ros


def test_bag_player_exits_0_on_sigint(tmp_path, ros_domain, ros_domains):
    _, query = write_route(tmp_path / "route", 3, seed=1)
    bag = write_bag_from_folder(query, tmp_path / "bag", rate_hz=10.0)
    env = ros_domains.env(ros_domain)
    # Nobody subscribes: the player waits for a localizer until it is stopped.
    proc = subprocess.Popen([sys.executable, "-m", "vprsnn_ros.nodes.bag_player", "--ros-args",
                             "-p", f"bag:={bag}", "-p", "wait_for_subscribers:=600.0"],
                            env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        context = Context()
        rclpy.init(context=context, domain_id=ros_domain)
        try:
            node = rclpy.create_node("bag_player_sigint_test", context=context)
            # The player's ~/done publisher in the graph: its node exists, so it is past start-up.
            deadline = time.monotonic() + 90
            while (not node.get_publishers_info_by_topic("/vprsnn_bag_player/done")
                   and time.monotonic() < deadline and proc.poll() is None):
                time.sleep(0.1)
            assert node.get_publishers_info_by_topic("/vprsnn_bag_player/done"), "the player never came up"
            node.destroy_node()
        finally:
            rclpy.shutdown(context=context)
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("bag_player still running 30 s after SIGINT")
    finally:
        if proc.poll() is None:  # never outlives the test
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
    print(f"\nexit {proc.returncode}; output:\n{out}")
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
