"""Integration tests of the ``localizer`` ROS 2 node (``vprsnn_localizer``): what it answers.

* lock step: the node's answers to the 16 places, one frame at a time, are the in-process
  ``Localizer``'s on the same frames, exactly (``~/estimate``, ``~/place_id``,
  ``~/confidence``), and its ``/diagnostics`` counters add up afterwards;
* ``publish_scores``: ``~/scores`` carries every place's score, stamped like the frame.

The node's other behaviour over DDS: bad input, unusable models and a flood in
``test_localizer_node_input.py``; reload, SIGINT, the lifecycle and the debug image in
``test_localizer_node_lifecycle.py``.

Each test starts the node as a separate process (``python -m
vprsnn_ros.nodes.localizer_node --ros-args ...``, its own process group) on a
``ROS_DOMAIN_ID`` of its own (conftest ``ros_domains``) with
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and talks to it over real DDS from an
rclpy Context of this process created on the same domain (``ros_harness``). Nothing is
synchronised with fixed sleeps: every wait spins the test node until a condition holds or
a (generous) deadline passes, because the machine may be busy. The model is the session's
16-place one (conftest ``model16``: 40 neurons, 4 places per module, 12 epochs).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from ros_harness import FRAME_TIMEOUT, NODE, NodeProcess, RosClient, array_image, reliable_qos, settled

try:  # optional: the `ros` marker skips these tests (fails them in CI) without them
    from sensor_msgs.msg import Image
except ImportError:
    pass

from vprsnn_ros.localizer import Localizer
from vprsnn_ros.snn.network import NetworkConfig

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("localhost_only")]

CONFIG = NetworkConfig(n_neurons=40, places_per_module=4, epochs=12, assign_presentations=16)  # = model16's
N_PLACES = 16


# --------------------------------------------------------------------------
# lock-step reference run (one node, shared by the two tests)
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lockstep_run(localhost_only, route16, model16, ros_domains):
    reference = route16.reference
    domain = ros_domains.new()
    node = NodeProcess(domain, model16, {"reliable": "true"})
    client = RosClient(domain, "vprsnn_lockstep_test")
    result = {"sent_stamps": [], "estimates": [], "timeouts": [], "diag": None,
              "model": str(model16)}
    try:
        pub = client.image_publisher(node)
        for k, frame in enumerate(reference):
            msg = array_image(frame, "bgr8", stamp=(k, 123))
            result["sent_stamps"].append((k, 123))
            est = client.send_and_wait_estimate(pub, msg)
            if est is None:
                result["timeouts"].append(k)
                break
            result["estimates"].append(est)
        n = len(client.estimates)
        client.spin_until(lambda: len(client.place_ids) >= n and len(client.confidences) >= n, 10.0)
        after = time.monotonic()
        result["diag"] = client.wait_diag(
            lambda d: int(d["frames_processed"]) >= len(result["sent_stamps"]) and settled(d),
            after=after) or client.latest_diag()
        # Late extra estimates (there must be none) are collected for the check too.
        result["all_estimates"] = list(client.estimates)
        result["place_ids"] = list(client.place_ids)
        result["confidences"] = list(client.confidences)
        result["exit"] = node.stop()
        result["output"] = node.output()
        yield result
    finally:
        client.close()
        if node.alive():
            node.kill()


@pytest.mark.slow
def test_lockstep_place_ids_match_offline_localizer(lockstep_run, route16, model16):
    reference = route16.reference
    run = lockstep_run
    assert not run["timeouts"], (f"no estimate for frame {run['timeouts'][0]} within "
                                 f"{FRAME_TIMEOUT} s; node output:\n{run['output']}")
    offline = Localizer(model16)
    answers = [offline.localize(frame) for frame in reference]
    expected = [a.place_id for a in answers]
    got = [int(round(e.pose.pose.position.x)) for e in run["estimates"]]
    stamps = [(e.header.stamp.sec, e.header.stamp.nanosec) for e in run["estimates"]]
    print(f"\nnode    {got}\noffline {expected}")
    assert len(run["all_estimates"]) == len(reference), "extra estimates were published"
    assert stamps == run["sent_stamps"], "estimate stamps differ from the image stamps"
    assert all(e.header.frame_id == "route" for e in run["estimates"])
    assert all(e.pose.pose.position.x == float(p) for e, p in zip(run["estimates"], got))
    assert got == expected, "node and in-process Localizer disagree frame by frame"
    correct = sum(g == k for k, g in enumerate(got))
    assert correct >= len(reference) / 2, f"only {correct}/{len(reference)} places recognised"
    # ~/place_id and ~/confidence carry the same answers (min_confidence is 0): the confidence
    # of each frame is the offline Localizer's, to the float32 of std_msgs/Float32.
    assert run["place_ids"] == got
    assert run["confidences"] == [float(np.float32(a.confidence)) for a in answers]


@pytest.mark.slow
def test_lockstep_diagnostics_add_up(lockstep_run):
    d = lockstep_run["diag"]
    assert d is not None, "no /diagnostics received"
    print(f"\ndiagnostics after the lock-step run: {d}")
    received = int(d["frames_received"])
    parts = sum(int(d[f"frames_{k}"]) for k in ("processed", "dropped", "rejected", "failed"))
    assert received == parts, f"received {received} != processed+dropped+rejected+failed {parts}"
    assert int(d["frames_processed"]) == len(lockstep_run["all_estimates"])
    assert received == len(lockstep_run["sent_stamps"])
    assert int(d["frames_dropped"]) == 0 and int(d["frames_rejected"]) == 0
    assert int(d["frames_failed"]) == 0
    assert int(d["places"]) == N_PLACES
    assert int(d["modules"]) == N_PLACES // CONFIG.places_per_module
    assert d["model"] == lockstep_run["model"]
    assert float(d["latency_p99_ms"]) >= float(d["latency_mean_ms"]) > 0.0


# --------------------------------------------------------------------------
# ~/scores
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_scores_topic_carries_every_place_score_with_the_stamp(start_node, client_factory, route16, model16,
                                                               ros_domains):
    """publish_scores: ~/scores is a 1 x N 32FC1 Image stamped like the frame; argmax = place id."""
    reference = route16.reference
    domain = ros_domains.new()
    node = start_node(domain, model16, {"reliable": "true", "publish_scores": "true"})
    client = client_factory(domain)
    scores = []
    client.node.create_subscription(Image, f"/{NODE}/scores", scores.append, reliable_qos(100))
    pub = client.image_publisher(node)
    for k in range(3):
        est = client.send_and_wait_estimate(pub, array_image(reference[k], "bgr8", stamp=(k, 7)))
        assert est is not None
    deadline = time.monotonic() + 10
    while len(scores) < 3 and time.monotonic() < deadline:
        client.executor.spin_once(timeout_sec=0.05)
    assert len(scores) == 3
    for k, msg in enumerate(scores):
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (k, 7)
        assert msg.encoding == "32FC1" and msg.height == 1 and msg.width == N_PLACES
        values = np.frombuffer(bytes(msg.data), dtype=np.float32)
        assert int(np.argmax(values)) == client.place_ids[k]

