"""Integration tests of the ``localizer`` ROS 2 node (``vprsnn_localizer``): its client.

* ``~/reload``: a failed one keeps the old model answering, a successful one answers as a
  fresh ``Localizer`` on the new model (an 8-place one), frame by frame;
* SIGINT: a clean exit, code 0, within ``STOP_TIMEOUT``;
* the managed (lifecycle) node, driven over ``~/change_state`` from this process:
  nothing is published until configure + activate, deactivate keeps the model, cleanup
  frees it; a bad model at configure leaves it unconfigured and alive;
* autostart (the default) is active at once, and ``~/debug_image`` shows the frame beside
  the thumbnail of the place it matched.

Like ``test_localizer_node.py`` (which describes the set-up): the node in a process of its
own on a ROS domain of its own, talked to over real DDS (``ros_harness``), every wait with
a deadline and no fixed sleep; the models are the session's ``model16`` and ``model8``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from ros_harness import (
    FRAME_TIMEOUT,
    IMAGE_TOPIC,
    NODE,
    READY_TIMEOUT,
    STOP_TIMEOUT,
    NodeProcess,
    RosClient,
    array_image,
    reliable_qos,
)

try:  # optional: the `ros` marker skips these tests (fails them in CI) without them
    from lifecycle_msgs.msg import Transition
    from sensor_msgs.msg import Image
except ImportError:
    pass

from vprsnn_ros.eval.views import BANNER, THUMB_SIZE, make_thumbnail, thumbnail_panel
from vprsnn_ros.io.preprocess import preprocess_batch
from vprsnn_ros.io.synthetic import make_route
from vprsnn_ros.localizer import Localizer
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.train.training import train_network

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("localhost_only")]

CONFIG = NetworkConfig(n_neurons=40, places_per_module=4, epochs=12, assign_presentations=16)  # = model16's
N_PLACES = 16


@pytest.fixture(scope="module")
def model8(tmp_path_factory) -> Path:
    reference, _ = make_route(8, seed=11)
    out = tmp_path_factory.mktemp("node_models") / "m8"
    train_network(CONFIG, [preprocess_batch(reference)], [f"q{k:02d}" for k in range(8)],
                  out, workers=1)
    return out


# --------------------------------------------------------------------------
# reload
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_reload_failure_keeps_model_and_success_switches(start_node, client_factory, route16,
                                                         model16, model8, tmp_path, ros_domains):
    """A failed ~/reload keeps answering with the old model; a successful one answers with the new
    model exactly as a fresh Localizer on it does, frame by frame."""
    reference = route16.reference
    domain = ros_domains.new()
    node = start_node(domain, model16, {"reliable": "true", "diagnostics_period": "0.25"})
    client = client_factory(domain)
    pub = client.image_publisher(node)

    missing = tmp_path / "no_such_model"
    result = client.set_params(model_path=str(missing))[0]
    assert result.successful, result.reason
    answer = client.reload()
    print(f"\nreload of a missing model: {answer}")
    assert answer.success is False
    assert str(model16) in answer.message, "the failure message does not name the kept model"
    assert node.alive()

    est = client.send_and_wait_estimate(pub, array_image(reference[5], "bgr8", (5, 0)), match_stamp=True)
    assert est is not None, f"no estimate after a failed reload; output:\n{node.output()}"
    # The node's first frame, answered by the kept model.
    assert est.pose.pose.position.x == Localizer(model16).localize(reference[5]).place_id
    d = client.wait_diag(lambda d: int(d["frames_processed"]) >= 1, after=time.monotonic())
    assert d is not None and int(d["places"]) == N_PLACES and d["model"] == str(model16)

    result = client.set_params(model_path=str(model8))[0]
    assert result.successful, result.reason
    answer = client.reload()
    print(f"reload of the 8-place model: {answer}")
    assert answer.success is True, answer.message
    d = client.wait_diag(lambda d: int(d["places"]) == 8, after=time.monotonic())
    assert d is not None, f"diagnostics never reported 8 places; last {client.latest_diag()}"
    assert d["model"] == str(model8)
    # The reloaded node is a fresh Localizer on model8: the same answers on the same frames.
    frames, _ = make_route(8, seed=11)  # model8's own places
    fresh = Localizer(model8)
    expected = [fresh.localize(frame) for frame in frames]
    before = len(client.confidences)
    got = []
    for k, frame in enumerate(frames):
        est = client.send_and_wait_estimate(pub, array_image(frame, "bgr8", (100 + k, 0)), match_stamp=True)
        assert est is not None, f"no estimate for frame {k} after reloading; output:\n{node.output()}"
        got.append(int(est.pose.pose.position.x))
    assert got == [e.place_id for e in expected], "the reloaded node answers unlike a fresh Localizer on the model"
    assert client.spin_until(lambda: len(client.confidences) >= before + len(frames), 10.0)
    assert client.confidences[before:] == [float(np.float32(e.confidence)) for e in expected]
    code = node.stop()
    assert code == 0, node.output()


# --------------------------------------------------------------------------
# clean exit
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_sigint_exits_cleanly(start_node, client_factory, route16, model16, ros_domains):
    reference = route16.reference
    domain = ros_domains.new()
    node = start_node(domain, model16, {"reliable": "true"})
    client = client_factory(domain)
    pub = client.image_publisher(node)
    assert client.send_and_wait_estimate(pub, array_image(reference[1], "bgr8")) is not None
    code = node.stop(timeout=STOP_TIMEOUT)
    elapsed = node.stopped_after
    print(f"\nexit code {code} after {elapsed:.2f} s")
    assert code is not None, f"still running {STOP_TIMEOUT} s after SIGINT; output:\n{node.output()}"
    assert code == 0, f"exit code {code}; output:\n{node.output()}"
    assert "Traceback" not in node.output(), node.output()


# --------------------------------------------------------------------------
# managed (lifecycle) node
# --------------------------------------------------------------------------

QUIET_WINDOW = 3.0  # seconds in which an inactive node must publish nothing


def start_unconfigured(start_node, domain: int, model) -> NodeProcess:
    node = start_node(domain, model, {"reliable": "true", "autostart": "false", "diagnostics_period": "0.25"})
    if node.wait_for_line("waiting for ~/change_state", READY_TIMEOUT) is None:
        pytest.fail(f"node did not come up unconfigured; output:\n{node.output()}")
    return node


def quiet(client: RosClient, window: float = QUIET_WINDOW) -> bool:
    """Spin for ``window`` seconds; True when nothing came on the node's outputs."""
    before = (len(client.estimates), len(client.place_ids), len(client.confidences), len(client.diagnostics))
    client.spin_until(lambda: False, window)
    return before == (len(client.estimates), len(client.place_ids), len(client.confidences),
                      len(client.diagnostics))


