"""The localizer on a robot, over real DDS: ``/initialpose`` for nav2, the route and the match in
RViz, health in ``/diagnostics`` (each test that starts a node is ``slow``: a start takes seconds).

Each test starts the node as a subprocess (``python -m vprsnn_ros.nodes.localizer_node
--ros-args ...``, its own process group, killed at the end) on a ROS domain of its own
(conftest ``ros_domains``) and talks to it from an rclpy Context of this process
(``ros_harness``). Frames are sent in lock step (the next one after the node answered the
previous one, reliable QoS), so the node sees the same stream as an in-process
:class:`~vprsnn_ros.localizer.Localizer`: what the node must publish is predicted exactly,
offline, with the same plain logic
(:class:`~vprsnn_ros.nodes.relocalize.Relocalizer`). Nothing waits on fixed sleeps: every wait
spins until a condition holds or a generous deadline passes. Counts of ``/initialpose``
messages are settled with the node's own count (``relocalizations`` in ``/diagnostics``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from ros_harness import FRAME_TIMEOUT, NODE, READY_TIMEOUT, NodeProcess, RosClient, array_image, reliable_qos

try:  # optional: the `ros` marker skips these tests (fails them in CI) without them
    from diagnostic_msgs.msg import DiagnosticStatus
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from sensor_msgs.msg import Image
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
RVIZ_FILE = REPO / "config" / "vprsnn.rviz"
CAMERA = "/camera/image_raw"  # the camera topic of config/vprsnn.rviz: the node listens there
WAIT = 20.0  # connecting, a service appearing, settling: the node is already running
N_PLACES = 16
CONFIG16 = NetworkConfig(n_neurons=40, places_per_module=4, epochs=12, assign_presentations=16)  # = model16's
# Relocalization in these tests: three frames within one place of each other.
FRAMES, TOLERANCE, LONG_PERIOD = 3, 1, 1000.0
# Place order of frames that never agree: neighbours at least 7 places apart.
DISAGREEING = [1, 10, 3, 13, 6, 15, 0, 8, 2, 11]


# --------------------------------------------------------------------------
# the test's ROS side (ros_harness: the node process, the client base)
# --------------------------------------------------------------------------

class Client(RosClient):
    """The harness's client plus /initialpose, ~/match, ~/places, the camera and ~/relocalize."""

    service_timeout = WAIT

    def __init__(self, domain: int):
        super().__init__(domain, f"vprsnn_nav_test_{os.getpid()}")
        self.initialposes: list = []
        self.matches: list = []
        self.places: list = []
        sub = self.node.create_subscription
        self.sub_initialpose = sub(PoseWithCovarianceStamped, "/initialpose", self.initialposes.append,
                                   reliable_qos(100))
        sub(Marker, f"/{NODE}/match", self.matches.append, reliable_qos(100))
        sub(MarkerArray, f"/{NODE}/places", self.places.append, reliable_qos(1, latched=True))
        self.pub = self.node.create_publisher(Image, CAMERA, reliable_qos(10))
        self.relocalize_client = self.node.create_client(Trigger, f"/{NODE}/relocalize")

    def connect(self, node: NodeProcess) -> None:
        """Until the node takes our frames and we get its estimates, /initialpose and diagnostics."""
        self.wait_connected(node, [self.pub], subscriptions=[self.sub_estimate, self.sub_initialpose], services=(),
                            timeout=WAIT)

    def set_param(self, name: str, value: float) -> None:
        result = self.set_params(**{name: float(value)})[0]
        assert result.successful, result.reason

    def send(self, image: np.ndarray, stamp: tuple[int, int]) -> PoseWithCovarianceStamped | None:
        """One bgr8 frame; waits for the estimate carrying its stamp."""
        msg = array_image(image, "bgr8", stamp, frame_id="camera")
        return self.send_and_wait_estimate(self.pub, msg, FRAME_TIMEOUT, match_stamp=True)

    def settle(self, processed: int) -> dict:
        """Diagnostics once ``processed`` frames are done, and every /initialpose the node counts
        has arrived here; returns those diagnostics."""
        found: list[dict] = []

        def done() -> bool:
            for _, v in reversed(self.diagnostics):
                if int(v["frames_processed"]) >= processed:
                    found[:] = [v]
                    return len(self.initialposes) >= int(v["relocalizations"])
            return False

        assert self.spin_until(done, WAIT), f"not settled: {found}, {len(self.initialposes)} /initialpose"
        return found[0]


@pytest.fixture
def run(ros_domains, monkeypatch, start_node, client_factory):
    """Factory: (node, client) on a fresh domain; both are stopped at the end of the test
    (conftest's start_node and client_factory)."""
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # this process's participant too

    def start(model, **params) -> tuple[NodeProcess, Client]:
        domain = ros_domains.new()
        params = {"reliable": "true", "diagnostics_period": "0.25", **params}
        node = start_node(domain, model, params, image_topic=CAMERA)
        return node, client_factory(domain, client_class=Client)

    return start


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
def test_relocalize_with_a_model_without_poses_is_a_configure_error(ros_domains, model16, start_node):
    node = start_node(ros_domains.new(), model16, {"relocalize": "auto"}, image_topic=CAMERA)
    code = node.wait_exit(READY_TIMEOUT)  # once exited, its output is complete
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
