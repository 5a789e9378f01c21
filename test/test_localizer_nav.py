"""The localizer on a robot, over real DDS: ``/initialpose`` for nav2, the route and the match in
RViz, health in ``/diagnostics`` (each test that starts a node is ``slow``: a start takes seconds).

Each test starts the node as a subprocess (``python -m vprsnn_ros.nodes.localizer_node
--ros-args ...``, its own process group, killed at the end) on a ROS domain of its own
(conftest ``ros_domains``) and talks to it from an rclpy Context of this process. Frames are sent
in lock step (the next one after the node answered the previous one, reliable QoS), so the node
sees the same stream as an in-process :class:`~vprsnn_ros.localizer.Localizer`: what the node
must publish is predicted exactly, offline, with the same plain logic
(:class:`~vprsnn_ros.nodes.relocalize.Relocalizer`). Nothing waits on fixed sleeps: every wait
spins until a condition holds or a generous deadline passes. Counts of ``/initialpose``
messages are settled with the node's own count (``relocalizations`` in ``/diagnostics``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

try:  # optional: the `ros` marker skips these tests (fails them in CI) without them
    import rclpy
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float32, Int32
    from std_srvs.srv import Trigger
    from visualization_msgs.msg import Marker, MarkerArray
except ImportError:
    pass

from vprsnn_ros.localizer import Localizer
from vprsnn_ros.nodes.estimate import place_pose
from vprsnn_ros.nodes.kernel_cache import LANES, uncached_kernels
from vprsnn_ros.nodes.markers import confidence_colour
from vprsnn_ros.nodes.relocalize import AUTO, ON_REQUEST, Relocalizer, RelocalizeSettings
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.train.training import train_network

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.requires("visualization_msgs.msg")]  # a node per test

REPO = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO / "config" / "localize.yaml"
RVIZ_FILE = REPO / "config" / "vprsnn.rviz"
NODE = "vprsnn_localizer"
CAMERA = "/camera/image_raw"  # the camera topic of config/vprsnn.rviz: the node listens there
READY_TIMEOUT = 90.0
FRAME_TIMEOUT = 30.0
WAIT = 20.0
N_PLACES = 16
CONFIG16 = NetworkConfig(n_neurons=40, places_per_module=4, epochs=12, assign_presentations=16)  # = model16's
# Relocalization in these tests: three frames within one place of each other.
FRAMES, TOLERANCE, LONG_PERIOD = 3, 1, 1000.0
# Place order of frames that never agree: neighbours at least 7 places apart.
DISAGREEING = [1, 10, 3, 13, 6, 15, 0, 8, 2, 11]


# --------------------------------------------------------------------------
# the node process and the test's ROS side
# --------------------------------------------------------------------------

class NodeRun:
    """The localizer in a subprocess; its output is collected by a reader thread."""

    def __init__(self, domain: int, model, params: dict, env: dict):
        self.cmd = [sys.executable, "-m", "vprsnn_ros.nodes.localizer_node", "--ros-args",
                    "--params-file", str(PARAMS_FILE), "-p", f"model_path:={model}",
                    "-r", f"image:={CAMERA}"]
        for name, value in params.items():
            self.cmd += ["-p", f"{name}:={value}"]
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(self.cmd, cwd=str(REPO), env=env, start_new_session=True,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for_line(self, needle: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((line for line in self.lines if needle in line), None)
                left = deadline - time.monotonic()
                if found is not None or self._eof or left <= 0:
                    return found
                self._cond.wait(min(left, 0.5))

    def wait_ready(self) -> None:
        if self.wait_for_line("ready:", READY_TIMEOUT) is None:
            pytest.fail(f"node not ready within {READY_TIMEOUT} s (exit {self.proc.poll()}):\n{self.output()}")

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int | None:
        """SIGINT, then SIGKILL after 10 s; the exit code (None if it had to be killed)."""
        for sig in (signal.SIGINT, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            code = self.wait_exit(10.0)
            if code is not None:
                self._reader.join(timeout=5.0)
                return code if sig == signal.SIGINT else None
        return None


def reliable(depth: int = 100, latched: bool = False) -> QoSProfile:
    return QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=depth,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class Client:
    """An rclpy Context + node on the test's domain, subscribed to the localizer's outputs."""

    def __init__(self, domain: int):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(f"vprsnn_nav_test_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.estimates: list = []
        self.initialposes: list = []
        self.place_ids: list[int] = []
        self.confidences: list[float] = []
        self.matches: list = []
        self.places: list = []
        self.statuses: list = []  # DiagnosticStatus of the localizer
        sub = self.node.create_subscription
        self.sub_estimate = sub(PoseWithCovarianceStamped, f"/{NODE}/estimate", self.estimates.append, reliable())
        self.sub_initialpose = sub(PoseWithCovarianceStamped, "/initialpose", self.initialposes.append, reliable())
        sub(Int32, f"/{NODE}/place_id", lambda m: self.place_ids.append(m.data), reliable())
        sub(Float32, f"/{NODE}/confidence", lambda m: self.confidences.append(m.data), reliable())
        sub(Marker, f"/{NODE}/match", self.matches.append, reliable())
        sub(MarkerArray, f"/{NODE}/places", self.places.append, reliable(1, latched=True))
        sub(DiagnosticArray, "/diagnostics",
            lambda m: self.statuses.extend(s for s in m.status if s.name == NODE), reliable())
        self.pub = self.node.create_publisher(Image, CAMERA, reliable(10))
        self.relocalize_client = self.node.create_client(Trigger, f"/{NODE}/relocalize")
        self.reload_client = self.node.create_client(Trigger, f"/{NODE}/reload")
        self.param_client = self.node.create_client(SetParameters, f"/{NODE}/set_parameters")

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def spin_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return bool(predicate())
            self.executor.spin_once(timeout_sec=min(0.05, left))
        return True

    def connect(self, node: NodeRun) -> None:
        """Until the node takes our frames and we get its estimates, /initialpose and diagnostics."""
        if not self.spin_until(lambda: (self.pub.get_subscription_count() >= 1
                                        and self.sub_estimate.get_publisher_count() >= 1
                                        and self.sub_initialpose.get_publisher_count() >= 1
                                        and bool(self.statuses)), WAIT):
            pytest.fail(f"not connected to the node within {WAIT} s:\n{node.output()}")

    def call(self, client, request):
        assert client.wait_for_service(timeout_sec=WAIT), f"no service {client.srv_name}"
        future = client.call_async(request)
        assert self.spin_until(future.done, 60.0), f"no answer from {client.srv_name}"
        return future.result()

    def set_param(self, name: str, value: float) -> None:
        request = SetParameters.Request(parameters=[Parameter(name=name, value=ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE, double_value=float(value)))])
        result = self.call(self.param_client, request).results[0]
        assert result.successful, result.reason

    def send(self, image: np.ndarray, stamp: tuple[int, int]) -> PoseWithCovarianceStamped | None:
        """One bgr8 frame; waits for the estimate carrying its stamp."""
        msg = Image(height=image.shape[0], width=image.shape[1], encoding="bgr8", is_bigendian=0,
                    step=image.shape[1] * 3, data=np.ascontiguousarray(image).tobytes())
        msg.header.stamp = Time(sec=stamp[0], nanosec=stamp[1])
        msg.header.frame_id = "camera"
        self.pub.publish(msg)
        found = lambda: next((e for e in self.estimates
                              if (e.header.stamp.sec, e.header.stamp.nanosec) == stamp), None)
        self.spin_until(lambda: found() is not None, FRAME_TIMEOUT)
        return found()

    def values(self, status) -> dict:
        return {kv.key: kv.value for kv in status.values}

    def settle(self, processed: int) -> dict:
        """Diagnostics once ``processed`` frames are done, and every /initialpose the node counts
        has arrived here; returns those diagnostics."""
        found: list[dict] = []

        def done() -> bool:
            for status in reversed(self.statuses):
                v = self.values(status)
                if int(v["frames_processed"]) >= processed:
                    found[:] = [v]
                    return len(self.initialposes) >= int(v["relocalizations"])
            return False

        assert self.spin_until(done, WAIT), f"not settled: {found}, {len(self.initialposes)} /initialpose"
        return found[0]


@pytest.fixture
def run(ros_domains, monkeypatch):
    """Factory: (node, client) on a fresh domain; both are stopped at the end of the test."""
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # this process's participant too
    started: list = []

    def start(model, **params) -> tuple[NodeRun, Client]:
        domain = ros_domains.new()
        params = {"reliable": "true", "diagnostics_period": "0.25", **params}
        node = NodeRun(domain, model, params, ros_domains.env(domain))
        client = Client(domain)
        started.append((node, client))
        return node, client

    yield start
    for node, client in started:
        client.close()
        node.stop()


# --------------------------------------------------------------------------
# a model with per-place poses, and the node's answers predicted offline
# --------------------------------------------------------------------------

def route_poses(n: int) -> np.ndarray:
    """x, y, z, qx, qy, qz, qw of each place: 2 m apart along x, a wiggle in y, facing +x."""
    poses = np.zeros((n, 7))
    poses[:, 0] = 2.0 * np.arange(n)
    poses[:, 1] = np.sin(np.arange(n))
    poses[:, 6] = 1.0
    return poses


@pytest.fixture(scope="module")
def pose_model(route16, tmp_path_factory) -> Path:
    """model16's network (conftest) and route, trained with the poses of :func:`route_poses` in frame map."""
    out = tmp_path_factory.mktemp("nav") / "posed"
    train_network(CONFIG16, [route16.ref_pixels], route16.names, out, workers=2,
                  place_poses=route_poses(N_PLACES), pose_frame="map")
    return out


