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
``~/confidence``, ``~/estimate`` and ``~/match`` with the frame's stamp. Inference
therefore never blocks the executor that receives frames, services and timers.

For nav2: with ``relocalize`` (``auto`` or ``on_request``, for models with place
poses) the pose of a confident, agreeing match also goes to ``initialpose``
(``/initialpose`` unless namespaced or remapped), which AMCL listens to
(:mod:`vprsnn_ros.nodes.relocalize`). For RViz: ``~/places`` draws the model's
places and ``~/match`` the current best one (:mod:`vprsnn_ros.nodes.markers`,
``config/vprsnn.rviz``). The decisions live in plain modules; this file is ROS wiring.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float32, Int32
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from vprsnn_ros.errors import ConfigError, VprsnnError
from vprsnn_ros.eval.views import match_view
from vprsnn_ros.localizer import Estimate, Localizer
from vprsnn_ros.model.network_io import load_thumbnails
from vprsnn_ros.nodes import diagnostics, kernel_cache, markers
from vprsnn_ros.nodes import localizer_msgs as msgs
from vprsnn_ros.nodes.estimate import place_pose
from vprsnn_ros.nodes.image_convert import BACKEND, array_to_image, compressed_to_array, image_to_array
from vprsnn_ros.nodes.localizer_params import (
    LOCALIZER_SETTINGS,
    PARAMETERS,
    RELOCALIZE_SETTINGS,
    localizer_settings,
    relocalize_settings,
)
from vprsnn_ros.nodes.memory import release_freed_memory
from vprsnn_ros.nodes.relocalize import Relocalizer, RelocalizeSettings, pose_problem
from vprsnn_ros.nodes.ros_params import declare, descriptor
from vprsnn_ros.nodes.spin import spin_until_shutdown
from vprsnn_ros.snn.readout import check_readout
from vprsnn_ros.snn.sequence import check_matcher
from vprsnn_ros.snn.threads import set_limit

