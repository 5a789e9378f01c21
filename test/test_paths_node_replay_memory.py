"""The localizer's paths nobody tested (issue 18, item 6), continued from ``test_paths_node.py``
(which describes the set-up): the offline and replay side of pre-selection, and memory.

* online (``Localizer``) equals offline (``evaluate``) with pre-selection, for both
  sequence matchers; ``vprsnn replay-eval --preselect --readout --threshold
  --sequence-matcher seqslam`` (node, evaluator and bag player over DDS) gives the
  offline ``evaluate`` with the same overrides, frame by frame;
* configure/cleanup cycles of a large-ish model: resident memory comes back.

The models: conftest's ``ensemble16`` (two seeds of the tuned profile) and a module's
32-module model of full-size (400-neuron) modules.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ros_harness import FRAME_TIMEOUT, array_image, reliable_qos

try:  # optional: the `ros` marker skips (fails in CI) when they are missing
    from lifecycle_msgs.msg import Transition
    from sensor_msgs.msg import Image
except ImportError:
    pass

from vprsnn_ros.eval.evaluation import evaluate
from vprsnn_ros.io.preprocess import preprocess_batch
from vprsnn_ros.io.synthetic import make_route, write_route
from vprsnn_ros.localizer import Localizer
from vprsnn_ros.model.ensemble import load_model
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.train.training import train_network

pytestmark = pytest.mark.slow  # and `ros` on every test that starts a node

REPO = Path(__file__).resolve().parents[1]
IMAGE_TOPIC = "/paths_cam/image"
FRAME_ID = "paths_cam"
READY_TIMEOUT = 120.0   # node start on a busy 2-core machine: imports, model load, kernel warm-up


# --------------------------------------------------------------------------
# online == offline with pre-selection, both matchers; replay-eval over DDS
# --------------------------------------------------------------------------

@pytest.mark.parametrize("matcher", ["diagonal", "seqslam"])
def test_online_localizer_equals_offline_evaluate_with_preselection(ensemble16, route16, matcher):
    """Frame by frame (Localizer, the node's path) vs the whole matrix at once (evaluate, the
    CLI's path): the same sequence-matched scores to the bit, the same confidences."""
    from vprsnn_ros.eval.metrics import evaluate_scores

    query = route16.query
    members = load_model(ensemble16)
    online = Localizer(ensemble16, preselect_k=2, sequence_length=3, sequence_matcher=matcher)
    estimates = [online.localize(frame) for frame in query]
    report, S, gt = evaluate(members, preprocess_batch(query), split="all", preselect_k=2, sequence_length=3,
                             sequence_matcher=matcher)
    S_online = np.stack([e.scores for e in estimates])
    np.testing.assert_array_equal(S_online, S)
    assert [e.place_id for e in estimates] == [int(np.argmax(row)) if np.isfinite(row).any() else -1 for row in S]
    confidence = np.array([e.confidence for e in estimates])
    again = evaluate_scores(S_online, gt, confidence=confidence)
    assert again["pr_auc"] == report["pr_auc"] and again["recall"] == report["recall"]
    assert report["preselect_k"] == [2, 2] and report["readout"] == "zscore"
    assert report["sequence_matcher"] == matcher


@pytest.mark.ros
def test_replay_eval_with_overrides_equals_offline_evaluate(ensemble16, route16, ros_domains, tmp_path):
    """``vprsnn replay-eval --preselect 2 --readout mean --threshold 5 --sequence-length 3
    --sequence-matcher seqslam``: bag player, node and evaluator over DDS; every frame's answer is
    the offline evaluation's with the same overrides (each of which changes the answers)."""
    from vprsnn_ros.io.bags import read_bag_frames, write_bag_from_folder
    from vprsnn_ros.io.sources import load_traverse

    overrides = dict(preselect_k=2, readout="mean", threshold=5, sequence_length=3, sequence_matcher="seqslam")
    _, query_dir = write_route(tmp_path / "route", 16, seed=3)
    bag = write_bag_from_folder(query_dir, tmp_path / "query_bag", rate_hz=10.0, start_time_ns=10**18)
    out = tmp_path / "report"
    env = dict(os.environ, ROS_DOMAIN_ID=str(ros_domains.new()), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    cmd = [sys.executable, "-m", "vprsnn_ros.cli", "replay-eval", "--model", str(ensemble16), "--bag", str(bag),
           "--report", str(out), "--preselect", "2", "--readout", "mean", "--threshold", "5",
           "--sequence-length", "3", "--sequence-matcher", "seqslam", "--timeout", "300"]
    try:
        proc = subprocess.run(cmd, env=env, cwd=str(REPO), capture_output=True, text=True, timeout=420)
    except subprocess.TimeoutExpired as exc:  # run() has killed it
        pytest.fail(f"replay-eval still running after 420 s: {exc.stderr}")
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(out.glob("*.log")))
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}\n{logs}"
    report = json.loads((out / "report.json").read_text())
    with (out / "frames.csv").open() as f:
        rows = list(csv.DictReader(f))

    members = load_model(ensemble16)
    cfg = members[0].config
    pixels = load_traverse(bag, cfg.image_size, cfg.patch).pixels
    offline, S, _ = evaluate(members, pixels, split="all", **overrides)
    expected = [int(np.argmax(row)) if np.isfinite(row).any() else -1 for row in S]
    assert report["frames_played"] == 16 and report["frames_dropped"] == 0, report
    assert [int(r["place_id"]) for r in rows] == expected
    assert report["recall"] == offline["recall"]
    assert report["pr_auc"] == pytest.approx(offline["pr_auc"], abs=1e-9)
    assert report["sequence_matcher"] == "seqslam" and report["readout"] == "mean", report
    # The frames' confidences: the online Localizer's with the same overrides (the evaluator computes
    # them from the float32 scores it receives, hence the 1e-6).
    online = Localizer(ensemble16, preselect_k=2, readout="mean", hyperactive_threshold=5, sequence_length=3,
                       sequence_matcher="seqslam")
    conf = [online.localize(f).confidence for f in read_bag_frames(bag).images]
    np.testing.assert_allclose([float(r["confidence"]) for r in rows], conf, rtol=0, atol=1.5e-6)
    # Each override matters: without it the offline answers differ.
    for name, default in (("preselect_k", 0), ("readout", None), ("threshold", None)):
        _, S_default, _ = evaluate(members, pixels, split="all", **{**overrides, name: default})
        assert not np.array_equal(S_default, S), f"--{name} changes nothing on this model"
    # The report says what ran, as evaluate's does: T and the modules pre-selected per member.
    missing = {key: offline[key] for key in ("hyperactive_threshold", "preselect_k") if report.get(key) != offline[key]}
    assert not missing, f"the replay report does not record {missing} (it has {sorted(report)})"


