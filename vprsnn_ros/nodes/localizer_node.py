"""``localizer``: camera frames in, recognised place and confidence out.

    ros2 run vprsnn_ros localizer --ros-args --params-file config/localize.yaml \\
        -r image:=/camera/image_raw

Data flow: the image callbacks only keep the newest frame (a one-slot mailbox,
so the queue can never grow: a frame replaced before it was processed counts as
dropped); an inference thread takes it, converts it, runs the
:class:`~vprsnn_ros.localizer.Localizer` and publishes ``~/place_id``,
``~/confidence`` and ``~/estimate`` with the frame's stamp. Inference therefore
never blocks the executor that receives frames, services and timers.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseWithCovarianceStamped
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float32, Int32
from std_srvs.srv import Trigger

from ..errors import VprsnnError
from ..localizer import Estimate, Localizer
from .image_convert import BACKEND, compressed_to_array, image_to_array


def place_sigma(confidence: float, sigma_min: float, sigma_max: float) -> float:
    """Standard deviation (in places) of the estimate: linear from sigma_max at confidence 0
    to sigma_min at confidence 1. ``~/estimate`` reports its square as the x variance."""
    c = min(max(confidence, 0.0), 1.0)
    return sigma_min + (1.0 - c) * (sigma_max - sigma_min)


@dataclass
class Stats:
    """Frame counters and latencies, shared by the callbacks and the inference thread."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    rejected: int = 0
    failed: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=1000))
    arrivals: deque = field(default_factory=lambda: deque(maxlen=200))


def _int(description: str, lo: int, hi: int, read_only: bool = False) -> ParameterDescriptor:
    return ParameterDescriptor(description=description, read_only=read_only,
                               integer_range=[IntegerRange(from_value=lo, to_value=hi, step=1)])


def _float(description: str, lo: float, hi: float) -> ParameterDescriptor:
    return ParameterDescriptor(description=description,
                               floating_point_range=[FloatingPointRange(from_value=lo, to_value=hi, step=0.0)])