def predict(model: Path, images: list[np.ndarray], steps: list) -> list[tuple[int, int, float]]:
    """The node's /initialpose publications for a stream: (frame index, place, confidence).

    ``steps``: per frame, None or a change of the relocalize settings before it (as the test makes
    over ``set_parameters`` or ``~/relocalize``): a RelocalizeSettings, or "arm".
    """
    loc = Localizer(model)
    reloc = Relocalizer()
    out = []
    for k, (image, step) in enumerate(zip(images, steps)):
        if step == "arm":
            reloc.arm()
        elif step is not None:
            reloc.configure(step)
        est = loc.localize(image)
        if reloc.update(est.place_id, est.confidence, float(k)):
            out.append((k, est.place_id, est.confidence))
    return out


def assert_pose_of(msg, place: int, confidence: float, poses: np.ndarray, stamp: tuple[int, int]) -> None:
    expected = place_pose(place, confidence, poses, "map", "route", 0.5, 10.0)  # config/localize.yaml sigmas
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    assert msg.header.frame_id == "map"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == stamp, "not the frame's stamp"
    assert (p.x, p.y, p.z) == tuple(poses[place, :3]), "not the place's position"
    assert (q.x, q.y, q.z, q.w) == tuple(poses[place, 3:]), "not the place's orientation"
    np.testing.assert_allclose(msg.pose.covariance, expected.covariance, rtol=1e-9)


