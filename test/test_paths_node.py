"""The localizer's paths nobody tested (issue 18, item 6), over real DDS wherever a node is involved.

Every test starts ``python -m vprsnn_ros.nodes.localizer_node`` as a process of
its own on a ROS domain of its own (``ros_domains`` of conftest.py, loopback
discovery) and talks to it from an rclpy Context of this process. Frames are
sent lock-step (one frame, wait for its answer) wherever the answer is
compared with the offline :class:`Localizer`: with sequence length and random
streams indexed by the frame's position in the stream, the node's answer to
its k-th frame is then exactly the offline answer to frame k. Nothing waits
on a fixed sleep; every wait has a deadline, and every process is killed at
the end of its test.

* the node on a 2-seed ensemble with pre-selection (K = 2 of 4 modules) and
  the z-score readout answers exactly as ``Localizer`` offline, frame by frame;
* online (``Localizer``) equals offline (``evaluate``) with pre-selection, for
  both sequence matchers; ``vprsnn replay-eval --preselect --readout
  --threshold --sequence-matcher seqslam`` (node, evaluator and bag player over
  DDS) gives the offline ``evaluate`` with the same overrides, frame by frame;
* ``vprsnn extend`` then ``~/reload`` while frames stream at 30 Hz, with a
  failed reload in the middle;
* configure/cleanup cycles of a large-ish model: resident memory comes back;
* ``set_parameters`` of ``preselect_k`` and ``sequence_matcher`` take effect
  (and a bad value is refused);
* ``~/estimate`` of a model trained from an odometry bag: per-place poses and
  covariance; ``min_confidence`` turns the place id into -1.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

try:  # optional: the `ros` marker skips (fails in CI) when they are missing
    import rclpy
    from builtin_interfaces.msg import Time
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float32, Int32
    from std_srvs.srv import Trigger
except ImportError:
    rclpy = None

from vprsnn_ros.eval.evaluation import evaluate
from vprsnn_ros.io.preprocess import preprocess_batch
from vprsnn_ros.io.synthetic import make_route, write_route
from vprsnn_ros.localizer import Localizer
from vprsnn_ros.model.ensemble import load_model, write_ensemble_manifest
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.snn.profiles import TUNED
from vprsnn_ros.train.training import train_network

pytestmark = pytest.mark.slow  # and `ros` on every test that starts a node

REPO = Path(__file__).resolve().parents[1]
NODE = "vprsnn_localizer"
IMAGE_TOPIC = "/paths_cam/image"
READY_TIMEOUT = 120.0   # node start on a busy 2-core machine: imports, model load, kernel warm-up
FRAME_TIMEOUT = 30.0
CONFIG = NetworkConfig(n_neurons=40, places_per_module=4, epochs=12, assign_presentations=16)


# --------------------------------------------------------------------------
# the node process and this process's ROS side
# --------------------------------------------------------------------------

class NodeProcess:
    """The localizer in its own process group; output collected by a reader thread."""

    def __init__(self, domain: int, model: Path | str, params: dict | None = None):
        cmd = [sys.executable, "-m", "vprsnn_ros.nodes.localizer_node", "--ros-args",
               "-p", f"model_path:={model}", "-r", f"image:={IMAGE_TOPIC}"]
        for name, value in (params or {}).items():
            cmd += ["-p", f"{name}:={value}"]
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                   PYTHONUNBUFFERED="1")
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(cmd, cwd=str(REPO), env=env, start_new_session=True,
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

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for_line(self, needle: str, timeout: float, count: int = 1) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(needle in line for line in self.lines) < count:
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
            return True

    def wait_ready(self) -> None:
        if not self.wait_for_line("ready:", READY_TIMEOUT):
            pytest.fail(f"node not ready within {READY_TIMEOUT} s (exit {self.proc.poll()}):\n{self.output()}")

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGINT to the group, SIGKILL after ``timeout``; the exit code (None if killed)."""
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self._reader.join(timeout=5)
        return code


def reliable(depth: int = 100) -> QoSProfile:
    return QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=depth)