class LocalizerNode(Node):
    """rclpy adapter over :class:`vprsnn_ros.localizer.Localizer`."""

    def __init__(self) -> None:
        super().__init__("vprsnn_localizer")
        self.declare_parameter("model_path", "models/demo", ParameterDescriptor(
            description="model directory (or ensemble); changing it takes effect on ~/reload"))
        self.declare_parameter("sequence_length", 1, _int("online sequence matching over the last N frames", 1, 100))
        self.declare_parameter("top_k", 5, _int("places kept in the estimate (logged at debug level)", 1, 1000))
        self.declare_parameter("hyperactive_threshold", -1, _int(
            "override of the calibrated hyperactivity threshold T (-1: the model's, 0: no masking)", -1, 100000))
        self.declare_parameter("min_confidence", 0.0, _float("below it ~/place_id publishes -1", 0.0, 1.0))
        self.declare_parameter("reliable", False, ParameterDescriptor(
            description="reliable QoS for the image topics (replay) instead of sensor data QoS",
            read_only=True))
        self.declare_parameter("use_compressed", False, ParameterDescriptor(
            description="also subscribe to image/compressed", read_only=True))
        self.declare_parameter("frame_id", "route", ParameterDescriptor(
            description="frame of ~/estimate when the model has no place poses"))
        self.declare_parameter("sigma_min_places", 0.5, _float("estimate std at confidence 1 (places)", 0.0, 1e6))
        self.declare_parameter("sigma_max_places", 10.0, _float("estimate std at confidence 0 (places)", 0.0, 1e6))
        self.declare_parameter("publish_scores", False, ParameterDescriptor(
            description="also publish ~/scores: every place's score as a 1 x N 32FC1 Image "
                        "with the frame's stamp (for replay evaluation)", read_only=True))
        self.declare_parameter("diagnostics_period", 1.0, ParameterDescriptor(
            description="seconds between /diagnostics messages", read_only=True))

        self.stats = Stats()
        self._lock = threading.Lock()
        self._pending: tuple[object, bool] | None = None  # (message, compressed)
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._model_path = ""
        self.localizer = self._load(self.get_parameter("model_path").value)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        reliable = self.get_parameter("reliable").value
        qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                         depth=1) if reliable else qos_profile_sensor_data
        self.create_subscription(Image, "image", lambda m: self._on_frame(m, False), qos)
        if self.get_parameter("use_compressed").value:
            # image_transport convention: "<image topic>/compressed", following any remap of "image".
            compressed_topic = self.resolve_topic_name("image") + "/compressed"
            self.create_subscription(CompressedImage, compressed_topic,
                                     lambda m: self._on_frame(m, True), qos)
        self.pub_place = self.create_publisher(Int32, "~/place_id", 10)
        self.pub_confidence = self.create_publisher(Float32, "~/confidence", 10)
        self.pub_estimate = self.create_publisher(PoseWithCovarianceStamped, "~/estimate", 10)
        self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.pub_scores = (self.create_publisher(Image, "~/scores", 10)
                           if self.get_parameter("publish_scores").value else None)
        self.create_service(Trigger, "~/reload", self._on_reload)
        self.create_timer(float(self.get_parameter("diagnostics_period").value), self._publish_diagnostics)
        self._worker = threading.Thread(target=self._inference_loop, name="vprsnn_inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: model {self._model_path} ({self.localizer.n_places} places, "
            f"{sum(m.n_modules for m in self.localizer.members)} modules, "
            f"{len(self.localizer.members)} network(s)), image conversion: {BACKEND}, "
            f"QoS {'reliable' if reliable else 'sensor data'}")

    # ------------------------------------------------------------------ model

    def _load(self, path: str) -> Localizer:
        threshold = self.get_parameter("hyperactive_threshold").value
        loc = Localizer(path, sequence_length=self.get_parameter("sequence_length").value,
                        top_k=self.get_parameter("top_k").value,
                        hyperactive_threshold=None if threshold < 0 else threshold)
        started = time.perf_counter()
        loc.warm_up()
        self.get_logger().info(f"model {path} loaded, kernels warm in {time.perf_counter() - started:.2f} s")
        self._model_path = str(path)
        return loc

    def _on_reload(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        path = self.get_parameter("model_path").value
        try:
            fresh = self._load(path)
        except VprsnnError as exc:
            response.success = False
            response.message = f"reload failed, keeping {self._model_path}: {exc}"
            self.get_logger().error(response.message)
            return response
        with self._lock:
            self.localizer = fresh
        response.success = True
        response.message = f"loaded {path}: {fresh.n_places} places"
        return response

    def _on_set_parameters(self, params) -> SetParametersResult:
        for p in params:
            if p.name == "sequence_length":
                with self._lock:
                    self.localizer = self._rebuilt(sequence_length=p.value)
            elif p.name == "top_k":
                with self._lock:
                    self.localizer = self._rebuilt(top_k=p.value)
            elif p.name == "hyperactive_threshold":
                with self._lock:
                    self.localizer = self._rebuilt(hyperactive_threshold=None if p.value < 0 else p.value)
        return SetParametersResult(successful=True)

    def _rebuilt(self, **changes) -> Localizer:
        old = self.localizer
        settings = dict(sequence_length=old.sequence_length, top_k=old.top_k,
                        hyperactive_threshold=old.threshold)
        settings.update(changes)
        return Localizer(old.members, **settings)

    # ------------------------------------------------------------------ frames

    def _on_frame(self, msg, compressed: bool) -> None:
        with self._lock:
            self.stats.received += 1
            self.stats.arrivals.append(time.monotonic())
            if self._pending is not None:
                self.stats.dropped += 1
            self._pending = (msg, compressed)
            self._wake.notify()

    def _inference_loop(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                msg, compressed = self._pending
                self._pending = None
                localizer = self.localizer
            try:
                self._process(localizer, msg, compressed)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the node
                with self._lock:
                    self.stats.failed += 1
                self.get_logger().error(f"unexpected error on a frame: {exc!r}", throttle_duration_sec=5.0)

    def _process(self, localizer: Localizer, msg, compressed: bool) -> None:
        started = time.perf_counter()
        try:
            image = compressed_to_array(msg) if compressed else image_to_array(msg)
        except VprsnnError as exc:
            with self._lock:
                self.stats.rejected += 1
            self.get_logger().warn(f"rejected frame: {exc}", throttle_duration_sec=5.0)
            return
        try:
            estimate = localizer.localize(image)
        except (VprsnnError, ValueError, MemoryError) as exc:
            with self._lock:
                self.stats.rejected += 1
            self.get_logger().warn(f"frame not processed: {exc}", throttle_duration_sec=5.0)
            return
        self._publish(estimate, msg.header, localizer)
        with self._lock:
            self.stats.processed += 1
            self.stats.latencies.append(time.perf_counter() - started)

    def _publish(self, est: Estimate, header, localizer: Localizer) -> None:
        accepted = est.place_id >= 0 and est.confidence >= self.get_parameter("min_confidence").value
        self.pub_place.publish(Int32(data=est.place_id if accepted else -1))
        self.pub_confidence.publish(Float32(data=float(est.confidence)))
        if self.pub_scores is not None:
            # A standard message with a header: scores as a one-row float image.
            scores = np.ascontiguousarray(est.scores, dtype=np.float32)
            msg = Image(height=1, width=scores.size, encoding="32FC1", is_bigendian=0,
                        step=4 * scores.size, data=scores.tobytes())
            msg.header.stamp = header.stamp
            msg.header.frame_id = "vprsnn_place_scores"
            self.pub_scores.publish(msg)
        if est.place_id < 0:
            return
        out = PoseWithCovarianceStamped()
        out.header.stamp = header.stamp
        net = localizer.members[0]
        sigma = place_sigma(est.confidence, self.get_parameter("sigma_min_places").value,
                            self.get_parameter("sigma_max_places").value)
        cov = np.zeros(36)
        if net.place_poses is not None:
            x, y, z, qx, qy, qz, qw = net.place_poses[est.place_id]
            out.header.frame_id = net.pose_frame or "map"
            out.pose.pose.position.x, out.pose.pose.position.y, out.pose.pose.position.z = x, y, z
            q = out.pose.pose.orientation
            q.x, q.y, q.z, q.w = qx, qy, qz, qw
            # Uncertainty in places converted to metres with the local spacing of places.
            k = est.place_id
            neighbour = net.place_poses[k + 1 if k + 1 < len(net.place_poses) else max(k - 1, 0)]
            spacing = float(np.linalg.norm(neighbour[:3] - net.place_poses[k, :3])) or 1.0
            cov[0] = cov[7] = (sigma * spacing) ** 2
        else:
            out.header.frame_id = self.get_parameter("frame_id").value
            out.pose.pose.position.x = float(est.place_id)
            out.pose.pose.orientation.w = 1.0
            cov[0] = sigma ** 2
            cov[7] = cov[14] = 1e-9
        cov[21] = cov[28] = cov[35] = 1e6  # orientation is not estimated
        out.pose.covariance = cov.tolist()
        self.pub_estimate.publish(out)
        self.get_logger().debug(f"place {est.place_id} conf {est.confidence:.3f} top "
                                f"{est.top_places.tolist()}")

    # ------------------------------------------------------------------ diagnostics

    def _publish_diagnostics(self) -> None:
        with self._lock:
            s = self.stats
            lat = np.array(s.latencies) * 1e3
            arrivals = list(s.arrivals)
            counts = dict(received=s.received, processed=s.processed, dropped=s.dropped,
                          rejected=s.rejected, failed=s.failed)
            loc = self.localizer
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
        rate = (len(arrivals) - 1) / span if span > 0 else 0.0
        status = DiagnosticStatus(level=DiagnosticStatus.OK, name="vprsnn_localizer",
                                  hardware_id=self.get_fully_qualified_name(),
                                  message=f"{counts['processed']} frames processed")
        values = {
            "model": self._model_path,
            "places": loc.n_places,
            "modules": sum(m.n_modules for m in loc.members),
            "networks": len(loc.members),
            "masked_neurons": sum(m.n_masked(loc.threshold) for m in loc.members),
            "frames_received": counts["received"], "frames_processed": counts["processed"],
            "frames_dropped": counts["dropped"], "frames_rejected": counts["rejected"],
            "frames_failed": counts["failed"],
            "latency_mean_ms": round(float(lat.mean()), 3) if lat.size else 0.0,
            "latency_p99_ms": round(float(np.percentile(lat, 99)), 3) if lat.size else 0.0,
            "input_rate_hz": round(rate, 3),
            "sequence_length": loc.sequence_length,
        }
        if counts["rejected"] or counts["failed"]:
            status.level = DiagnosticStatus.WARN
            status.message += f", {counts['rejected']} rejected, {counts['failed']} failed"
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_diagnostics.publish(msg)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify()
        self._worker.join(timeout=5.0)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=sys.argv if args is None else args)
    node = None
    try:
        node = LocalizerNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except VprsnnError as exc:
        print(f"vprsnn localizer: error: {exc}", file=sys.stderr)
        return 2
    finally:
        # A second Ctrl-C (or a supervisor forwarding SIGINT again) must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if node is not None:
            node.stop()
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