# --------------------------------------------------------------------------
# relocalization for nav2
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_auto_relocalizes_exactly_once_on_agreeing_frames_and_never_otherwise(run, pose_model, route16):
    """Disagreeing frames, then agreeing frames below relocalize_min_confidence: no /initialpose.
    Then frames of one place: exactly one, with that place's pose, the frame's stamp, and the
    covariance of ~/estimate (relocalize_period holds back the rest)."""
    reference = route16.reference
    settings = RelocalizeSettings(AUTO, 0.0, FRAMES, TOLERANCE, LONG_PERIOD)
    picky = RelocalizeSettings(AUTO, 1.0, FRAMES, TOLERANCE, LONG_PERIOD)
    disagree = [reference[p] for p in DISAGREEING]
    # Offline: a place whose frames make the stream publish exactly once, in the last phase, itself.
    for place in range(N_PLACES):
        same = [reference[place]] * 6
        images = disagree + same + same
        steps = [settings] + [None] * (len(disagree) - 1) + [picky] + [None] * 5 + [settings] + [None] * 5
        predicted = predict(pose_model, images, steps)
        if len(predicted) == 1 and predicted[0][1] == place and predicted[0][0] >= len(disagree) + 6:
            break
    else:
        pytest.fail("no place of the model is recognised in agreement over 3 frames: the model changed?")
    loc = Localizer(pose_model)
    confidences = [loc.localize(image).confidence for image in images]
    assert max(confidences) < 1.0, "relocalize_min_confidence 1.0 would not hold frames back"

    node, client = run(pose_model, relocalize="auto", relocalize_frames=FRAMES,
                       relocalize_tolerance=TOLERANCE, relocalize_period=LONG_PERIOD)
    node.wait_ready()
    client.connect(node)
    # The places marker of a model with poses: its poses' positions, in its pose frame.
    assert client.spin_until(lambda: bool(client.places), WAIT), node.output()
    marker = client.places[-1].markers[0]
    assert marker.header.frame_id == "map"
    assert [(p.x, p.y, p.z) for p in marker.points] == [tuple(r) for r in route_poses(N_PLACES)[:, :3]]

    for k, image in enumerate(images):
        if k == len(disagree):
            client.set_param("relocalize_min_confidence", 1.0)
            assert len(client.initialposes) == 0 and client.settle(k)["relocalizations"] == "0", \
                "disagreeing frames relocalized"
        if k == len(disagree) + 6:
            client.set_param("relocalize_min_confidence", 0.0)
            assert len(client.initialposes) == 0 and client.settle(k)["relocalizations"] == "0", \
                "frames below relocalize_min_confidence relocalized"
        assert client.send(image, (k, 77)) is not None, f"no estimate for frame {k}:\n{node.output()}"
    diag = client.settle(len(images))
    assert diag["relocalizations"] == "1" and len(client.initialposes) == 1, node.output()
    k, place, confidence = predicted[0]
    msg = client.initialposes[0]
    assert_pose_of(msg, place, confidence, route_poses(N_PLACES), (k, 77))
    estimate = next(e for e in client.estimates if (e.header.stamp.sec, e.header.stamp.nanosec) == (k, 77))
    assert list(msg.pose.covariance) == list(estimate.pose.covariance)
    assert node.wait_for_line("relocalized: /initialpose = place", 5.0) is not None
    assert node.stop() == 0, node.output()


