"""The trainer node: trains from a bag, publishes progress, resumes after being killed.

Each node runs on a ROS domain of its own (conftest ``ros_domains``), its output goes to
a file (a pipe nobody reads could fill up and stall it), and every wait has a deadline
after which the node is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

try:  # optional: the `ros` marker skips these tests (fails them in CI) without rclpy
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float32
except ImportError:
    pass

from vprsnn_ros.io.bags import write_bag_from_folder
from vprsnn_ros.io.sources import load_traverse
from vprsnn_ros.io.synthetic import write_route
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.snn.profiles import DEFAULT_PROFILE, get_profile
from vprsnn_ros.train.training import train_network

pytestmark = pytest.mark.ros


class Trainer:
    """The trainer node in a subprocess (its own process group), output to ``log``."""

    def __init__(self, bag, out, epochs, env: dict, log: Path, *extra: str):
        cmd = [sys.executable, "-m", "vprsnn_ros.nodes.trainer_node", "--ros-args",
               "-p", f"reference:=['{bag}']", "-p", f"out:={out}", "-p", "neurons:=20",
               "-p", "places_per_module:=5", "-p", f"epochs:={epochs}", "-p", "workers:=1", *extra]
        self.log = log
        with open(log, "w") as f:
            self.proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, text=True,
                                         start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)

    def wait(self, timeout: float) -> int:
        """The exit code; killed, and the test failed, at the deadline."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the trainer still ran {timeout} s later; output:\n{self.output()[-3000:]}")


@pytest.fixture
def trainers():
    """Starts trainers; none outlives the test."""
    started: list[Trainer] = []

    def start(*args, **kwargs) -> Trainer:
        started.append(Trainer(*args, **kwargs))
        return started[-1]

    yield start
    for t in started:
        if t.proc.poll() is None:
            t.kill()


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


@pytest.mark.slow
def test_trainer_publishes_progress_and_writes_the_model(bag, tmp_path, trainers, ros_domain, ros_domains):
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    try:
        node = rclpy.create_node("trainer_test", context=ctx)
        progress = []
        node.create_subscription(Float32, "/vprsnn_trainer/progress", lambda m: progress.append(m.data), 100)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        trainer = trainers(bag, tmp_path / "model", 6, ros_domains.env(ros_domain), tmp_path / "trainer.log",
                           "-p", "wait_for_monitor:=30.0")
        deadline = time.monotonic() + 240
        while trainer.proc.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        code = trainer.wait(timeout=max(0.0, deadline - time.monotonic()))
        end = time.monotonic() + 2  # the last messages may still be on their way
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        output = trainer.output()
        assert code == 0, output
    finally:
        rclpy.shutdown(context=ctx)
    assert "model complete" in output
    assert progress and progress[-1] == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(progress, progress[1:])), "progress went backwards"
    assert len(progress) >= 6
    got = load_network(tmp_path / "model")
    want = expected_model(bag, tmp_path / "direct", 6)
    assert np.array_equal(got.weights, want.weights)


@pytest.mark.slow
def test_killed_trainer_resumes_to_the_same_model(bag, tmp_path, trainers, ros_domains):
    out = tmp_path / "model"
    first = trainers(bag, out, 40, ros_domains.env(ros_domains.new()), tmp_path / "first.log")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.proc.poll() is None:
        if (out / "model.yaml").exists() and ModelStore.open(out).has_part("module_0000"):
            break
        time.sleep(0.05)
    first.kill()
    assert not ModelStore.open(out).complete, "the trainer finished before it could be killed"
    again = trainers(bag, out, 40, ros_domains.env(ros_domains.new()), tmp_path / "again.log")
    assert again.wait(timeout=300) == 0, again.output()
    assert "module 1/2" not in again.output(), "module 1 was trained again"
    want = expected_model(bag, tmp_path / "direct", 40)
    assert np.array_equal(load_network(out).weights, want.weights)


def test_missing_parameters_end_with_one_error_line(tmp_path, ros_domains, bad_input):
    bad_input.watch(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "vprsnn_ros.nodes.trainer_node", "--ros-args",
                           "-p", f"out:={tmp_path / 'm'}"], env=ros_domains.env(ros_domains.new()),
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    bad_input(proc, "reference", prefix="vprsnn trainer: error:")
