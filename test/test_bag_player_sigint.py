"""``bag_player`` stopped with SIGINT (how launch and replay end it) exits 0, not 130 (issue 10)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed (pip install -e '.[ros]')")

from rclpy.context import Context  # noqa: E402

from vprsnn_ros.io.bags import write_bag_from_folder  # noqa: E402
from vprsnn_ros.io.synthetic import write_route  # noqa: E402

pytestmark = pytest.mark.ros
DOMAIN = int(os.environ.get("VPRSNN_TEST_DOMAIN_BASE", "40")) + 12


def test_bag_player_exits_0_on_sigint(tmp_path):
    _, query = write_route(tmp_path / "route", 3, seed=1)
    bag = write_bag_from_folder(query, tmp_path / "bag", rate_hz=10.0)
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    # Nobody subscribes: the player waits for a localizer until it is stopped.
    proc = subprocess.Popen([sys.executable, "-m", "vprsnn_ros.nodes.bag_player", "--ros-args",
                             "-p", f"bag:={bag}", "-p", "wait_for_subscribers:=600.0"],
                            env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN)
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
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"bag_player still running 30 s after SIGINT:\n{out}")
    print(f"\nexit {proc.returncode}; output:\n{out}")
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