# --------------------------------------------------------------------------
# configure/cleanup cycles of a large-ish model: resident memory comes back
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def large_model(tmp_path_factory) -> Path:
    """32 modules of 400 neurons (full-size modules, one place each, 1 epoch): 40 MB of weights."""
    reference, _ = make_route(32, seed=4)
    out = tmp_path_factory.mktemp("paths_large") / "large"
    train_network(NetworkConfig(n_neurons=400, places_per_module=1, epochs=1, assign_presentations=1),
                  [preprocess_batch(reference)], [f"p{k:02d}" for k in range(32)], out, workers=2)
    return out


@pytest.mark.ros
def test_configure_cleanup_cycles_give_the_memory_back(large_model, ros_domains, start_node, client_factory):
    """Six cycles of configure, activate, one frame, deactivate, cleanup over ~/change_state.

    Resident memory (VmRSS of the node process) is read after each configure and each cleanup.
    The model's arrays are large (weights alone: 32 x 784 x 400 float32 = 40 MB, single
    allocations that glibc maps and unmaps), so RSS sees them come and go; allocator and
    interpreter noise is a few MB. Two checks, each with a tolerance of a quarter of the
    weights (10 MB):
    * cleanup frees the model: after every cleanup RSS is at least 3/4 of the weights below
      what it was with the model loaded;
    * no cycle keeps anything: RSS after the last cleanup is within the tolerance of RSS after
      the first (which already holds the JIT code, imports and allocator pools). A leak of the
      model per cycle would add 5 x 40 MB.
    """
    frames = make_route(4, seed=4)[0]
    weights_kb = 32 * 784 * 400 * 4 // 1024
    tolerance_kb = weights_kb // 4
    domain = ros_domains.new()
    # test_paths_node.py's node: no params file, more time to start and to stop.
    node = start_node(domain, large_model, {"reliable": "true", "autostart": "false"}, image_topic=IMAGE_TOPIC,
                      params_file=None, ready_timeout=READY_TIMEOUT, stop_timeout=15.0)
    client = client_factory(domain)
    pub = client.node.create_publisher(Image, IMAGE_TOPIC, reliable_qos(100))
    if not node.wait_for_line("waiting for ~/change_state", READY_TIMEOUT):
        pytest.fail(f"node did not come up unconfigured:\n{node.output()}")
    client.watched = node
    loaded, released = [], []
    for cycle in range(6):
        assert client.transition(Transition.TRANSITION_CONFIGURE, READY_TIMEOUT), node.output()
        assert client.transition(Transition.TRANSITION_ACTIVATE, READY_TIMEOUT), node.output()
        assert client.spin_until(lambda: pub.get_subscription_count() >= 1, 30.0), "not subscribed"
        n = len(client.confidences)
        pub.publish(array_image(frames[cycle % 4], stamp=(cycle, 0), frame_id=FRAME_ID))
        assert client.spin_until(lambda n=n: len(client.confidences) > n, FRAME_TIMEOUT), node.output()
        loaded.append(node.rss_kb())
        assert client.transition(Transition.TRANSITION_DEACTIVATE, READY_TIMEOUT), node.output()
        assert client.spin_until(lambda: pub.get_subscription_count() == 0, 30.0), "still subscribed"
        assert client.transition(Transition.TRANSITION_CLEANUP, READY_TIMEOUT), node.output()
        assert node.wait_for_line("model released", 10.0, count=cycle + 1), node.output()
        released.append(node.rss_kb())
    print(f"\nRSS MB with the model   {[round(r / 1024, 1) for r in loaded]}"
          f"\nRSS MB after cleanup    {[round(r / 1024, 1) for r in released]}")
    for cycle, (with_model, without) in enumerate(zip(loaded, released)):
        assert with_model - without >= weights_kb - tolerance_kb, (
            f"cycle {cycle}: cleanup gave back only {(with_model - without) / 1024:.1f} MB of a model with "
            f"{weights_kb / 1024:.0f} MB of weights (RSS {with_model / 1024:.1f} -> {without / 1024:.1f} MB)")
    assert released[-1] - released[0] <= tolerance_kb, (
        f"RSS after cleanup grew by {(released[-1] - released[0]) / 1024:.1f} MB over 5 cycles: {released}")
    assert node.stop() == 0, node.output()