@pytest.mark.slow
def test_on_request_publishes_only_after_the_call_and_once_per_call(run, pose_model, route16):
    reference = route16.reference
    settings = RelocalizeSettings(ON_REQUEST, 0.0, FRAMES, TOLERANCE, LONG_PERIOD)
    n = 5  # frames per phase: before the call, after it, after it again, after a second call
    for place in range(N_PLACES):
        images = [reference[place]] * (4 * n)
        steps = [settings] + [None] * (n - 1) + ["arm"] + [None] * (2 * n - 1) + ["arm"] + [None] * (n - 1)
        predicted = predict(pose_model, images, steps)
        if ([k // n for k, _, _ in predicted] == [1, 3]
                and all(p == place for _, p, _ in predicted)):
            break
    else:
        pytest.fail("no place of the model is recognised in agreement over 3 frames: the model changed?")

    node, client = run(pose_model, relocalize="on_request", relocalize_frames=FRAMES,
                       relocalize_tolerance=TOLERANCE)
    node.wait_ready()
    client.connect(node)
    answers = []
    for k, image in enumerate(images):
        if k % n == 0 and k // n in (1, 3):
            assert len(client.initialposes) == int(client.settle(k)["relocalizations"]) == k // n // 2, \
                f"/initialpose before the call of phase {k // n}:\n{node.output()}"
            answers.append(client.call(client.relocalize_client, Trigger.Request()))
        assert client.send(image, (k, 5)) is not None, f"no estimate for frame {k}:\n{node.output()}"
    assert all(a.success for a in answers) and "armed" in answers[0].message, answers
    diag = client.settle(len(images))
    assert diag["relocalizations"] == "2" and len(client.initialposes) == 2, node.output()
    for msg, (k, place, confidence) in zip(client.initialposes, predicted):
        assert_pose_of(msg, place, confidence, route_poses(N_PLACES), (k, 5))
    assert node.stop() == 0, node.output()


@pytest.mark.slow
def test_relocalize_with_a_model_without_poses_is_a_configure_error(ros_domains, model16):
    domain = ros_domains.new()
    node = NodeRun(domain, model16, {"relocalize": "auto"}, ros_domains.env(domain))
    try:
        code = node.wait_exit(READY_TIMEOUT)
        node._reader.join(timeout=5.0)
    finally:
        node.stop()
    out = node.output()
    assert code == 2, out
    errors = [line for line in node.lines if "error" in line.lower()]
    assert len(errors) == 1 and "configure failed" in errors[0] and "no place poses" in errors[0], out
    assert str(model16) in errors[0] and "Traceback" not in out


# --------------------------------------------------------------------------
# RViz: the config's topics, ~/places, ~/match; health; ~/relocalize when off
# --------------------------------------------------------------------------

# RViz display class -> the message type its topic carries.
DISPLAY_TYPES = {
    "rviz_default_plugins/Image": "sensor_msgs/msg/Image",
    "rviz_default_plugins/MarkerArray": "visualization_msgs/msg/MarkerArray",
    "rviz_default_plugins/Marker": "visualization_msgs/msg/Marker",
    "rviz_default_plugins/PoseWithCovariance": "geometry_msgs/msg/PoseWithCovarianceStamped",
}


def rviz_topics() -> dict[str, str]:
    """Topic -> message type of every display of config/vprsnn.rviz that has a topic."""
    config = yaml.safe_load(RVIZ_FILE.read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "map"
    topics = {}
    for display in manager["Displays"]:
        topic = (display.get("Topic") or {}).get("Value")
        if topic:
            topics[topic] = DISPLAY_TYPES[display["Class"]]
    return topics


def test_rviz_config_shows_the_camera_debug_image_places_and_match():
    topics = rviz_topics()
    assert topics[CAMERA] == "sensor_msgs/msg/Image"
    assert topics[f"/{NODE}/debug_image"] == "sensor_msgs/msg/Image"
    assert topics[f"/{NODE}/places"] == "visualization_msgs/msg/MarkerArray"
    assert topics[f"/{NODE}/match"] == "visualization_msgs/msg/Marker"


@pytest.mark.slow
def test_rviz_topics_places_match_and_health_over_dds(run, model16, route16):
    """With model16 (no poses): every topic the RViz config names exists (the camera as the node's
    input); ~/places has a sphere per place along x; ~/match follows ~/place_id; /diagnostics is
    ERROR without frames for input_timeout; ~/relocalize does not arm while off; ~/reload
    publishes ~/places again."""
    warm = not uncached_kernels(LANES)
    node, client = run(model16, input_timeout="1.0", relocalize="off")  # a bare off: YAML's false
    node.wait_ready()
    client.connect(node)

    expected = rviz_topics()
    graph = lambda: dict(client.node.get_topic_names_and_types())
    assert client.spin_until(lambda: all(t in graph() for t in expected), WAIT), (expected, graph())
    for topic, kind in expected.items():
        assert kind in graph()[topic], (topic, graph()[topic])
        infos = (client.node.get_subscriptions_info_by_topic(topic) if topic == CAMERA
                 else client.node.get_publishers_info_by_topic(topic))
        role = "read" if topic == CAMERA else "publish"
        assert NODE in [i.node_name for i in infos], f"the node does not {role} {topic}"

    assert client.spin_until(lambda: bool(client.places), WAIT), node.output()
    assert len(client.places[-1].markers) == 1
    marker = client.places[-1].markers[0]
    assert (marker.ns, marker.type, marker.header.frame_id) == ("places", Marker.SPHERE_LIST, "route")
    assert len(marker.points) == N_PLACES and len(marker.colors) == N_PLACES
    assert [p.x for p in marker.points] == [float(k) for k in range(N_PLACES)]

    # No frame yet, input_timeout 1 s: ERROR.
    assert client.spin_until(lambda: any(s.level == DiagnosticStatus.ERROR and "no frame for" in s.message
                                         for s in client.statuses), WAIT), \
        [(s.level, s.message) for s in client.statuses[-3:]]

    frames = list(route16.reference[:6])
    for k, image in enumerate(frames):
        assert client.send(image, (k, 9)) is not None, f"no estimate for frame {k}:\n{node.output()}"
    assert client.spin_until(lambda: len(client.matches) >= len(frames) and len(client.place_ids) >= len(frames)
                             and len(client.confidences) >= len(frames), WAIT)
    assert len(client.matches) == len(frames) and all(p >= 0 for p in client.place_ids)
    for k, (match, place, confidence) in enumerate(zip(client.matches, client.place_ids, client.confidences)):
        assert (match.header.stamp.sec, match.header.stamp.nanosec) == (k, 9)
        assert (match.header.frame_id, match.ns, match.type) == ("route", "match", Marker.SPHERE)
        assert match.pose.position.x == float(place), "~/match is not at ~/place_id"
        colour = (match.color.r, match.color.g, match.color.b, match.color.a)
        np.testing.assert_allclose(colour, confidence_colour(confidence), atol=1e-6)

    answer = client.call(client.relocalize_client, Trigger.Request())
    assert answer.success is False and "off" in answer.message
    before = len(client.places)
    assert client.call(client.reload_client, Trigger.Request()).success
    assert client.spin_until(lambda: len(client.places) > before, WAIT), "~/places not published after ~/reload"
    if warm:
        assert "compiling the Numba kernels" not in node.output(), "a warm cache reported as cold"
    assert node.stop() == 0, node.output()
