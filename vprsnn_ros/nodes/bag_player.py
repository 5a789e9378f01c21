"""``bag_player``: publish a bag's image frames with their recorded stamps.

    bag_player --ros-args -p bag:=query.mcap -p mode:=lockstep -r image:=/camera/image_raw

``lockstep`` publishes the next frame only after the localizer answered the
previous one (one ``~/place_id`` message each), so a replay is deterministic;
``realtime`` keeps the recorded timing, sped up by ``rate_factor``. After the
last frame it publishes ``~/done`` (std_msgs/Int32: the number of frames
played, transient local so that a late evaluator still gets it) and exits.
Exit status 0 when done or stopped with SIGINT, 2 on bad parameters or input.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Int32

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.io.bags import read_bag_frames
from vprsnn_ros.nodes.image_convert import array_to_image
from vprsnn_ros.nodes.job import run_job


def encoding_of(image: np.ndarray) -> str:
    """ROS encoding that carries a decoded frame unchanged."""
    if image.ndim == 2:
        return "mono16" if image.dtype == np.uint16 else "mono8"
    return {3: "bgr8", 4: "bgra8"}[image.shape[2]]


RELIABLE = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=10)
LATCHED = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


class BagPlayer(Node):

    def __init__(self) -> None:
        super().__init__("vprsnn_bag_player")
        d = ParameterDescriptor
        self.declare_parameter("bag", "", d(description="bag to play"))
        self.declare_parameter("topic", "", d(description="image topic in the bag ('' = the only one)"))
        self.declare_parameter("every", 1, d(description="play every N-th frame"))
        self.declare_parameter("limit", 0, d(description="at most N frames (0 = all)"))
        self.declare_parameter("mode", "lockstep", d(description="lockstep or realtime"))
        self.declare_parameter("rate_factor", 1.0, d(description="realtime: speed-up of the recorded timing"))
        self.declare_parameter("ack_topic", "/vprsnn_localizer/place_id",
                               d(description="lockstep: one message here per processed frame"))
        self.declare_parameter("ack_timeout", 30.0, d(description="lockstep: seconds to wait for an answer"))
        self.declare_parameter("wait_for_subscribers", 60.0, d(description="seconds to wait for the localizer"))
        self.declare_parameter("min_subscribers", 1, d(
            description="start when this many subscribe to the image topic (localizer + evaluator: 2)"))
        self.declare_parameter("start_signal", "", d(
            description="also wait for a message on this topic first (e.g. /vprsnn_evaluator/ready)"))
        # The bag is read before anything is published or subscribed: a bad bag fails
        # before the player appears in the graph, and once it appears it only waits.
        self.frames = read_bag_frames(self._get("bag"), topic=self._get("topic") or None,
                                      every=self._get("every"), limit=self._get("limit") or None)
        self.pub = self.create_publisher(Image, "image", RELIABLE)
        self.done_pub = self.create_publisher(Int32, "~/done", LATCHED)
        self.acks = 0
        self.started = not self.get_parameter("start_signal").value
        self.create_subscription(Int32, self.get_parameter("ack_topic").value, self._on_ack, RELIABLE)
        if not self.started:
            self.create_subscription(Int32, self.get_parameter("start_signal").value,
                                     lambda _m: setattr(self, "started", True), LATCHED)

    def _on_ack(self, _msg: Int32) -> None:
        self.acks += 1

    def _get(self, name: str):
        return self.get_parameter(name).value

    def play(self, executor: SingleThreadedExecutor) -> int:
        mode = self._get("mode")
        if mode not in ("lockstep", "realtime"):
            raise ConfigError(f"mode must be lockstep or realtime, not {mode!r}")
        factor = float(self._get("rate_factor"))
        if factor <= 0:
            raise ConfigError("rate_factor must be > 0")
        frames = self.frames
        wanted = int(self._get("min_subscribers"))
        deadline = time.monotonic() + float(self._get("wait_for_subscribers"))
        while ((self.pub.get_subscription_count() < wanted or not self.started)
               and time.monotonic() < deadline):
            executor.spin_once(timeout_sec=0.05)
        if not self.started:
            raise ConfigError(f"no start signal on {self._get('start_signal')}")
        if self.pub.get_subscription_count() < wanted:
            raise ConfigError("nobody subscribes to the image topic (is the localizer running and remapped?)")
        self.get_logger().info(f"playing {len(frames)} frames ({mode})")
        start_wall = time.monotonic()
        start_stamp = int(frames.stamps_ns[0])
        for k, (image, stamp) in enumerate(zip(frames.images, frames.stamps_ns)):
            if mode == "realtime":
                due = start_wall + (int(stamp) - start_stamp) * 1e-9 / factor
                while time.monotonic() < due:
                    executor.spin_once(timeout_sec=max(0.0, min(0.01, due - time.monotonic())))
            msg = array_to_image(image, encoding_of(image))
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp), 10**9)
            acked = self.acks
            self.pub.publish(msg)
            if mode == "lockstep":
                until = time.monotonic() + float(self._get("ack_timeout"))
                while self.acks == acked and time.monotonic() < until:
                    executor.spin_once(timeout_sec=0.05)
                if self.acks == acked:
                    raise ConfigError(f"no answer from {self._get('ack_topic')} for frame {k} "
                                      f"within {self._get('ack_timeout')} s")
        self.done_pub.publish(Int32(data=len(frames)))
        self.done_pub.wait_for_all_acked(Duration(seconds=2.0))
        self.get_logger().info(f"played {len(frames)} frames in {time.monotonic() - start_wall:.1f} s")
        return len(frames)


def main(args: list[str] | None = None) -> int:
    code = run_job("bag_player", BagPlayer, lambda node, executor: node.play(executor), args)
    if code == 130:
        # Stopping a player is how a replay or a launch ends it, not a failure (launch logs
        # "process has died" as an error for 130). os._exit: when the Ctrl-C landed inside
        # code run by PyRun_String (e.g. during an import), CPython would kill itself with
        # SIGINT at exit although the interrupt was handled; rclpy is already shut down here.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return code


if __name__ == "__main__":
    sys.exit(main())