def image_msg(image: np.ndarray, stamp: tuple[int, int]) -> Image:
    a = np.ascontiguousarray(image)
    msg = Image(height=a.shape[0], width=a.shape[1], encoding="bgr8" if a.ndim == 3 else "mono8",
                is_bigendian=0, step=a.shape[1] * (a.shape[2] if a.ndim == 3 else 1), data=a.tobytes())
    msg.header.stamp = Time(sec=stamp[0], nanosec=stamp[1])
    msg.header.frame_id = "paths_cam"
    return msg


def stamp_of(msg) -> tuple[int, int]:
    return msg.header.stamp.sec, msg.header.stamp.nanosec


class Client:
    """An rclpy Context on the node's domain, subscribed to its outputs."""

    def __init__(self, domain: int):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(f"paths_test_{domain}_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.estimates: list = []
        self.place_ids: list[int] = []
        self.confidences: list[float] = []
        self.scores: list = []
        self.diagnostics: list[dict] = []
        n = self.node
        self.sub_estimate = n.create_subscription(PoseWithCovarianceStamped, f"/{NODE}/estimate",
                                                  self.estimates.append, reliable(1000))
        n.create_subscription(Int32, f"/{NODE}/place_id", lambda m: self.place_ids.append(m.data), reliable(1000))
        n.create_subscription(Float32, f"/{NODE}/confidence", lambda m: self.confidences.append(m.data),
                              reliable(1000))
        n.create_subscription(Image, f"/{NODE}/scores", self.scores.append, reliable(1000))
        n.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, reliable(100))
        self.pub = n.create_publisher(Image, IMAGE_TOPIC, reliable(100))
        self.reload_client = n.create_client(Trigger, f"/{NODE}/reload")
        self.param_client = n.create_client(SetParameters, f"/{NODE}/set_parameters")
        self.change_client = n.create_client(ChangeState, f"/{NODE}/change_state")
        self.watched: NodeProcess | None = None  # a service call stops waiting when it dies
        self.state_client = n.create_client(GetState, f"/{NODE}/get_state")

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if status.name == NODE:
                self.diagnostics.append({kv.key: kv.value for kv in status.values})

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
            self.executor.spin_once(timeout_sec=min(0.02, left))
        return True

    def connect(self, node: NodeProcess, timeout: float = 60.0) -> None:
        self.watched = node
        ok = self.spin_until(lambda: self.pub.get_subscription_count() >= 1
                             and self.sub_estimate.get_publisher_count() >= 1
                             and self.reload_client.service_is_ready()
                             and self.param_client.service_is_ready(), timeout)
        assert ok, f"not connected to the node within {timeout} s; alive {node.alive()}:\n{node.output()}"

    def call(self, client, request, timeout: float = 90.0):
        assert client.wait_for_service(timeout_sec=timeout), f"no service {client.srv_name}"
        future = client.call_async(request)
        node = self.watched
        answered = self.spin_until(lambda: future.done() or (node is not None and not node.alive()), timeout)
        assert answered and future.done(), (f"no answer from {client.srv_name} (node alive: "
                                            f"{node.alive() if node else '?'}):\n{node.output() if node else ''}")
        return future.result()

    def set_params(self, **values):
        params = []
        for name, value in values.items():
            if isinstance(value, bool):
                v = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
            elif isinstance(value, int):
                v = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
            elif isinstance(value, float):
                v = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
            else:
                v = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
            params.append(Parameter(name=name, value=v))
        return self.call(self.param_client, SetParameters.Request(parameters=params)).results

    def reload(self):
        return self.call(self.reload_client, Trigger.Request())

    def transition(self, transition_id: int) -> bool:
        return bool(self.call(self.change_client, ChangeState.Request(
            transition=Transition(id=transition_id)), timeout=READY_TIMEOUT).success)

    # ---------------------------------------------------------------- streaming

    def start_stream(self, frames: list, rate_hz: float = 30.0) -> None:
        """Frames to publish in turn at ``rate_hz`` while :meth:`stream_until` spins; frame k of the
        stream is stamped (k, place), so that each answer names the frame and its place."""
        self._frames, self._period = frames, 1.0 / rate_hz
        self._next = time.monotonic()
        self.sent: list[tuple[int, int, float]] = []  # (sequence number, place, monotonic time)

    def stream_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            now = time.monotonic()
            if now > deadline:
                return False
            if now >= self._next:
                seq = len(self.sent)
                place = seq % len(self._frames)
                self.pub.publish(image_msg(self._frames[place], (seq, place)))
                self.sent.append((seq, place, now))
                self._next += self._period
                if now - self._next > 0.1:  # fell behind (busy machine): no burst to catch up
                    self._next = now + self._period
            self.executor.spin_once(timeout_sec=max(0.0, min(0.005, self._next - time.monotonic())))
        return True

    def answered(self, after: float = 0.0) -> dict[int, tuple[int, int]]:
        """{sequence number: (place of the frame, place answered)} for frames sent after ``after``."""
        sent_at = {seq: t for seq, _, t in self.sent}
        return {e.header.stamp.sec: (e.header.stamp.nanosec, int(e.pose.pose.position.x)) for e in self.estimates
                if e.header.stamp.sec in sent_at and sent_at[e.header.stamp.sec] > after}

    def settled_diagnostics(self, node: NodeProcess, timeout: float = 30.0) -> dict:
        """Diagnostics once every frame received is accounted for and no more come in (two
        consecutive messages agree). Frames a KEEP_LAST(1) reader replaced before the node took
        them never reach its counters: received may be below what was sent."""
        def ok(k: int) -> bool:
            d, before = self.diagnostics[k], self.diagnostics[k - 1]
            parts = sum(int(d[f"frames_{x}"]) for x in ("processed", "dropped", "rejected", "failed"))
            return int(d["frames_received"]) == parts and d["frames_received"] == before["frames_received"]
        start = len(self.diagnostics) + 1
        found = self.spin_until(lambda: any(ok(k) for k in range(start, len(self.diagnostics))), timeout)
        assert found, f"diagnostics never settled; last {self.diagnostics[-1:]}:\n{node.output()}"
        return next(self.diagnostics[k] for k in range(start, len(self.diagnostics)) if ok(k))

    def lockstep(self, node: NodeProcess, frames, first_stamp: int = 0) -> list[dict]:
        """Send each frame and wait for its ~/place_id and ~/confidence (and ~/estimate when the
        place id is defined); returns one dict per frame."""
        answers = []
        for k, frame in enumerate(frames):
            n_conf = len(self.confidences)
            self.pub.publish(image_msg(frame, (first_stamp + k, 7)))
            ok = self.spin_until(lambda n=n_conf: len(self.confidences) > n and len(self.place_ids) > n,
                                 FRAME_TIMEOUT)
            assert ok, f"no answer to frame {k} within {FRAME_TIMEOUT} s:\n{node.output()}"
            assert len(self.confidences) == n_conf + 1, "more than one answer to one frame"
            answers.append({"place_id": self.place_ids[-1], "confidence": self.confidences[-1]})
        # The estimates (published only for defined places) and scores come on their own topics.
        self.spin_until(lambda: False, 0.3)
        by_stamp = {stamp_of(e): e for e in self.estimates}
        scores = {stamp_of(s): s for s in self.scores}
        for k, a in enumerate(answers):
            a["estimate"] = by_stamp.get((first_stamp + k, 7))
            a["scores"] = scores.get((first_stamp + k, 7))
        return answers