SCORES_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=100,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
# ~/places: the latest map of places for any RViz that subscribes later (latched).
PLACES_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Read as YAML, a bare `off` is a boolean: these string parameters take one too (relocalize.check_mode).
DYNAMICALLY_TYPED = ("relocalize",)
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
        declare(self, [p for p in PARAMETERS if p.name not in DYNAMICALLY_TYPED])
        for p in PARAMETERS:
            if p.name in DYNAMICALLY_TYPED:
                d = descriptor(p)
                d.dynamic_typing = True
                self.declare_parameter(p.name, p.default, d)
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
        self._relocalize_service = None
        self._diagnostics_timer = None
        self.relocalizer = Relocalizer()
        self._place_size = markers.PLACE_SIZE  # the places' sphere diameter, for ~/match
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
            localizer, thumbnails, relocalize = self._load(path)
        except Exception as exc:  # noqa: BLE001 - rclpy would swallow it silently
            reason = str(exc) if isinstance(exc, VprsnnError) else f"unexpected {exc!r}"
            self.get_logger().error(f"configure failed: {reason}" + (
                "" if self._autostarting else "; the node stays unconfigured (fix model_path, configure again)"))
            return FAILURE
        with self._lock:
            self.localizer, self.thumbnails = localizer, thumbnails
        self.relocalizer.configure(relocalize)
        self.relocalizer.reset()
        self.pub_place = self.create_lifecycle_publisher(Int32, "~/place_id", 10)
        self.pub_confidence = self.create_lifecycle_publisher(Float32, "~/confidence", 10)
        self.pub_estimate = self.create_lifecycle_publisher(PoseWithCovarianceStamped, "~/estimate", 10)
        self.pub_diagnostics = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        self.pub_debug = self.create_lifecycle_publisher(Image, "~/debug_image", 1)
        # Relative, as nav2's AMCL names it: /initialpose, or <namespace>/initialpose beside a
        # namespaced AMCL; remappable (-r initialpose:=...).
        self.pub_initialpose = self.create_lifecycle_publisher(PoseWithCovarianceStamped, "initialpose", 10)
        self.pub_places = self.create_lifecycle_publisher(MarkerArray, "~/places", PLACES_QOS)
        self.pub_match = self.create_lifecycle_publisher(Marker, "~/match", 10)
        # Transient local: a replay evaluator whose subscription the writer has not matched yet
        # when the first frames are answered still gets their scores (DDS discovery is not
        # symmetric in time).
        self.pub_scores = (self.create_lifecycle_publisher(Image, "~/scores", SCORES_QOS)
                           if self._get("publish_scores") else None)
        self._publishers_ = [p for p in (self.pub_place, self.pub_confidence, self.pub_estimate,
                                         self.pub_diagnostics, self.pub_debug, self.pub_scores,
                                         self.pub_initialpose, self.pub_places, self.pub_match)
                             if p is not None]
        self._reload_service = self.create_service(Trigger, "~/reload", self._on_reload)
        self._relocalize_service = self.create_service(Trigger, "~/relocalize", self._on_relocalize)
        self._diagnostics_timer = self.create_timer(float(self._get("diagnostics_period")),
                                                    self._publish_diagnostics)
        self.get_logger().info(f"configured: model {self._model_path}, reference thumbnails for "
                               f"~/debug_image: {'yes' if thumbnails is not None else 'no'}, "
                               f"relocalize: {relocalize.mode}")
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
        self.relocalizer.reset()
        self._publish_places(self.localizer)
        with self._lock:
            self.stats.active_since = time.monotonic()
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
        with self._lock:
            self.stats.active_since = None
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
            for service in (self._reload_service, self._relocalize_service):
                if service is not None:
                    self.destroy_service(service)
            self._reload_service = self._relocalize_service = None
            if self._diagnostics_timer is not None:
                self.destroy_timer(self._diagnostics_timer)
                self._diagnostics_timer = None
            with self._lock:
                self.localizer, self.thumbnails = None, None
        release_freed_memory()

    # ------------------------------------------------------------------ model

    def _settings(self, **overrides) -> dict:
        """Localizer keyword arguments from the current parameter values (and ``overrides``)."""
        return localizer_settings({**{name: self._get(name) for name in LOCALIZER_SETTINGS}, **overrides})

    def _relocalize_settings(self, **overrides) -> RelocalizeSettings:
        return relocalize_settings({**{name: self._get(name) for name in RELOCALIZE_SETTINGS}, **overrides})

    def _load(self, path: str) -> tuple[Localizer, np.ndarray | None, RelocalizeSettings]:
        """Load, check and warm a model; a VprsnnError (one line) when it cannot be used."""
        loc = Localizer(path, **self._settings())
        relocalize = self._relocalize_settings()
        problem = pose_problem(relocalize.mode, loc.members[0].place_poses is not None, str(path))
        if problem:
            raise ConfigError(problem)
        thumbnails = load_thumbnails(path)
        if kernel_cache.uncached_kernels(kernel_cache.engine_module(loc)):
            self.get_logger().info(f"compiling the Numba kernels: first start after an install or update "
                                   f"(cold cache), {kernel_cache.COMPILE_NOTE}")
        started = time.perf_counter()
        loc.warm_up()
        self.get_logger().info(f"model {path} loaded, kernels warm in {time.perf_counter() - started:.2f} s")
        self._model_path = str(path)
        return loc, thumbnails, relocalize

    def _on_reload(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        path = self._get("model_path")
        try:
            fresh, thumbnails, relocalize = self._load(path)
        except VprsnnError as exc:
            response.success = False
            response.message = f"reload failed, keeping {self._model_path}: {exc}"
            self.get_logger().error(response.message)
            return response
        with self._busy, self._lock:  # not while a frame still uses the old model
            self.localizer, self.thumbnails = fresh, thumbnails
        release_freed_memory()  # the old model's memory, so that reloads do not grow the node
        self.relocalizer.configure(relocalize)
        self.relocalizer.reset()
        self._publish_places(fresh)  # dropped by the lifecycle publisher unless active
        response.success = True
        response.message = f"loaded {path}: {fresh.n_places} places"
        return response

    def _on_relocalize(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.relocalizer.arm()
        self.get_logger().info(f"~/relocalize: {response.message}")
        return response

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Apply new settings all at once, or refuse them all with the reason (nothing changes)."""
        relocalize = {p.name: p.value for p in params if p.name in RELOCALIZE_SETTINGS}
        changes = {p.name: p.value for p in params if p.name in LOCALIZER_SETTINGS}
        with self._lock:
            try:
                settings = None
                if relocalize:
                    settings = self._relocalize_settings(**relocalize)
                    loc = self.localizer
                    problem = loc is not None and pose_problem(
                        settings.mode, loc.members[0].place_poses is not None, self._model_path)
                    if problem:
                        raise ConfigError(problem)
                fresh = None
                if changes:
                    kwargs = self._settings(**changes)
                    check_matcher(kwargs["sequence_matcher"])
                    if kwargs["readout"] is not None:
                        check_readout(kwargs["readout"])
                    if self.localizer is not None:  # unconfigured: the values are read at configure
                        fresh = Localizer(self.localizer.members, **kwargs)
            except VprsnnError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            if settings is not None:
                self.relocalizer.configure(settings)
            if fresh is not None:
                self.localizer = fresh
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
            finally:
                # Hold nothing between frames: a cleanup must be able to free the model.
                msg = localizer = thumbnails = None

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
            set_limit(self._get("threads"))  # this (inference) thread's Numba threads
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
            self.pub_scores.publish(msgs.scores_image(est.scores, header.stamp))
        relocalize = self.relocalizer.update(est.place_id, est.confidence, time.monotonic())
        if est.place_id < 0:
            return
        net = localizer.members[0]
        pose = place_pose(est.place_id, est.confidence, net.place_poses, net.pose_frame,
                          self._get("frame_id"), self._get("sigma_min_places"), self._get("sigma_max_places"))
        out = msgs.pose_message(pose, header.stamp)
        self.pub_estimate.publish(out)
        self.pub_match.publish(msgs.match_marker(pose, est.confidence, self._place_size, header.stamp))
        if relocalize:
            self.pub_initialpose.publish(out)
            x, y, _z = pose.position
            self.get_logger().info(f"relocalized: {self.pub_initialpose.topic_name} = place {est.place_id} "
                                   f"(confidence {est.confidence:.3f}) at ({x:.2f}, {y:.2f}) in {pose.frame_id}")
        self.get_logger().debug(f"place {est.place_id} conf {est.confidence:.3f} top "
                                f"{est.top_places.tolist()}")

    # ------------------------------------------------------------------ markers

    def _publish_places(self, localizer: Localizer | None) -> None:
        """~/places: one SPHERE_LIST marker, a sphere per place, coloured by module (latched)."""
        if localizer is None:
            return
        net = localizer.members[0]
        spec = markers.places_marker(net.n_places, net.regions, net.place_poses, net.pose_frame,
                                     self._get("frame_id"))
        self._place_size = spec.size
        self.pub_places.publish(msgs.places_markers(spec, self.get_clock().now().to_msg()))

    # ------------------------------------------------------------------ diagnostics

    def diagnostics_snapshot(self) -> tuple[str, str, dict] | None:
        """(level, message, values) of the current status; None while no model is loaded."""
        with self._lock:
            frames = self.stats.snapshot()
            loc = self.localizer
        if loc is None:
            return None
        limits = diagnostics.HealthLimits(self._get("min_input_rate"), self._get("input_timeout"))
        level, message, values = diagnostics.localizer_status(self._model_path, loc, frames, limits)
        values.update(self.relocalizer.status())
        return level, message, values

    def _publish_diagnostics(self) -> None:
        snapshot = self.diagnostics_snapshot()
        if snapshot is None:
            return
        level, message, values = snapshot
        self.pub_diagnostics.publish(msgs.diagnostic_array(level, message, values, "vprsnn_localizer",
                                                           self.get_fully_qualified_name(),
                                                           self.get_clock().now().to_msg()))

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
        spin_until_shutdown(executor, node.context)
    except KeyboardInterrupt:
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