@pytest.mark.slow
def test_lifecycle_transitions_over_dds(start_node, client_factory, route16, model16, ros_domains):
    """autostart:=false: nothing published until configure + activate; deactivate keeps the model;
    cleanup frees it; every transition is a ~/change_state call from this process."""
    reference = route16.reference
    domain = ros_domains.new()
    node = start_unconfigured(start_node, domain, model16)
    client = client_factory(domain)
    pub = client.node.create_publisher(Image, IMAGE_TOPIC, reliable_qos())
    assert client.state() == "unconfigured"
    assert "loaded" not in node.output(), "the model was loaded before configure"
    pub.publish(array_image(reference[0], "bgr8", (1, 0)))
    assert quiet(client), "an unconfigured node published"
    assert pub.get_subscription_count() == 0, "an unconfigured node subscribes to the images"

    assert client.transition(Transition.TRANSITION_CONFIGURE), node.output()
    assert client.state() == "inactive"
    assert node.count_lines("kernels warm", 1) == 1, node.output()
    pub.publish(array_image(reference[0], "bgr8", (2, 0)))
    assert quiet(client), "an inactive node published"
    assert pub.get_subscription_count() == 0, "an inactive node subscribes to the images"

    assert client.transition(Transition.TRANSITION_ACTIVATE), node.output()
    assert client.state() == "active"
    client.wait_connected(node, [pub])
    est = client.send_and_wait_estimate(pub, array_image(reference[3], "bgr8", (3, 0)), match_stamp=True)
    assert est is not None, f"no estimate once active; output:\n{node.output()}"

    assert client.transition(Transition.TRANSITION_DEACTIVATE), node.output()
    assert client.state() == "inactive"
    assert client.spin_until(lambda: pub.get_subscription_count() == 0, 10.0), "still subscribed"
    pub.publish(array_image(reference[4], "bgr8", (4, 0)))
    assert quiet(client), "a deactivated node published"

    # Re-activating needs no new load: the model was kept.
    assert client.transition(Transition.TRANSITION_ACTIVATE), node.output()
    assert client.spin_until(lambda: pub.get_subscription_count() >= 1, 10.0)
    est = client.send_and_wait_estimate(pub, array_image(reference[5], "bgr8", (5, 0)), match_stamp=True)
    assert est is not None, f"no estimate after re-activation; output:\n{node.output()}"
    assert node.count_lines("kernels warm", 2, timeout=1.0) == 1, node.output()

    assert client.transition(Transition.TRANSITION_DEACTIVATE)
    assert client.transition(Transition.TRANSITION_CLEANUP), node.output()
    assert client.state() == "unconfigured"
    assert node.wait_for_line("model released", 5.0) is not None, node.output()
    # An invalid transition is refused and changes nothing.
    assert not client.transition(Transition.TRANSITION_ACTIVATE)
    assert client.state() == "unconfigured"
    # Configure again loads the model again.
    assert client.transition(Transition.TRANSITION_CONFIGURE)
    assert node.count_lines("kernels warm", 2) == 2, node.output()
    code = node.stop()
    assert code == 0, node.output()
    assert "Traceback" not in node.output(), node.output()