@pytest.fixture
def node_factory():
    started: list[NodeProcess] = []

    def start(*args, **kwargs) -> NodeProcess:
        node = NodeProcess(*args, **kwargs)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop(timeout=5.0)


@pytest.fixture
def client_factory():
    clients: list[Client] = []

    def make(domain: int) -> Client:
        c = Client(domain)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def assert_same_answers(got: list[dict], expected: list, label: str) -> None:
    """Node answers vs offline Estimates: place id exactly, confidence as its float32, the
    estimate's x (no poses: the place id) and, when published, every score as float32."""
    assert [a["place_id"] for a in got] == [e.place_id for e in expected], label
    assert [a["confidence"] for a in got] == [float(np.float32(e.confidence)) for e in expected], label
    for k, (a, e) in enumerate(zip(got, expected)):
        if e.place_id >= 0:
            assert a["estimate"] is not None, f"{label}: no estimate for frame {k}"
            assert a["estimate"].pose.pose.position.x == float(e.place_id), f"{label}: frame {k}"
        if a["scores"] is not None:
            values = np.frombuffer(bytes(a["scores"].data), np.float32)
            np.testing.assert_array_equal(values, np.asarray(e.scores, np.float32), err_msg=f"{label}: frame {k}")


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ensemble(route16, tmp_path_factory) -> Path:
    """Two seeds of the tuned profile (z-score readout) on conftest's 16 places, 4 modules each."""
    root = tmp_path_factory.mktemp("paths_ensemble") / "ensemble"
    pixels, names = route16.ref_pixels, [f"p{k:02d}" for k in range(16)]
    for seed in (0, 1):
        train_network(CONFIG.with_(seed=seed), [pixels], names, root / f"seed_{seed}", workers=2, profile=TUNED)
    write_ensemble_manifest(root, ["seed_0", "seed_1"])
    return root


