"""``trainer``: the offline trainer as a ROS node.

    ros2 run vprsnn_ros trainer --ros-args --params-file config/train.yaml

Runs the same training as ``vprsnn train`` (reference image folders or bags),
publishes ``~/progress`` (std_msgs/Float32, 0..1) and logs each finished
module, runs in this process or on a Dask cluster (parameter ``cluster``),
writes the model atomically module by module, resumes an interrupted
training in the same ``out`` directory, and exits 0 when the model is complete.
"""

from __future__ import annotations

import sys
import time

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.node import Node
from std_msgs.msg import Float32

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.io.sources import load_traverse
from vprsnn_ros.nodes.job import run_job
from vprsnn_ros.parallel.runner import open_runner
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.snn.profiles import DEFAULT_PROFILE, get_profile
from vprsnn_ros.train.training import train_network


class TrainerNode(Node):
    """Parameters in, model directory out."""

    def __init__(self) -> None:
        super().__init__("vprsnn_trainer")
        d = ParameterDescriptor
        self.declare_parameter("reference", [""], d(description="reference traverses: image folders or bags"))
        self.declare_parameter("out", "", d(description="model directory to write (resumed if partial)"))
        self.declare_parameter("topic", "", d(description="bags: image topic ('' = the only one)"))
        self.declare_parameter("pose_topic", "", d(description="bags: Odometry/NavSatFix topic ('' = the only one)"))
        self.declare_parameter("every", 1, d(description="one place every N frames"))
        self.declare_parameter("every_seconds", 0.0, d(description="bags: one place every T s (0 = off)"))
        self.declare_parameter("every_metres", 0.0, d(description="bags: one place every D m (0 = off)"))
        self.declare_parameter("limit", 0, d(description="at most N places (0 = all)"))
        self.declare_parameter("places_per_module", 25, d(description="places learned by each module"))
        self.declare_parameter("neurons", 400, d(description="excitatory neurons per module"))
        self.declare_parameter("epochs", 60, d(description="training epochs"))
        self.declare_parameter("seed", 0, d(description="random seed"))
        self.declare_parameter("shuffle", False, d(description="seeded random regions instead of contiguous"))
        self.declare_parameter("dt", 0.5, d(description="simulation step (ms)"))
        self.declare_parameter("workers", 2, d(description="modules trained in parallel (in process)"))
        self.declare_parameter("cluster", "", d(
            description="'' = train in this process; local[:N], tcp://HOST:PORT or a scheduler file = "
                        "train on Dask (needs vprsnn_ros[cluster])"))
        self.declare_parameter("cluster_timeout", 10.0, d(description="seconds to wait for the Dask scheduler"))
        self.declare_parameter("profile", DEFAULT_PROFILE, d(
            description="accuracy profile: faithful (the published method) or tuned (see profiles.py)"))
        self.declare_parameter("resume", True, d(description="continue a partial model found in out"))
        self.declare_parameter("wait_for_monitor", 0.0, d(
            description="seconds to wait for a ~/progress subscriber before starting (0 = do not wait)"))
        self.progress_pub = self.create_publisher(Float32, "~/progress", 10)
        self._last_module = ""
        self._last_log = 0.0

    def _get(self, name: str):
        return self.get_parameter(name).value

    def run(self) -> None:
        refs = [r for r in self._get("reference") if r]
        out = self._get("out")
        if not refs or not out:
            raise ConfigError("parameters 'reference' (list of folders or bags) and 'out' are required")
        config = NetworkConfig(
            n_neurons=self._get("neurons"), places_per_module=self._get("places_per_module"),
            epochs=self._get("epochs"), dt=self._get("dt"), seed=self._get("seed"),
            shuffle=self._get("shuffle")).validate()
        traverses = [load_traverse(
            r, config.image_size, config.patch, every=self._get("every"),
            every_seconds=self._get("every_seconds") or None, every_metres=self._get("every_metres") or None,
            limit=self._get("limit") or None, topic=self._get("topic") or None,
            pose_topic=self._get("pose_topic") or None) for r in refs]
        if len({len(t) for t in traverses}) != 1:
            raise ConfigError(f"reference traverses differ in length: {[len(t) for t in traverses]}")
        deadline = time.monotonic() + self._get("wait_for_monitor")
        while self.progress_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        profile = get_profile(self._get("profile"))
        cluster = self._get("cluster").strip()
        if self._get("cluster_timeout") <= 0:
            raise ConfigError("cluster_timeout must be > 0")
        where = f" on Dask cluster {cluster}" if cluster else ""
        self.get_logger().info(f"training {len(traverses[0])} places from {refs} into {out}{where}")
        started = time.perf_counter()
        with open_runner(cluster, self._get("workers"), self._get("cluster_timeout")) as runner:
            train_network(config, [t.pixels for t in traverses], traverses[0].names, out,
                          workers=self._get("workers"), resume=self._get("resume"),
                          progress=self._progress, place_poses=traverses[0].poses,
                          pose_frame=traverses[0].pose_frame, thumbnails=traverses[0].thumbnails,
                          profile=profile, runner=runner)
        self.progress_pub.publish(Float32(data=1.0))
        # Let the last progress message reach its subscribers before the process exits.
        self.progress_pub.wait_for_all_acked(Duration(seconds=2.0))
        self.get_logger().info(f"model complete: {out} ({time.perf_counter() - started:.1f} s)")

    def _progress(self, done: int, total: int, message: str) -> None:
        self.progress_pub.publish(Float32(data=float(done) / max(total, 1)))
        module = message.split(" epoch")[0]
        now = time.monotonic()
        # One line per finished module (and at most one every 10 s otherwise).
        if module != self._last_module or now - self._last_log > 10.0:
            self.get_logger().info(f"{done}/{total} presentations: {message}")
            self._last_module, self._last_log = module, now


def main(args: list[str] | None = None) -> int:
    # Ctrl-C interrupts the training between epochs; run again with resume:=true to continue.
    return run_job("trainer", TrainerNode, lambda node, executor: node.run(), args)


if __name__ == "__main__":
    sys.exit(main())