@pytest.mark.slow
def test_bad_model_at_configure_leaves_node_unconfigured_and_alive(start_node, client_factory, route16,
                                                                    model16, tmp_path, ros_domains):
    reference = route16.reference
    domain = ros_domains.new()
    missing = tmp_path / "no_such_model"
    node = start_unconfigured(start_node, domain, missing)
    client = client_factory(domain)
    assert client.transition(Transition.TRANSITION_CONFIGURE) is False
    assert client.state() == "unconfigured"
    assert node.alive(), node.output()
    node.count_lines("configure failed", 1)
    errors = [line for line in node.lines if "error" in line.lower()]
    print(f"\nerror lines: {errors}")
    assert len(errors) == 1 and "configure failed" in errors[0] and str(missing) in errors[0], node.output()
    assert "stays unconfigured" in errors[0]
    # Fixed model_path: the same node configures and works.
    assert client.set_params(model_path=str(model16))[0].successful
    assert client.transition(Transition.TRANSITION_CONFIGURE), node.output()
    assert client.transition(Transition.TRANSITION_ACTIVATE), node.output()
    pub = client.node.create_publisher(Image, IMAGE_TOPIC, reliable_qos())
    client.wait_connected(node, [pub])
    assert client.send_and_wait_estimate(pub, array_image(reference[2], "bgr8", (2, 0))) is not None
    code = node.stop()
    assert code == 0, node.output()


@pytest.mark.slow
def test_autostart_is_active_and_debug_image_shows_the_frame_beside_its_thumbnail(
        start_node, client_factory, route16, model16, ros_domains):
    import cv2

    reference = route16.reference
    domain = ros_domains.new()
    node = start_node(domain, model16, {"reliable": "true"})  # model16 stores thumbnails
    client = client_factory(domain)
    views: list[Image] = []
    debug_sub = client.node.create_subscription(Image, f"/{NODE}/debug_image", views.append, reliable_qos())
    node.wait_ready()
    assert client.state() == "active"  # autostart (the default)
    pub = client.node.create_publisher(Image, IMAGE_TOPIC, reliable_qos())
    client.wait_connected(node, [pub])
    assert client.spin_until(lambda: debug_sub.get_publisher_count() >= 1, 10.0)
    # The node publishes the view only once it has seen our subscription: frames until one comes.
    sent = 0
    while not views and sent < 10:
        assert client.send_and_wait_estimate(pub, array_image(reference[0], "bgr8", (0, sent))) is not None
        sent += 1
        client.spin_until(lambda: bool(views), 3.0)
    assert views, f"no debug image with a subscriber; output:\n{node.output()}"

    # A frame the model recognises as its own place: the offline Localizer fed the frames the
    # node was fed predicts the node's answer.
    def offline(k: int) -> int:
        loc = Localizer(model16)
        for _ in range(sent):
            loc.localize(reference[0])
        return loc.localize(reference[k]).place_id

    k = next(k for k in range(1, N_PLACES) if offline(k) == k)
    views.clear()
    est = client.send_and_wait_estimate(pub, array_image(reference[k], "bgr8", (k, 5)), match_stamp=True)
    assert est is not None, node.output()
    assert int(round(est.pose.pose.position.x)) == k
    assert client.spin_until(lambda: len(views) >= 1, FRAME_TIMEOUT), f"no debug image; {node.output()}"
    msg = views[-1]
    assert msg.encoding == "bgr8" and (msg.header.stamp.sec, msg.header.stamp.nanosec) == (k, 5)
    view = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
    scale = (msg.height - BANNER) // THUMB_SIZE[1]
    panel_w = THUMB_SIZE[0] * scale
    assert view.shape == (BANNER + THUMB_SIZE[1] * scale, 2 * panel_w, 3)
    right = view[BANNER:, panel_w:]
    assert np.array_equal(right, thumbnail_panel(make_thumbnail(reference[k]), scale)), \
        "the right panel is not the frame's own thumbnail"
    other = (k + 1) % N_PLACES
    assert not np.array_equal(right, thumbnail_panel(make_thumbnail(reference[other]), scale))
    left = view[BANNER:, :panel_w].astype(int)
    expected_left = cv2.resize(reference[k], (panel_w, THUMB_SIZE[1] * scale), interpolation=cv2.INTER_AREA)
    assert np.abs(left - expected_left).max() <= 1, "the left panel is not the query frame"
    assert view[:BANNER].any(), "no text in the banner"
    code = node.stop()
    assert code == 0, node.output()
