"""The trainer node: trains from a bag, publishes progress, resumes after being killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed (pip install -e '.[ros]')")
from std_msgs.msg import Float32  # noqa: E402

from vprsnn_ros.io.bags import write_bag_from_folder  # noqa: E402
from vprsnn_ros.io.sources import load_traverse  # noqa: E402
from vprsnn_ros.io.synthetic import write_route  # noqa: E402
from vprsnn_ros.model.network_io import load_network  # noqa: E402
from vprsnn_ros.model.store import ModelStore  # noqa: E402
from vprsnn_ros.snn.network import NetworkConfig  # noqa: E402
from vprsnn_ros.snn.profiles import DEFAULT_PROFILE, get_profile  # noqa: E402
from vprsnn_ros.train.training import train_network  # noqa: E402

DOMAIN = int(os.environ.get("VPRSNN_TEST_DOMAIN_BASE", "50")) + 7


def node_env():
    return dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")


def trainer(bag, out, epochs, *extra):
    cmd = [sys.executable, "-m", "vprsnn_ros.nodes.trainer_node", "--ros-args",
           "-p", f"reference:=['{bag}']", "-p", f"out:={out}", "-p", "neurons:=20",
           "-p", "places_per_module:=5", "-p", f"epochs:={epochs}", "-p", "workers:=1", *extra]
    return subprocess.Popen(cmd, env=node_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    work = tmp_path_factory.mktemp("trainer")
    ref, _ = write_route(work / "route", 10, seed=6)
    return write_bag_from_folder(ref, work / "ref_bag", rate_hz=5.0, start_time_ns=10**18)


def expected_model(bag, out, epochs):
    pixels = load_traverse(bag, (28, 28), 7)
    cfg = NetworkConfig(n_neurons=20, places_per_module=5, epochs=epochs)
    # The node trains with the default profile, as `vprsnn train` does.
    return train_network(cfg, [pixels.pixels], pixels.names, out, workers=1,
                         profile=get_profile(DEFAULT_PROFILE))


def test_trainer_publishes_progress_and_writes_the_model(bag, tmp_path):
    ctx = rclpy.Context()
    os.environ.update(ROS_DOMAIN_ID=str(DOMAIN), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node("trainer_test", context=ctx)
        progress = []
        node.create_subscription(Float32, "/vprsnn_trainer/progress", lambda m: progress.append(m.data), 100)
        executor = rclpy.executors.SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        proc = trainer(bag, tmp_path / "model", 6, "-p", "wait_for_monitor:=30.0")
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        end = time.monotonic() + 2
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        output = proc.stdout.read()
        assert proc.returncode == 0, output
    finally:
        rclpy.shutdown(context=ctx)
    assert "model complete" in output
    assert progress and progress[-1] == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(progress, progress[1:])), "progress went backwards"
    assert len(progress) >= 6
    got = load_network(tmp_path / "model")
    want = expected_model(bag, tmp_path / "direct", 6)
    assert np.array_equal(got.weights, want.weights)


def test_killed_trainer_resumes_to_the_same_model(bag, tmp_path):
    out = tmp_path / "model"
    proc = trainer(bag, out, 40)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if (out / "model.yaml").exists() and ModelStore.open(out).has_part("module_0000"):
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert not ModelStore.open(out).complete, "the trainer finished before it could be killed"
    again = trainer(bag, out, 40)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert "module 1/2" not in output, "module 1 was trained again"
    want = expected_model(bag, tmp_path / "direct", 40)
    assert np.array_equal(load_network(out).weights, want.weights)


def test_missing_parameters_end_with_one_error_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vprsnn_ros.nodes.trainer_node", "--ros-args",
                           "-p", f"out:={tmp_path / 'm'}"], env=node_env(), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("vprsnn trainer: error:")
    assert "Traceback" not in proc.stderr