# --------------------------------------------------------------------------
# 1. ensemble + pre-selection + z-score readout over DDS == Localizer offline
# --------------------------------------------------------------------------

@pytest.mark.ros
def test_node_on_an_ensemble_with_preselection_and_zscore_equals_localizer(
        ensemble, route16, ros_domains, node_factory, client_factory):
    query = route16.query
    members = load_model(ensemble)
    assert len(members) == 2 and all(m.readout == "zscore" and m.n_modules == 4 for m in members)
    settings = dict(preselect_k=2, sequence_length=3)
    domain = ros_domains.new()
    node = node_factory(domain, ensemble, {"reliable": "true", "publish_scores": "true",
                                           "preselect_k": 2, "sequence_length": 3})
    client = client_factory(domain)
    node.wait_ready()
    client.connect(node)
    got = client.lockstep(node, query)
    offline = Localizer(ensemble, **settings)
    expected = [offline.localize(frame) for frame in query]
    print(f"\nnode    {[a['place_id'] for a in got]}\noffline {[e.place_id for e in expected]}")
    # The setting is what the test says it is: each member pre-selects 2 of its 4 modules per
    # frame, and that (and the z-score readout) changes the answers: ignoring either fails below.
    assert offline.preselect == [2, 2]
    for other in (dict(preselect_k=0), dict(preselect_k=2, readout="mean")):
        changed = Localizer(ensemble, sequence_length=3, **other)
        assert [changed.localize(f).confidence for f in query] != [e.confidence for e in expected], other
    assert_same_answers(got, expected, "ensemble, K = 2, zscore, L = 3")
    assert sum(e.place_id == k for k, e in enumerate(expected)) >= 8, "the ensemble recognises too little"
    assert node.stop() == 0, node.output()


# --------------------------------------------------------------------------
# 2. online == offline with pre-selection, both matchers; replay-eval over DDS
# --------------------------------------------------------------------------

