"""``evaluator``: score a replayed bag from the localizer's outputs and write a report.

    evaluator --ros-args -p bag:=query.mcap -p model:=models/route -p report_dir:=reports/replay

It lists the frames the player will publish (same bag, topic and sampling),
records when each frame is seen on ``image`` and when the localizer's stamped
``~/scores`` for it arrives, and after the player's ``~/done`` writes the
report: the offline evaluation's metrics (frame k of the bag is place k),
``latency_ms`` (p50/p95/p99, frame seen -> scores received), ``frames_played``,
``frames_dropped``, per-frame CSV, a Markdown summary, the plots and
``worst_matches.png`` (the worst matches beside their places' thumbnails).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Int32

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.eval.replay_report import write_replay_report
from vprsnn_ros.io.bags import read_bag_frames
from vprsnn_ros.model.ensemble import member_dirs
from vprsnn_ros.nodes.bag_player import LATCHED
from vprsnn_ros.nodes.job import run_job


def stamp_ns(header) -> int:
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


class Evaluator(Node):

    def __init__(self) -> None:
        super().__init__("vprsnn_evaluator")
        d = ParameterDescriptor
        self.declare_parameter("bag", "", d(description="the bag being replayed"))
        self.declare_parameter("topic", "", d(description="its image topic ('' = the only one)"))
        self.declare_parameter("every", 1, d(description="sampling of the player"))
        self.declare_parameter("limit", 0, d(description="sampling of the player (0 = all)"))
        self.declare_parameter("model", "", d(description="the localizer's model (for the confidence scale)"))
        self.declare_parameter("sequence_length", 1, d(description="the localizer's sequence length"))
        self.declare_parameter("sequence_matcher", "diagonal",
                               d(description="the localizer's sequence matcher (diagonal or seqslam)"))
        self.declare_parameter("readout", "", d(description="the localizer's readout ('' = the model's profile)"))
        self.declare_parameter("hyperactive_threshold", -1, d(description="the localizer's T (-1 = the model's)"))
        self.declare_parameter("preselect_k", -1, d(description="the localizer's K (-1 = the model's, 0 = all)"))
        self.declare_parameter("report_dir", "replay_report", d(description="where the report is written"))
        self.declare_parameter("scores_topic", "/vprsnn_localizer/scores", d(description="stamped scores"))
        self.declare_parameter("done_topic", "/vprsnn_bag_player/done", d(description="end of the replay"))
        self.declare_parameter("settle", 3.0, d(description="seconds to wait for answers after the end"))
        self.declare_parameter("timeout", 3600.0, d(description="give up after this many seconds"))
        self.seen: dict[int, float] = {}
        self.scored: dict[int, tuple[float, np.ndarray]] = {}
        self.done_count: int | None = None
        self.last_event = time.monotonic()
        # Deep queues: nothing the localizer answers may be lost on the way to the report.
        deep = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1000)
        self.image_sub = self.create_subscription(Image, "image", self._on_image, deep)
        # Transient local, like the localizer's ~/scores: scores answered before the localizer's
        # writer matched this reader are still delivered.
        self.scores_sub = self.create_subscription(Image, self.get_parameter("scores_topic").value,
                                                   self._on_scores, QoSProfile(
                                                       reliability=ReliabilityPolicy.RELIABLE,
                                                       history=HistoryPolicy.KEEP_LAST, depth=1000,
                                                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.create_subscription(Int32, self.get_parameter("done_topic").value, self._on_done, LATCHED)
        # Tells the player that nothing it publishes from now on can be missed here.
        self.ready_pub = self.create_publisher(Int32, "~/ready", LATCHED)
        self._ready_timer = self.create_timer(0.05, self._check_ready)

    def _check_ready(self) -> None:
        if self.scores_sub.get_publisher_count() > 0 and self.image_sub.get_publisher_count() > 0:
            self.ready_pub.publish(Int32(data=1))
            self._ready_timer.cancel()

    def _get(self, name: str):
        return self.get_parameter(name).value

    def _on_image(self, msg: Image) -> None:
        self.seen.setdefault(stamp_ns(msg.header), time.monotonic())
        self.last_event = time.monotonic()

    def _on_scores(self, msg: Image) -> None:
        scores = np.frombuffer(bytes(msg.data), dtype=np.float32).astype(np.float64)
        self.scored[stamp_ns(msg.header)] = (time.monotonic(), scores)
        self.last_event = time.monotonic()

    def _on_done(self, msg: Int32) -> None:
        self.done_count = int(msg.data)
        self.last_event = time.monotonic()

    def run(self, executor: SingleThreadedExecutor) -> dict:
        model = self._get("model")
        if not model:
            raise ConfigError("parameter 'model' is required")
        member_dirs(model)  # a missing model fails before the bag is read
        frames = read_bag_frames(self._get("bag"), topic=self._get("topic") or None, every=self._get("every"),
                                 limit=self._get("limit") or None)
        started = time.monotonic()
        while time.monotonic() - started < float(self._get("timeout")):
            executor.spin_once(timeout_sec=0.05)
            if self.done_count is not None and time.monotonic() - self.last_event > float(self._get("settle")):
                break
        else:
            raise ConfigError("the replay did not finish before the timeout")
        out = Path(self._get("report_dir"))
        report = write_replay_report(
            out, model=model, bag=self._get("bag"), names=frames.names,
            stamps=[int(s) for s in frames.stamps_ns], images=frames.images, scored=self.scored,
            seen=self.seen, frames_played=self.done_count,
            sequence_length=int(self._get("sequence_length")),
            sequence_matcher=self._get("sequence_matcher"), readout=self._get("readout") or None,
            threshold=None if self._get("hyperactive_threshold") < 0 else self._get("hyperactive_threshold"),
            preselect_k=None if self._get("preselect_k") < 0 else self._get("preselect_k"))
        self.get_logger().info(f"report written to {out}: R@1 {report['recall']['1']:.3f}, "
                               f"{report['frames_dropped']} dropped")
        return report


def main(args: list[str] | None = None) -> int:
    return run_job("evaluator", Evaluator, lambda node, executor: node.run(executor), args)


if __name__ == "__main__":
    sys.exit(main())
