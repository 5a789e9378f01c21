"""``localizer``: camera frames in, recognised place and confidence out.

    ros2 run vprsnn_ros localizer --ros-args --params-file config/localize.yaml \\
        -r image:=/camera/image_raw

A managed (lifecycle) node, as nav2's: ``configure`` loads and validates the
model and warms the kernels, ``activate`` subscribes and starts publishing,
``deactivate`` stops processing (the model stays loaded), ``cleanup`` frees it;
the standard ``~/change_state`` and ``~/get_state`` services drive it. With
``autostart`` (default) it configures and activates itself at start-up, and
exits with status 2 when the model is unusable; without, a failed configure
leaves it unconfigured, alive, with one error line.

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

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseWithCovarianceStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float32, Int32
from std_srvs.srv import Trigger

from vprsnn_ros.errors import VprsnnError
from vprsnn_ros.eval.views import match_view
from vprsnn_ros.localizer import Estimate, Localizer
from vprsnn_ros.model.network_io import load_thumbnails
from vprsnn_ros.nodes import diagnostics
from vprsnn_ros.nodes.estimate import place_pose
from vprsnn_ros.nodes.image_convert import BACKEND, array_to_image, compressed_to_array, image_to_array
from vprsnn_ros.nodes.localizer_params import LOCALIZER_SETTINGS, PARAMETERS, localizer_settings
from vprsnn_ros.nodes.ros_params import declare

SCORES_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=100,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE


class LocalizerNode(LifecycleNode):
    """Managed (lifecycle) rclpy adapter over :class:`vprsnn_ros.localizer.Localizer`.

    configure: load and validate the model, warm the kernels, create the
    publishers and ``~/reload``; activate: subscribe to the images and publish;
    deactivate: unsubscribe (the model stays loaded); cleanup: free the model.
    """

    def __init__(self) -> None:
        super().__init__("vprsnn_localizer")
        declare(self, PARAMETERS)
        self.stats = diagnostics.FrameStats()
        self._lock = threading.Lock()
        self._pending: tuple[object, bool] | None = None  # (message, compressed)
        self._wake = threading.Condition(self._lock)
        self._stopping = False
        self._model_path = ""
        self.localizer: Localizer | None = None
        self.thumbnails: np.ndarray | None = None
        self._image_subs: list = []
        self._publishers_: list = []  # lifecycle publishers created at configure
        self._reload_service = None
        self._diagnostics_timer = None
        self.pub_scores = None
        self._autostarting = False
        self._busy = threading.Lock()  # held while a frame is processed; cleanup waits for it
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._worker = threading.Thread(target=self._inference_loop, name="vprsnn_inference", daemon=True)
        self._worker.start()

    def _get(self, name: str):
        return self.get_parameter(name).value

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        path = self._get("model_path")
        try:
            localizer, thumbnails = self._load(path)
        except Exception as exc:  # noqa: BLE001 - rclpy would swallow it silently
            reason = str(exc) if isinstance(exc, VprsnnError) else f"unexpected {exc!r}"
            self.get_logger().error(f"configure failed: {reason}" + (
                "" if self._autostarting else "; the node stays unconfigured (fix model_path, configure again)"))
            return FAILURE
        with self._lock:
            self.localizer, self.thumbnails = localizer, thumbnails
        self.pub_place = self.create_lifecycle_publisher(Int32, "~/place_id", 10)
        self.pub_confidence = self.create_lifecycle_publisher(Float32, "~/confidence", 10)
        self.pub_estimate = self.create_lifecycle_publisher(PoseWithCovarianceStamped, "~/estimate", 10)
        self.pub_diagnostics = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        self.pub_debug = self.create_lifecycle_publisher(Image, "~/debug_image", 1)
        # Transient local: a replay evaluator whose subscription the writer has not matched yet
        # when the first frames are answered still gets their scores (DDS discovery is not
        # symmetric in time).
        self.pub_scores = (self.create_lifecycle_publisher(Image, "~/scores", SCORES_QOS)
                           if self._get("publish_scores") else None)
        self._publishers_ = [p for p in (self.pub_place, self.pub_confidence, self.pub_estimate,
                                     self.pub_diagnostics, self.pub_debug, self.pub_scores) if p is not None]
        self._reload_service = self.create_service(Trigger, "~/reload", self._on_reload)
        self._diagnostics_timer = self.create_timer(float(self._get("diagnostics_period")),
                                                    self._publish_diagnostics)
        self.get_logger().info(f"configured: model {self._model_path}, reference thumbnails for "
                               f"~/debug_image: {'yes' if thumbnails is not None else 'no'}")
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        reliable = self._get("reliable")
        qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                         depth=1) if reliable else qos_profile_sensor_data
        with self._lock:
            # A stream that stopped is not continued: the sequence history starts afresh.
            self.localizer.reset()
        # Publishers first: a frame that arrives as soon as we subscribe must not be answered
        # through a still disabled publisher.
        result = super().on_activate(state)  # enables the lifecycle publishers
        self._image_subs = [self.create_subscription(Image, "image", lambda m: self._on_frame(m, False), qos)]
        if self._get("use_compressed"):
            # image_transport convention: "<image topic>/compressed", following any remap of "image".
            compressed_topic = self.resolve_topic_name("image") + "/compressed"
            self._image_subs.append(self.create_subscription(
                CompressedImage, compressed_topic, lambda m: self._on_frame(m, True), qos))
        self.get_logger().info(
            f"ready: model {self._model_path} ({self.localizer.n_places} places, "
            f"{sum(m.n_modules for m in self.localizer.members)} modules, "
            f"{len(self.localizer.members)} network(s), {sum(self.localizer.preselect)} modules run "
            f"per frame), image conversion: {BACKEND}, "
            f"QoS {'reliable' if reliable else 'sensor data'}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self.get_logger().info("deactivated: not processing frames, model kept")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: model released")
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._release()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._release()
        return SUCCESS  # back to unconfigured

    def autostart(self) -> bool:
        """configure + activate; False (node left unconfigured) if configure fails."""
        self._autostarting = True
        try:
            return self.trigger_configure() == SUCCESS and self.trigger_activate() == SUCCESS
        finally:
            self._autostarting = False

    def _unsubscribe(self) -> None:
        for sub in self._image_subs:
            self.destroy_subscription(sub)
        self._image_subs = []
        with self._lock:
            if self._pending is not None:
                self.stats.dropped += 1
                self._pending = None

    def _release(self) -> None:
        """Undo configure; waits for a frame in progress (it uses the publishers and the model)."""
        with self._busy:
            for pub in self._publishers_:
                self.destroy_lifecycle_publisher(pub)
            self._publishers_ = []
            self.pub_scores = None
            if self._reload_service is not None:
                self.destroy_service(self._reload_service)
                self._reload_service = None
            if self._diagnostics_timer is not None:
                self.destroy_timer(self._diagnostics_timer)
                self._diagnostics_timer = None
            with self._lock:
                self.localizer, self.thumbnails = None, None

    # ------------------------------------------------------------------ model

    def _settings(self, **overrides) -> dict:
        """Localizer keyword arguments from the current parameter values (and ``overrides``)."""
        return localizer_settings({**{name: self._get(name) for name in LOCALIZER_SETTINGS}, **overrides})

    def _load(self, path: str) -> tuple[Localizer, np.ndarray | None]:
        loc = Localizer(path, **self._settings())
        thumbnails = load_thumbnails(path)
        started = time.perf_counter()
        loc.warm_up()
        self.get_logger().info(f"model {path} loaded, kernels warm in {time.perf_counter() - started:.2f} s")
        self._model_path = str(path)
        return loc, thumbnails

    def _on_reload(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        path = self._get("model_path")
        try:
            fresh, thumbnails = self._load(path)
        except VprsnnError as exc:
            response.success = False
            response.message = f"reload failed, keeping {self._model_path}: {exc}"
            self.get_logger().error(response.message)
            return response
        with self._lock:
            self.localizer, self.thumbnails = fresh, thumbnails
        response.success = True
        response.message = f"loaded {path}: {fresh.n_places} places"
        return response

    def _on_set_parameters(self, params) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in LOCALIZER_SETTINGS}
        if changes:
            with self._lock:
                if self.localizer is not None:  # unconfigured: the values are read at configure
                    self.localizer = Localizer(self.localizer.members, **self._settings(**changes))
        return SetParametersResult(successful=True)

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
                localizer, thumbnails = self.localizer, self.thumbnails
            try:
                with self._busy:
                    if self.localizer is None:  # cleaned up while the frame waited
                        continue
                    self._process(localizer, thumbnails, msg, compressed)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the node
                with self._lock:
                    self.stats.failed += 1
                self.get_logger().error(f"unexpected error on a frame: {exc!r}", throttle_duration_sec=5.0)

    def _process(self, localizer: Localizer, thumbnails: np.ndarray | None, msg, compressed: bool) -> None:
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
        self._publish_debug_image(image, estimate, msg.header, thumbnails)

    def _publish_debug_image(self, image: np.ndarray, est: Estimate, header,
                             thumbnails: np.ndarray | None) -> None:
        """~/debug_image: the frame beside the matched place's thumbnail, only when someone looks."""
        pub = self.pub_debug
        if not (self._get("publish_debug_image") or pub.get_subscription_count() > 0):
            return
        thumbnail = (thumbnails[est.place_id] if thumbnails is not None and 0 <= est.place_id < len(thumbnails)
                     else None)
        view = match_view(image, thumbnail, est.place_id, est.confidence)
        msg = array_to_image(view, "bgr8")
        msg.header.stamp = header.stamp
        msg.header.frame_id = header.frame_id
        pub.publish(msg)

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
        net = localizer.members[0]
        pose = place_pose(est.place_id, est.confidence, net.place_poses, net.pose_frame,
                          self._get("frame_id"), self._get("sigma_min_places"), self._get("sigma_max_places"))
        out = PoseWithCovarianceStamped()
        out.header.stamp = header.stamp
        out.header.frame_id = pose.frame_id
        p, q = out.pose.pose.position, out.pose.pose.orientation
        p.x, p.y, p.z = pose.position
        q.x, q.y, q.z, q.w = pose.orientation
        out.pose.covariance = list(pose.covariance)
        self.pub_estimate.publish(out)
        self.get_logger().debug(f"place {est.place_id} conf {est.confidence:.3f} top "
                                f"{est.top_places.tolist()}")

    # ------------------------------------------------------------------ diagnostics

    def diagnostics_snapshot(self) -> tuple[str, str, dict] | None:
        """(level, message, values) of the current status; None while no model is loaded."""
        with self._lock:
            frames = self.stats.snapshot()
            loc = self.localizer
        return None if loc is None else diagnostics.localizer_status(self._model_path, loc, frames)

    def _publish_diagnostics(self) -> None:
        snapshot = self.diagnostics_snapshot()
        if snapshot is None:
            return
        level, message, values = snapshot
        status = DiagnosticStatus(level=getattr(DiagnosticStatus, level), name="vprsnn_localizer",
                                  hardware_id=self.get_fully_qualified_name(), message=message,
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
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
        if node.get_parameter("autostart").value and not node.autostart():
            # Standalone use: a node that cannot do its job exits, so that launch and
            # supervisors see it (the reason is the one error line logged by configure).
            node.get_logger().info("autostart did not complete; exiting with status 2")
            return 2
        if not node.get_parameter("autostart").value:
            node.get_logger().info("unconfigured: waiting for ~/change_state (configure, then activate)")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
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
