"""``trainer``: the offline trainer as a ROS node.

    ros2 run vprsnn_ros trainer --ros-args --params-file config/train.yaml

Runs the same training as ``vprsnn train``
(:func:`vprsnn_ros.train.from_sources.train_from_sources`, with every option of
:class:`~vprsnn_ros.train.options.TrainOptions` as a parameter: reference
folders or bags, place selection, network, calibration query and places,
epoch checkpoints, ensemble, Dask cluster). It publishes ``~/progress``
(std_msgs/Float32, 0..1), logs each finished module, writes the model
atomically module by module, resumes an interrupted training in the same
``out`` directory, and exits 0 when the model is complete.
"""

from __future__ import annotations

import sys
import time

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.node import Node
from std_msgs.msg import Float32

from vprsnn_ros.nodes.job import run_job
from vprsnn_ros.train.from_sources import train_from_sources
from vprsnn_ros.train.options import from_node_values, node_default, option_fields


class TrainerNode(Node):
    """Parameters in, model directory out."""

    def __init__(self) -> None:
        super().__init__("vprsnn_trainer")
        for f in option_fields():
            self.declare_parameter(f.name, node_default(f), ParameterDescriptor(description=f.metadata["help"]))
        self.declare_parameter("wait_for_monitor", 0.0, ParameterDescriptor(
            description="seconds to wait for a ~/progress subscriber before starting (0 = do not wait)"))
        self.progress_pub = self.create_publisher(Float32, "~/progress", 10)
        self._last_module = ""
        self._last_log = 0.0

    def run(self) -> None:
        opts = from_node_values({f.name: self.get_parameter(f.name).value for f in option_fields()})
        started = time.perf_counter()
        train_from_sources(opts, progress_for=lambda seed: self._progress,
                           say=lambda line: self.get_logger().info(line), ready=self._wait_for_monitor)
        self.progress_pub.publish(Float32(data=1.0))
        # Let the last progress message reach its subscribers before the process exits.
        self.progress_pub.wait_for_all_acked(Duration(seconds=2.0))
        self.get_logger().info(f"model complete: {opts.out} ({time.perf_counter() - started:.1f} s)")

    def _wait_for_monitor(self) -> None:
        deadline = time.monotonic() + self.get_parameter("wait_for_monitor").value
        while self.progress_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)

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