@pytest.mark.parametrize("matcher", ["diagonal", "seqslam"])
def test_online_localizer_equals_offline_evaluate_with_preselection(ensemble, route16, matcher):
    """Frame by frame (Localizer, the node's path) vs the whole matrix at once (evaluate, the
    CLI's path): the same sequence-matched scores to the bit, the same confidences."""
    from vprsnn_ros.eval.metrics import evaluate_scores

    query = route16.query
    members = load_model(ensemble)
    online = Localizer(ensemble, preselect_k=2, sequence_length=3, sequence_matcher=matcher)
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
def test_replay_eval_with_overrides_equals_offline_evaluate(ensemble, route16, ros_domains, tmp_path):
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
    cmd = [sys.executable, "-m", "vprsnn_ros.cli", "replay-eval", "--model", str(ensemble), "--bag", str(bag),
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

    members = load_model(ensemble)
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
    online = Localizer(ensemble, preselect_k=2, readout="mean", hyperactive_threshold=5, sequence_length=3,
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
# 3. vprsnn extend, then ~/reload while frames stream at 30 Hz
# --------------------------------------------------------------------------

def _run_cli(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "vprsnn_ros.cli", *args], cwd=str(REPO), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:  # run() kills the child on timeout
        pytest.fail(f"vprsnn {args[0]} did not finish within {timeout} s: {exc.stderr}")


@pytest.mark.ros
def test_extend_then_reload_while_frames_stream_at_30_hz(tmp_path, ros_domains, node_factory, client_factory):
    reference, _ = make_route(12, seed=8)
    ref_dir, _ = write_route(tmp_path / "route", 12, seed=8)
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    for folder, files in ((old_dir, sorted(ref_dir.iterdir())[:8]), (new_dir, sorted(ref_dir.iterdir())[8:])):
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
    model = tmp_path / "model"
    trained = _run_cli(["train", "--reference", str(old_dir), "--out", str(model), "--neurons", "40",
                        "--places-per-module", "4", "--epochs", "12"], timeout=300)
    assert trained.returncode == 0, trained.stderr[-3000:]
    broken = tmp_path / "broken"

    domain = ros_domains.new()
    node = node_factory(domain, model, {"reliable": "true", "diagnostics_period": "0.25"})
    client = client_factory(domain)
    node.wait_ready()
    client.connect(node)
    client.start_stream(list(reference), rate_hz=30.0)

    # Streaming, then `vprsnn extend` in place while the node keeps answering with the old model.
    assert client.stream_until(lambda: len(client.estimates) >= 20, 60.0), node.output()
    extend = subprocess.Popen([sys.executable, "-m", "vprsnn_ros.cli", "extend", "--model", str(model),
                               "--reference", str(new_dir)], cwd=str(REPO), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        finished = client.stream_until(lambda: extend.poll() is not None, 300.0)
    finally:
        if extend.poll() is None:
            extend.kill()
        _, err = extend.communicate(timeout=30)
    assert finished and extend.returncode == 0, err[-3000:]
    assert all(answer < 8 for _, answer in client.answered().values()), "answers from a model not reloaded yet"

    # A failed reload in the middle of the stream keeps the old model answering.
    shutil.copytree(model, broken)
    module = sorted(broken.glob("module_*.npz"))[-1]
    module.write_bytes(module.read_bytes()[:100])
    assert client.set_params(model_path=str(broken))[0].successful
    future = client.reload_client.call_async(Trigger.Request())
    assert client.stream_until(future.done, 90.0), node.output()
    failed_at = time.monotonic()
    answer = future.result()
    assert not answer.success and str(model) in answer.message, answer.message
    assert client.stream_until(lambda: len(client.answered(after=failed_at)) >= 15, 60.0), \
        f"the node stopped answering after a failed reload:\n{node.output()}"
    assert all(a < 8 for _, a in client.answered(after=failed_at).values())

    # The extended model, reloaded mid-stream: frames sent after the answer are answered by it.
    assert client.set_params(model_path=str(model))[0].successful
    future = client.reload_client.call_async(Trigger.Request())
    assert client.stream_until(future.done, 90.0), node.output()
    reloaded_at = time.monotonic()
    assert future.result().success and future.result().message.endswith(": 12 places"), future.result().message

    def new_places_matched() -> bool:  # each new place answered as itself, over 4 rounds of the route at least
        answers = client.answered(after=reloaded_at).values()
        return len(answers) >= 48 and all(any(p == a == k for p, a in answers) for k in range(8, 12))

    matched = client.stream_until(new_places_matched, 60.0)
    after = client.answered(after=reloaded_at)
    own = [p == a for p, a in after.values() if p >= 8]
    print(f"\n{len(client.sent)} frames sent, {len(client.estimates)} answered; after the reload "
          f"{sum(own)}/{len(own)} frames of the new places answered with their own place")
    summary = {k: sorted({a for p, a in after.values() if p == k}) for k in range(8, 12)}
    assert matched, f"not every new place was matched after the reload; answers to the new places: {summary}"
    assert sum(own) >= 0.6 * len(own)

    # Every frame is accounted for: none failed or rejected, every processed one answered.
    d = client.settled_diagnostics(node)
    assert int(d["frames_failed"]) == 0 and int(d["frames_rejected"]) == 0, d
    assert 0.9 * len(client.sent) <= int(d["frames_received"]) <= len(client.sent), (len(client.sent), d)
    assert client.spin_until(lambda: len(client.estimates) == int(d["frames_processed"]), 10.0), \
        (len(client.estimates), d)
    print(f"diagnostics: {d}")
    assert int(d["places"]) == 12

    # After a reload the node is a fresh Localizer on the new model, frame by frame.
    assert client.reload().success
    n_before = len(client.confidences)
    got = client.lockstep(node, list(reference), first_stamp=100_000)
    assert len(client.confidences) == n_before + 12
    assert_same_answers(got, _fresh_answers(model, reference), "after reload")
    errors = [line for line in node.output().splitlines() if "ERROR" in line or "Traceback" in line]
    assert len(errors) == 1 and "reload failed" in errors[0], errors
    assert node.stop() == 0, node.output()


def _fresh_answers(model: Path, frames) -> list:
    loc = Localizer(model)
    return [loc.localize(f) for f in frames]


# --------------------------------------------------------------------------
# 5. set_parameters of preselect_k and sequence_matcher on a running node
# --------------------------------------------------------------------------

@pytest.mark.ros
def test_set_parameters_preselect_k_and_sequence_matcher_take_effect(
        model16_tuned, route16, ros_domains, node_factory, client_factory):
    """Each change rebuilds the node's Localizer (a fresh stream): its answers are then those of a
    fresh offline Localizer with the new settings, frame by frame; a bad value is refused and
    changes nothing."""
    frames = route16.query
    domain = ros_domains.new()
    node = node_factory(domain, model16_tuned, {"reliable": "true", "publish_scores": "true"})
    client = client_factory(domain)
    node.wait_ready()
    client.connect(node)

    def offline(settings: dict, stream: list) -> list:
        loc = Localizer(model16_tuned, **settings)
        return [loc.localize(f) for f in stream]

    assert_same_answers(client.lockstep(node, frames[:4]), offline({}, frames[:4]), "model settings")

    # A K that answers differently from the model's own (its calibrated K, or every module).
    default = [e.confidence for e in offline({}, frames[4:10])]
    k = next(k for k in (1, 2, 3, 0) if [e.confidence for e in offline({"preselect_k": k}, frames[4:10])] != default)
    results = client.set_params(preselect_k=k)
    assert results[0].successful, results[0].reason
    got = client.lockstep(node, frames[4:10], first_stamp=4)
    assert_same_answers(got, offline({"preselect_k": k}, frames[4:10]), f"preselect_k {k}")

    results = client.set_params(sequence_matcher="seqslam", sequence_length=3)
    assert all(r.successful for r in results), [r.reason for r in results]
    settings = {"preselect_k": k, "sequence_matcher": "seqslam", "sequence_length": 3}
    got = client.lockstep(node, frames[10:16], first_stamp=10)
    expected = offline(settings, frames[10:16])
    diagonal = offline({**settings, "sequence_matcher": "diagonal"}, frames[10:16])
    assert [e.confidence for e in diagonal] != [e.confidence for e in expected]
    assert_same_answers(got, expected, f"seqslam, L = 3, preselect_k {k}")

    assert node.stop() == 0, node.output()


@pytest.mark.ros
@pytest.mark.parametrize("name", ["sequence_matcher", "readout"])
def test_set_parameters_with_a_bad_value_is_refused_and_changes_nothing(
        name, model16_tuned, route16, ros_domains, node_factory, client_factory):
    """A value the Localizer refuses: the change is refused (successful = False, with the reason),
    the node lives on with its settings and its stream."""
    frames = route16.query
    settings = {"preselect_k": 1, "sequence_matcher": "seqslam", "sequence_length": 3}
    domain = ros_domains.new()
    node = node_factory(domain, model16_tuned, {"reliable": "true", **settings})
    client = client_factory(domain)
    node.wait_ready()
    client.connect(node)
    loc = Localizer(model16_tuned, **settings)
    expected = [loc.localize(f) for f in frames[:6]]
    assert_same_answers(client.lockstep(node, frames[:3]), expected[:3], "before")
    results = client.set_params(**{name: "bogus"})
    assert not results[0].successful, f"{name}='bogus' was accepted"
    assert "bogus" in results[0].reason, results[0].reason
    assert node.alive(), node.output()
    assert_same_answers(client.lockstep(node, frames[3:6], first_stamp=3), expected[3:], "after the refusal")
    assert node.stop() == 0, node.output()


# --------------------------------------------------------------------------
# 4. configure/cleanup cycles of a large-ish model: resident memory comes back
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
def test_configure_cleanup_cycles_give_the_memory_back(large_model, ros_domains, node_factory, client_factory):
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
    node = node_factory(domain, large_model, {"reliable": "true", "autostart": "false"})
    client = client_factory(domain)
    if not node.wait_for_line("waiting for ~/change_state", READY_TIMEOUT):
        pytest.fail(f"node did not come up unconfigured:\n{node.output()}")
    client.watched = node
    loaded, released = [], []
    for cycle in range(6):
        assert client.transition(Transition.TRANSITION_CONFIGURE), node.output()
        assert client.transition(Transition.TRANSITION_ACTIVATE), node.output()
        assert client.spin_until(lambda: client.pub.get_subscription_count() >= 1, 30.0), "not subscribed"
        n = len(client.confidences)
        client.pub.publish(image_msg(frames[cycle % 4], (cycle, 0)))
        assert client.spin_until(lambda n=n: len(client.confidences) > n, FRAME_TIMEOUT), node.output()
        loaded.append(node.rss_kb())
        assert client.transition(Transition.TRANSITION_DEACTIVATE), node.output()
        assert client.spin_until(lambda: client.pub.get_subscription_count() == 0, 30.0), "still subscribed"
        assert client.transition(Transition.TRANSITION_CLEANUP), node.output()
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


# --------------------------------------------------------------------------
# 6. ~/estimate from a model trained on an odometry bag; min_confidence
# --------------------------------------------------------------------------

def write_odometry_bag(path: Path, images, poses: np.ndarray, frame: str = "odom") -> Path:
    """A rosbag2 (mcap) with /cam images at 10 Hz and /odom Odometry at the same stamps (as
    test_bags.py writes them)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.LATEST)
    t = ts.types
    start = 1_700_000_000 * 10**9

    def header(stamp: int, frame_id: str):
        return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=stamp // 10**9,
                                                                                nanosec=stamp % 10**9),
                                        frame_id=frame_id)

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        cam = writer.add_connection("/cam", "sensor_msgs/msg/Image", typestore=ts)
        odom = writer.add_connection("/odom", "nav_msgs/msg/Odometry", typestore=ts)
        for k, (image, pose) in enumerate(zip(images, poses)):
            stamp = start + k * 10**8
            img = t["sensor_msgs/msg/Image"](header=header(stamp, "cam"), height=image.shape[0], width=image.shape[1],
                                             encoding="bgr8", is_bigendian=0, step=image.shape[1] * 3,
                                             data=np.ascontiguousarray(image).reshape(-1))
            writer.write(cam, stamp, ts.serialize_cdr(img, "sensor_msgs/msg/Image"))
            x, y, z, qx, qy, qz, qw = (float(v) for v in pose)
            msg = t["nav_msgs/msg/Odometry"](
                header=header(stamp, frame), child_frame_id="base_link",
                pose=t["geometry_msgs/msg/PoseWithCovariance"](
                    pose=t["geometry_msgs/msg/Pose"](position=t["geometry_msgs/msg/Point"](x=x, y=y, z=z),
                                                     orientation=t["geometry_msgs/msg/Quaternion"](
                                                         x=qx, y=qy, z=qz, w=qw)),
                    covariance=np.zeros(36)),
                twist=t["geometry_msgs/msg/TwistWithCovariance"](
                    twist=t["geometry_msgs/msg/Twist"](linear=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
                                                       angular=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)),
                    covariance=np.zeros(36)))
            writer.write(odom, stamp, ts.serialize_cdr(msg, "nav_msgs/msg/Odometry"))
    return path


@pytest.mark.ros
def test_estimate_has_each_places_pose_and_covariance_and_min_confidence_gives_minus_one(
        tmp_path, ros_domains, node_factory, client_factory):
    from vprsnn_ros.io.sources import load_traverse

    reference, query = make_route(12, seed=6)
    steps_m = np.array([0.0, 1.0, 2.5, 0.5, 3.0, 1.5, 1.0, 4.0, 0.75, 2.0, 1.25, 3.5])  # irregular spacing
    yaw = np.linspace(0.0, 1.5, 12)
    poses = np.column_stack([np.cumsum(steps_m), 0.3 * np.arange(12), np.full(12, 0.125), np.zeros(12),
                             np.zeros(12), np.sin(yaw / 2), np.cos(yaw / 2)])
    bag = write_odometry_bag(tmp_path / "odom_bag", reference, poses)
    trav = load_traverse(bag, CONFIG.image_size, CONFIG.patch, pose_topic="/odom")
    np.testing.assert_array_equal(trav.poses, poses)
    assert trav.pose_frame == "odom"
    model = tmp_path / "model"
    train_network(CONFIG, [trav.pixels], trav.names, model, workers=2, place_poses=trav.poses,
                  pose_frame=trav.pose_frame)

    offline = _fresh_answers(model, query)
    confidences = sorted(e.confidence for e in offline)
    threshold = confidences[len(confidences) // 2]  # half the frames below it
    sigma_min, sigma_max = 0.25, 4.0
    domain = ros_domains.new()
    node = node_factory(domain, model, {"reliable": "true", "sigma_min_places": sigma_min,
                                        "sigma_max_places": sigma_max, "min_confidence": repr(threshold)})
    client = client_factory(domain)
    node.wait_ready()
    client.connect(node)
    got = client.lockstep(node, query)

    accepted = [e.place_id if e.confidence >= threshold else -1 for e in offline]
    print(f"\nmin_confidence {threshold:.4f}: place ids {[a['place_id'] for a in got]}")
    assert -1 in accepted and any(p >= 0 for p in accepted), "the threshold does not split the frames"
    assert [a["place_id"] for a in got] == accepted
    assert [a["confidence"] for a in got] == [float(np.float32(e.confidence)) for e in offline]
    for k, (a, e) in enumerate(zip(got, offline)):
        est = a["estimate"]
        assert est is not None, f"frame {k}: no ~/estimate (published whatever min_confidence says)"
        assert est.header.frame_id == "odom" and stamp_of(est) == (k, 7)
        p = est.pose.pose
        pose = poses[e.place_id]
        assert [p.position.x, p.position.y, p.position.z] == pose[:3].tolist(), f"frame {k}"
        assert [p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w] == pose[3:].tolist()
        # x/y std: sigma in places (linear from sigma_max at confidence 0 to sigma_min at 1) times the
        # local spacing of places (to the next place; the last place: to the one before).
        sigma = sigma_min + (1.0 - e.confidence) * (sigma_max - sigma_min)
        j = e.place_id + 1 if e.place_id + 1 < len(poses) else e.place_id - 1
        spacing = float(np.linalg.norm(poses[j, :3] - pose[:3]))
        cov = np.array(est.pose.covariance).reshape(6, 6)
        np.testing.assert_allclose([cov[0, 0], cov[1, 1]], [(sigma * spacing) ** 2] * 2, rtol=1e-12)
        assert cov[3, 3] == cov[4, 4] == cov[5, 5] == 1e6, "orientation is not estimated: variance 1e6"
        assert np.count_nonzero(cov - np.diag(np.diag(cov))) == 0, "off-diagonal covariance"
    assert len(poses) - 1 in {e.place_id for e in offline}, "the last place (spacing to the one before) unused"
    assert node.stop() == 0, node.output()
