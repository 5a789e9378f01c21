"""Integration tests of the ``localizer`` ROS 2 node (``vprsnn_localizer``).

Each test starts the node as a separate process (``python -m
vprsnn_ros.nodes.localizer_node --ros-args ...``, its own process group) on a
``ROS_DOMAIN_ID`` of its own (conftest ``ros_domains``) with
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and talks to it over real DDS from an
rclpy Context of this process created on the same domain. Nothing is synchronised
with fixed sleeps: every wait spins the test node until a condition holds or a
(generous) deadline passes, because the machine may be busy.

The node's answers are compared with the in-process ``Localizer`` on the same
frames, exactly. Models are tiny: the session's 16-place model (conftest
``model16``: 40 neurons, 4 places per module, 12 epochs) and an 8-place one.
"""

from __future__ import annotations

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

try:  # optional: the `ros` marker skips these tests (fails them in CI) without them
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
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Float32, Int32
    from std_srvs.srv import Trigger
except ImportError:
    pass

from vprsnn_ros.eval.views import BANNER, THUMB_SIZE, make_thumbnail, thumbnail_panel
from vprsnn_ros.io.preprocess import preprocess_batch
from vprsnn_ros.io.synthetic import make_route
from vprsnn_ros.localizer import Localizer
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.train.training import train_network

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO / "config" / "localize.yaml"
NODE = "vprsnn_localizer"
IMAGE_TOPIC = "/test_cam/image"
COMPRESSED_TOPIC = "/test_cam/image/compressed"
CONFIG = NetworkConfig(n_neurons=40, places_per_module=4, epochs=12, assign_presentations=16)  # = model16's
N_PLACES = 16

READY_TIMEOUT = 90.0    # node start: imports, model load, kernel warm-up on a busy machine
FRAME_TIMEOUT = 30.0    # one frame in, its estimate out
DIAG_TIMEOUT = 15.0     # a (fresh, matching) /diagnostics message
STOP_TIMEOUT = 10.0     # SIGINT -> exit


# --------------------------------------------------------------------------
# the node process
# --------------------------------------------------------------------------

class NodeProcess:
    """The localizer node in a subprocess; stdout+stderr are collected by a reader thread."""

    def __init__(self, domain_id: int, model, params: dict | None = None, remap: bool = True):
        cmd = [sys.executable, "-m", "vprsnn_ros.nodes.localizer_node", "--ros-args",
               "--params-file", str(PARAMS_FILE), "-p", f"model_path:={model}"]
        for name, value in (params or {}).items():
            cmd += ["-p", f"{name}:={value}"]
        if remap:
            cmd += ["-r", f"image:={IMAGE_TOPIC}"]
        env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id),
                   ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
        self.domain_id = domain_id
        self.cmd = cmd
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

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for_line(self, needle: str, timeout: float) -> str | None:
        """The first output line containing ``needle``, or None at EOF / deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> str:
        line = self.wait_for_line("ready:", timeout)
        if line is None:
            pytest.fail(f"node not ready within {timeout} s (exit code {self.proc.poll()}); "
                        f"command {' '.join(self.cmd)}; output:\n{self.output()}")
        return line

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> tuple[int | None, float]:
        """SIGINT to the process group; SIGKILL after ``timeout``. Returns (exit code or
        None if it had to be killed, seconds until exit)."""
        started = time.monotonic()
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        code = self.wait_exit(timeout)
        elapsed = time.monotonic() - started
        if code is None:
            self.kill()
        self._reader.join(timeout=5.0)
        return code, elapsed

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.wait_exit(10.0)

    def rss_kb(self) -> int | None:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


@pytest.fixture
def start_node():
    """Factory that starts node processes and makes sure none outlives the test."""
    started: list[NodeProcess] = []

    def start(*args, **kwargs) -> NodeProcess:
        node = NodeProcess(*args, **kwargs)
        started.append(node)
        return node

    yield start
    for node in started:
        if node.alive():
            node.stop(timeout=5.0)


# --------------------------------------------------------------------------
# the test's own ROS side
# --------------------------------------------------------------------------

def diag_values(msg: DiagnosticArray) -> dict | None:
    for status in msg.status:
        if status.name == NODE:
            return {kv.key: kv.value for kv in status.values}
    return None


def settled(d: dict) -> bool:
    """Every received frame is accounted for (none pending or in progress)."""
    return int(d["frames_received"]) == (int(d["frames_processed"]) + int(d["frames_dropped"])
                                         + int(d["frames_rejected"]) + int(d["frames_failed"]))


class RosClient:
    """An rclpy Context + node on ``domain_id`` subscribed to every output of the localizer."""

    def __init__(self, domain_id: int, name: str):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.estimates: list[PoseWithCovarianceStamped] = []
        self.place_ids: list[int] = []
        self.confidences: list[float] = []
        self.diagnostics: list[tuple[float, dict]] = []  # (arrival monotonic time, values)
        reliable = QoSProfile(reliability=ReliabilityPolicy.RELIABLE,
                              history=HistoryPolicy.KEEP_LAST, depth=100)
        self.sub_estimate = self.node.create_subscription(
            PoseWithCovarianceStamped, f"/{NODE}/estimate", self.estimates.append, reliable)
        self.node.create_subscription(Int32, f"/{NODE}/place_id",
                                      lambda m: self.place_ids.append(m.data), reliable)
        self.node.create_subscription(Float32, f"/{NODE}/confidence",
                                      lambda m: self.confidences.append(m.data), reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, reliable)
        self.reload_client = self.node.create_client(Trigger, f"/{NODE}/reload")
        self.param_client = self.node.create_client(SetParameters, f"/{NODE}/set_parameters")

    def _on_diag(self, msg: DiagnosticArray) -> None:
        values = diag_values(msg)
        if values is not None:
            self.diagnostics.append((time.monotonic(), values))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    # ---------------------------------------------------------------- waiting

    def spin_until(self, predicate, timeout: float) -> bool:
        """Spin until ``predicate()`` is true or the deadline passes; returns its last value."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return bool(predicate())
            self.executor.spin_once(timeout_sec=min(0.05, left))

    def wait_diag(self, predicate=lambda d: True, after: float | None = None,
                  timeout: float = DIAG_TIMEOUT) -> dict | None:
        """The first diagnostics that arrived after ``after`` (monotonic) and satisfies
        ``predicate``; None at the deadline."""
        found: list[dict] = []

        def check() -> bool:
            for t, d in self.diagnostics:
                if (after is None or t > after) and predicate(d):
                    found.append(d)
                    return True
            return False

        self.spin_until(check, timeout)
        return found[0] if found else None

    def latest_diag(self) -> dict | None:
        return self.diagnostics[-1][1] if self.diagnostics else None

    def wait_connected(self, node: NodeProcess, publishers=(), timeout: float = 30.0) -> None:
        """Until our publishers are matched by the node and we get its diagnostics and
        are matched with its estimate publisher."""
        ok = self.spin_until(lambda: (all(p.get_subscription_count() >= 1 for p in publishers)
                                      and self.sub_estimate.get_publisher_count() >= 1
                                      and len(self.diagnostics) >= 1
                                      and self.reload_client.service_is_ready()), timeout)
        if not ok:
            subs = self.node.get_subscriber_names_and_types_by_node(NODE, "/") \
                if NODE in self.node.get_node_names() else "node not in the graph"
            pytest.fail(f"not connected to the node within {timeout} s: matched subscriptions "
                        f"{[p.get_subscription_count() for p in publishers]} on "
                        f"{[p.topic_name for p in publishers]}, diagnostics {len(self.diagnostics)}; "
                        f"the node subscribes to {subs}; node alive {node.alive()}, output:\n"
                        f"{node.output()}")

    def call(self, client, request, timeout: float = 60.0):
        assert client.wait_for_service(timeout_sec=timeout), f"service {client.srv_name} missing"
        future = client.call_async(request)
        assert self.spin_until(future.done, timeout), f"no answer from {client.srv_name}"
        return future.result()

    def set_string_param(self, name: str, value: str):
        request = SetParameters.Request(parameters=[Parameter(name=name, value=ParameterValue(
            type=ParameterType.PARAMETER_STRING, string_value=value))])
        return self.call(self.param_client, request).results[0]

    def reload(self) -> Trigger.Response:
        return self.call(self.reload_client, Trigger.Request())

    def send_and_wait_estimate(self, pub, msg, timeout: float = FRAME_TIMEOUT,
                               match_stamp: bool = False):
        """Publish one frame and wait for the next estimate (with ``match_stamp``: the
        next one carrying the frame's stamp); returns it or None."""
        before = len(self.estimates)
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)

        def found():
            for e in self.estimates[before:]:
                if not match_stamp or (e.header.stamp.sec, e.header.stamp.nanosec) == stamp:
                    return e
            return None

        pub.publish(msg)
        self.spin_until(lambda: found() is not None, timeout)
        return found()


@pytest.fixture(scope="module", autouse=True)
def localhost_only():
    """The test process's own DDS participants stay on the loopback too (for this file only)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        yield


@pytest.fixture
def client_factory():
    clients: list[RosClient] = []

    def make(domain_id: int) -> RosClient:
        c = RosClient(domain_id, f"vprsnn_node_test_{domain_id}_{os.getpid()}")
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def reliable_qos(depth: int = 10) -> QoSProfile:
    return QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                      depth=depth)


# --------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------

def raw_image(encoding: str, height: int, width: int, step: int, data: bytes,
              stamp: tuple[int, int] = (0, 0)) -> Image:
    msg = Image()
    msg.header.stamp = Time(sec=stamp[0], nanosec=stamp[1])
    msg.header.frame_id = "test_cam"
    msg.encoding = encoding
    msg.height, msg.width, msg.step = height, width, step
    msg.is_bigendian = int(sys.byteorder == "big")
    msg.data = data
    return msg


def array_image(a: np.ndarray, encoding: str, stamp: tuple[int, int] = (0, 0)) -> Image:
    a = np.ascontiguousarray(a)
    row = a.shape[1] * (a.shape[2] if a.ndim == 3 else 1) * a.itemsize
    return raw_image(encoding, a.shape[0], a.shape[1], row, a.tobytes(), stamp)


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def route(route16):
    """The 16 places of the session's model16 (conftest)."""
    return route16.reference, route16.query


@pytest.fixture(scope="module")
def model8(tmp_path_factory) -> Path:
    reference, _ = make_route(8, seed=11)
    out = tmp_path_factory.mktemp("node_models") / "m8"
    train_network(CONFIG, [preprocess_batch(reference)], [f"q{k:02d}" for k in range(8)],
                  out, workers=1)
    return out


# --------------------------------------------------------------------------
# 1 + 2: lock-step reference run (one node, shared by the two tests)
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lockstep_run(localhost_only, route, model16, ros_domains):
    reference, _ = route
    domain = ros_domains.new()
    node = NodeProcess(domain, model16, {"reliable": "true"})
    client = RosClient(domain, "vprsnn_lockstep_test")
    result = {"sent_stamps": [], "estimates": [], "timeouts": [], "diag": None,
              "model": str(model16)}
    try:
        node.wait_ready()
        pub = client.node.create_publisher(Image, IMAGE_TOPIC, reliable_qos())
        client.wait_connected(node, [pub])
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
def test_lockstep_place_ids_match_offline_localizer(lockstep_run, route, model16):
    reference, _ = route
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
# 3: reload
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_reload_failure_keeps_model_and_success_switches(start_node, client_factory, route,
                                                         model16, model8, tmp_path, ros_domains):
    """A failed ~/reload keeps answering with the old model; a successful one answers with the new
    model exactly as a fresh Localizer on it does, frame by frame."""
    reference, _ = route
    domain = ros_domains.new()
    node = start_node(domain, model16, {"reliable": "true", "diagnostics_period": "0.25"})
    client = client_factory(domain)
    node.wait_ready()
    pub = client.node.create_publisher(Image, IMAGE_TOPIC, reliable_qos())
    client.wait_connected(node, [pub])

    missing = tmp_path / "no_such_model"
    result = client.set_string_param("model_path", str(missing))
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

    result = client.set_string_param("model_path", str(model8))
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
    code, _ = node.stop()
    assert code == 0, node.output()


# --------------------------------------------------------------------------
# 4: clean exit
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_sigint_exits_cleanly(start_node, client_factory, route, model16, ros_domains):
    reference, _ = route
    domain = ros_domains.new()
    node = start_node(domain, model16, {"reliable": "true"})
    client = client_factory(domain)
    node.wait_ready()
    pub = client.node.create_publisher(Image, IMAGE_TOPIC, reliable_qos())
    client.wait_connected(node, [pub])
    assert client.send_and_wait_estimate(pub, array_image(reference[1], "bgr8")) is not None
    code, elapsed = node.stop(timeout=STOP_TIMEOUT)
    print(f"\nexit code {code} after {elapsed:.2f} s")
    assert code is not None, f"still running {STOP_TIMEOUT} s after SIGINT; output:\n{node.output()}"
    assert code == 0, f"exit code {code}; output:\n{node.output()}"
    assert "Traceback" not in node.output(), node.output()


# --------------------------------------------------------------------------
# 5: bad input
# --------------------------------------------------------------------------

def bad_raw_images() -> dict[str, Image]:
    f32 = np.random.default_rng(0).random((8, 8), dtype=np.float32)
    return {
        "32FC1": raw_image("32FC1", 8, 8, 32, f32.tobytes()),
        "yuv422": raw_image("yuv422", 8, 8, 16, bytes(128)),
        "empty encoding": raw_image("", 8, 8, 8, bytes(64)),
        "step < width": raw_image("mono8", 8, 8, 4, bytes(32)),
        "bgr8 step < 3*width": raw_image("bgr8", 8, 8, 8, bytes(64)),
        "data shorter than step*height": raw_image("mono8", 8, 8, 8, bytes(63)),
        "data longer than step*height": raw_image("mono8", 8, 8, 8, bytes(65)),
        "padded step, unpadded data": raw_image("mono8", 8, 8, 10, bytes(64)),
        "huge claimed size, tiny data": raw_image("mono8", 4000, 6000, 6000, bytes(10)),
        "empty data": raw_image("mono8", 8, 8, 8, b""),
        "0x0 image": raw_image("mono8", 0, 0, 0, b""),
    }


def send_settled(client: RosClient, pub, msg, expect_received: int,
                 timeout: float = DIAG_TIMEOUT) -> dict | None:
    """Publish one frame and wait until diagnostics show it received and accounted for."""
    after = time.monotonic()
    pub.publish(msg)
    return client.wait_diag(lambda d: int(d["frames_received"]) >= expect_received and settled(d),
                            after=after, timeout=timeout)


@pytest.mark.slow
def test_bad_images_are_rejected_and_extreme_sizes_processed(start_node, client_factory, route,
                                                             model16, ros_domains):
    reference, _ = route
    domain = ros_domains.new()
    node = start_node(domain, model16, {"reliable": "true", "diagnostics_period": "0.25"})
    client = client_factory(domain)
    node.wait_ready()
    pub = client.node.create_publisher(Image, IMAGE_TOPIC, reliable_qos())
    client.wait_connected(node, [pub])

    bad = bad_raw_images()
    for k, (name, msg) in enumerate(bad.items(), start=1):
        d = send_settled(client, pub, msg, k)
        assert d is not None, (f"bad frame {name!r}: not accounted for in diagnostics "
                               f"(last {client.latest_diag()}); alive {node.alive()}")
        assert int(d["frames_rejected"]) == k, f"bad frame {name!r} not counted as rejected: {d}"
        assert node.alive(), f"node died on {name!r}:\n{node.output()}"
    assert not client.estimates, "a bad frame produced an estimate"

    est = client.send_and_wait_estimate(pub, array_image(reference[2], "bgr8", (2, 0)))
    assert est is not None, f"a good frame after the bad ones got no estimate:\n{node.output()}"
    tiny = client.send_and_wait_estimate(pub, array_image(np.full((1, 1), 90, np.uint8), "mono8"))
    assert tiny is not None, f"1x1 mono8 frame not processed; last diagnostics {client.latest_diag()}"
    big = np.random.default_rng(1).integers(0, 256, (4000, 6000), dtype=np.uint8)
    large = client.send_and_wait_estimate(pub, array_image(big, "mono8", (7, 7)), timeout=90.0)
    assert large is not None, (f"6000x4000 mono8 frame not processed; last diagnostics "
                               f"{client.latest_diag()}")
    assert (large.header.stamp.sec, large.header.stamp.nanosec) == (7, 7)

    d = client.wait_diag(lambda d: int(d["frames_processed"]) >= 3 and settled(d),
                         after=time.monotonic())
    print(f"\ndiagnostics after bad input: {d}")
    assert d is not None, f"last diagnostics {client.latest_diag()}"
    assert int(d["frames_rejected"]) == len(bad)
    assert int(d["frames_processed"]) == 3
    assert int(d["frames_failed"]) == 0 and int(d["frames_dropped"]) == 0
    assert int(d["frames_received"]) == len(bad) + 3
    assert node.alive()
    assert "Traceback" not in node.output(), node.output()


@pytest.mark.slow
def test_corrupt_compressed_image_is_rejected(start_node, client_factory, route, model16, ros_domains):
    import cv2

    reference, _ = route
    domain = ros_domains.new()
    node = start_node(domain, model16, {"reliable": "true", "use_compressed": "true",
                                        "diagnostics_period": "0.25"})
    client = client_factory(domain)
    node.wait_ready()
    pub = client.node.create_publisher(Image, IMAGE_TOPIC, reliable_qos())
    cpub = client.node.create_publisher(CompressedImage, COMPRESSED_TOPIC, reliable_qos())
    client.wait_connected(node, [pub])
    # image:=/test_cam/image must move the compressed input to /test_cam/image/compressed
    # (image_transport convention: "<base topic>/compressed").
    if not client.spin_until(lambda: cpub.get_subscription_count() >= 1, 10.0):
        pytest.fail(f"nobody subscribes to {COMPRESSED_TOPIC}; the node subscribes to "
                    f"{client.node.get_subscriber_names_and_types_by_node(NODE, '/')}")

    corrupt = {
        "jpeg garbage": CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4),
        "png garbage": CompressedImage(format="png", data=b"\x89PNG\r\n\x1a\n" + b"nonsense" * 50),
        "empty": CompressedImage(format="jpeg", data=b""),
    }
    for k, (name, msg) in enumerate(corrupt.items(), start=1):
        d = send_settled(client, cpub, msg, k)
        assert d is not None, f"{name!r}: not accounted for; last {client.latest_diag()}"
        assert int(d["frames_rejected"]) == k, f"{name!r} not counted as rejected: {d}"
        assert node.alive(), node.output()
    assert not client.estimates

    ok, png = cv2.imencode(".png", reference[3])
    assert ok
    est = client.send_and_wait_estimate(cpub, CompressedImage(format="png", data=png.tobytes()))
    assert est is not None, "a valid compressed frame got no estimate"
    est = client.send_and_wait_estimate(pub, array_image(reference[4], "bgr8"))
    assert est is not None, "a good raw frame after the corrupt ones got no estimate"
    d = client.wait_diag(lambda d: int(d["frames_processed"]) >= 2 and settled(d),
                         after=time.monotonic())
    print(f"\ndiagnostics after corrupt compressed input: {d}")
    assert d is not None
    assert int(d["frames_rejected"]) == len(corrupt)
    assert int(d["frames_processed"]) == 2 and int(d["frames_failed"]) == 0


# --------------------------------------------------------------------------
# 6: unusable model at start
# --------------------------------------------------------------------------

def make_bad_model(kind: str, model16: Path, tmp_path: Path) -> Path:
    path = tmp_path / f"model_{kind.replace(' ', '_')}"
    if kind == "missing":
        return path
    shutil.copytree(model16, path)
    if kind == "garbage yaml":
        (path / "model.yaml").write_text("{{{: this is [not yaml\n")
    elif kind == "truncated module":
        module = sorted(path.glob("module_*.npz"))[1]
        data = module.read_bytes()
        module.write_bytes(data[: len(data) // 2])
    elif kind == "empty dir":
        shutil.rmtree(path)
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", ["missing", pytest.param("empty dir", marks=pytest.mark.slow),
                                  pytest.param("garbage yaml", marks=pytest.mark.slow), "truncated module"])
def test_unusable_model_at_start_exits_with_one_error(start_node, model16, tmp_path, kind, ros_domains):
    bad = make_bad_model(kind, model16, tmp_path)
    node = start_node(ros_domains.new(), bad)
    code = node.wait_exit(timeout=20.0)
    node._reader.join(timeout=5.0)
    out = node.output()
    print(f"\n[{kind}] exit code {code}; output:\n{out}")
    assert code is not None, f"still running 20 s after start with a {kind} model:\n{out}"
    assert code == 2, f"exit code {code}: the node documents 2 for an unusable model\n{out}"
    assert "Traceback" not in out, out
    error_lines = [line for line in out.splitlines() if "error" in line.lower()]
    assert len(error_lines) == 1, f"expected exactly one error line, got {error_lines}"
    assert str(bad) in error_lines[0], f"the error line does not name {bad}: {error_lines[0]}"


# --------------------------------------------------------------------------
# 7: flood
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_flood_drops_frames_and_keeps_memory_bounded(start_node, client_factory, model16, ros_domains):
    """A 1 kHz flood: frames are dropped, none fails, memory stays bounded, and the node still
    answers afterwards. (How fast it answers is bench/node_latency.py's question, not a test's.)"""
    domain = ros_domains.new()
    node = start_node(domain, model16)  # default: sensor-data (best-effort) QoS
    client = client_factory(domain)
    node.wait_ready()
    pub = client.node.create_publisher(Image, IMAGE_TOPIC, qos_profile_sensor_data)
    client.wait_connected(node, [pub])

    rss_start = node.rss_kb()
    assert rss_start
    peak = [rss_start]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.02):
            rss = node.rss_kb()
            if rss is not None:
                peak[0] = max(peak[0], rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rng = np.random.default_rng(2)
    frames = [array_image(rng.integers(0, 256, (48, 64), dtype=np.uint8), "mono8", (k, 0))
              for k in range(50)]
    published = 0
    period, duration = 1e-3, 10.0
    started = time.monotonic()
    next_tick = started
    try:
        while time.monotonic() - started < duration:
            pub.publish(frames[published % len(frames)])
            published += 1
            next_tick += period
            pause = next_tick - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            elif pause < -0.1:  # fell behind (busy machine): do not burst to catch up
                next_tick = time.monotonic()
    finally:
        flood_end = time.monotonic()
    d = client.wait_diag(lambda d: int(d["frames_received"]) > 0 and settled(d), after=flood_end,
                         timeout=20.0)
    sampling.set()
    sampler.join(timeout=2.0)
    alive = node.alive()
    print(f"\nflood: published {published} frames in {flood_end - started:.1f} s "
          f"({published / (flood_end - started):.0f} Hz); RSS start {rss_start / 1024:.1f} MB, "
          f"peak {peak[0] / 1024:.1f} MB (+{(peak[0] - rss_start) / 1024:.1f} MB)")
    if d is not None:
        print(f"flood: received {d['frames_received']} processed {d['frames_processed']} "
              f"dropped {d['frames_dropped']} rejected {d['frames_rejected']} "
              f"failed {d['frames_failed']}; latency mean {d['latency_mean_ms']} ms "
              f"p99 {d['latency_p99_ms']} ms; input rate {d['input_rate_hz']} Hz")
    assert alive, f"node died during the flood:\n{node.output()}"
    assert d is not None, f"no settled diagnostics after the flood; last {client.latest_diag()}"
    assert peak[0] < rss_start + 200 * 1024, "resident memory grew by more than 200 MB"
    assert int(d["frames_received"]) > 0
    assert int(d["frames_dropped"]) > 0, "a 1 kHz flood dropped no frame?"
    assert int(d["frames_processed"]) > 0
    assert int(d["frames_rejected"]) == 0 and int(d["frames_failed"]) == 0
    assert int(d["frames_received"]) == int(d["frames_processed"]) + int(d["frames_dropped"])
    # Still serving after the flood (best effort: allow a few attempts).
    got = False
    for k in range(5):
        probe = array_image(np.full((48, 64), 40 * k, np.uint8), "mono8", (100_000 + k, 1))
        if client.send_and_wait_estimate(pub, probe, timeout=5.0, match_stamp=True) is not None:
            got = True
            break
    assert got, f"no estimate after the flood:\n{node.output()}"


@pytest.mark.slow
def test_scores_topic_carries_every_place_score_with_the_stamp(start_node, client_factory, route, model16, ros_domains):
    """publish_scores: ~/scores is a 1 x N 32FC1 Image stamped like the frame; argmax = place id."""
    reference, _ = route
    domain = ros_domains.new()
    node = start_node(domain, model16, {"reliable": "true", "publish_scores": "true"})
    client = client_factory(domain)
    scores = []
    client.node.create_subscription(Image, f"/{NODE}/scores", scores.append, reliable_qos(100))
    node.wait_ready()
    pub = client.node.create_publisher(Image, IMAGE_TOPIC, reliable_qos())
    client.wait_connected(node, [pub])
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


# --------------------------------------------------------------------------
# 9: managed (lifecycle) node
# --------------------------------------------------------------------------

QUIET_WINDOW = 3.0  # seconds in which an inactive node must publish nothing


class LifecycleClient:
    """~/change_state and ~/get_state of the node, called over DDS from the test."""

    def __init__(self, client: RosClient):
        self.client = client
        self.change = client.node.create_client(ChangeState, f"/{NODE}/change_state")
        self.get = client.node.create_client(GetState, f"/{NODE}/get_state")

    def state(self) -> str:
        return self.client.call(self.get, GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return bool(self.client.call(self.change, request, timeout=READY_TIMEOUT).success)


def start_unconfigured(start_node, domain: int, model) -> NodeProcess:
    node = start_node(domain, model, {"reliable": "true", "autostart": "false", "diagnostics_period": "0.25"})
    if node.wait_for_line("waiting for ~/change_state", READY_TIMEOUT) is None:
        pytest.fail(f"node did not come up unconfigured; output:\n{node.output()}")
    return node


def lines_with(node: NodeProcess, needle: str, count: int, timeout: float = 10.0) -> int:
    """Number of output lines containing ``needle``, waiting up to ``timeout`` for ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        found = sum(needle in line for line in list(node.lines))
        if found >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def quiet(client: RosClient, window: float = QUIET_WINDOW) -> bool:
    """Spin for ``window`` seconds; True when nothing came on the node's outputs."""
    before = (len(client.estimates), len(client.place_ids), len(client.confidences), len(client.diagnostics))
    client.spin_until(lambda: False, window)
    return before == (len(client.estimates), len(client.place_ids), len(client.confidences),
                      len(client.diagnostics))


@pytest.mark.slow
def test_lifecycle_transitions_over_dds(start_node, client_factory, route, model16, ros_domains):
    """autostart:=false: nothing published until configure + activate; deactivate keeps the model;
    cleanup frees it; every transition is a ~/change_state call from this process."""
    reference, _ = route
    domain = ros_domains.new()
    node = start_unconfigured(start_node, domain, model16)
    client = client_factory(domain)
    life = LifecycleClient(client)
    pub = client.node.create_publisher(Image, IMAGE_TOPIC, reliable_qos())
    assert life.state() == "unconfigured"
    assert "loaded" not in node.output(), "the model was loaded before configure"
    pub.publish(array_image(reference[0], "bgr8", (1, 0)))
    assert quiet(client), "an unconfigured node published"
    assert pub.get_subscription_count() == 0, "an unconfigured node subscribes to the images"

    assert life.transition(Transition.TRANSITION_CONFIGURE), node.output()
    assert life.state() == "inactive"
    assert lines_with(node, "kernels warm", 1) == 1, node.output()
    pub.publish(array_image(reference[0], "bgr8", (2, 0)))
    assert quiet(client), "an inactive node published"
    assert pub.get_subscription_count() == 0, "an inactive node subscribes to the images"

    assert life.transition(Transition.TRANSITION_ACTIVATE), node.output()
    assert life.state() == "active"
    client.wait_connected(node, [pub])
    est = client.send_and_wait_estimate(pub, array_image(reference[3], "bgr8", (3, 0)), match_stamp=True)
    assert est is not None, f"no estimate once active; output:\n{node.output()}"

    assert life.transition(Transition.TRANSITION_DEACTIVATE), node.output()
    assert life.state() == "inactive"
    assert client.spin_until(lambda: pub.get_subscription_count() == 0, 10.0), "still subscribed"
    pub.publish(array_image(reference[4], "bgr8", (4, 0)))
    assert quiet(client), "a deactivated node published"

    # Re-activating needs no new load: the model was kept.
    assert life.transition(Transition.TRANSITION_ACTIVATE), node.output()
    assert client.spin_until(lambda: pub.get_subscription_count() >= 1, 10.0)
    est = client.send_and_wait_estimate(pub, array_image(reference[5], "bgr8", (5, 0)), match_stamp=True)
    assert est is not None, f"no estimate after re-activation; output:\n{node.output()}"
    assert lines_with(node, "kernels warm", 2, timeout=1.0) == 1, node.output()

    assert life.transition(Transition.TRANSITION_DEACTIVATE)
    assert life.transition(Transition.TRANSITION_CLEANUP), node.output()
    assert life.state() == "unconfigured"
    assert node.wait_for_line("model released", 5.0) is not None, node.output()
    # An invalid transition is refused and changes nothing.
    assert not life.transition(Transition.TRANSITION_ACTIVATE)
    assert life.state() == "unconfigured"
    # Configure again loads the model again.
    assert life.transition(Transition.TRANSITION_CONFIGURE)
    assert lines_with(node, "kernels warm", 2) == 2, node.output()
    code, _ = node.stop()
    assert code == 0, node.output()
    assert "Traceback" not in node.output(), node.output()


@pytest.mark.slow
def test_bad_model_at_configure_leaves_node_unconfigured_and_alive(start_node, client_factory, route,
                                                                    model16, tmp_path, ros_domains):
    reference, _ = route
    domain = ros_domains.new()
    missing = tmp_path / "no_such_model"
    node = start_unconfigured(start_node, domain, missing)
    client = client_factory(domain)
    life = LifecycleClient(client)
    assert life.transition(Transition.TRANSITION_CONFIGURE) is False
    assert life.state() == "unconfigured"
    assert node.alive(), node.output()
    lines_with(node, "configure failed", 1)
    errors = [line for line in node.lines if "error" in line.lower()]
    print(f"\nerror lines: {errors}")
    assert len(errors) == 1 and "configure failed" in errors[0] and str(missing) in errors[0], node.output()
    assert "stays unconfigured" in errors[0]
    # Fixed model_path: the same node configures and works.
    assert client.set_string_param("model_path", str(model16)).successful
    assert life.transition(Transition.TRANSITION_CONFIGURE), node.output()
    assert life.transition(Transition.TRANSITION_ACTIVATE), node.output()
    pub = client.node.create_publisher(Image, IMAGE_TOPIC, reliable_qos())
    client.wait_connected(node, [pub])
    assert client.send_and_wait_estimate(pub, array_image(reference[2], "bgr8", (2, 0))) is not None
    code, _ = node.stop()
    assert code == 0, node.output()


@pytest.mark.slow
def test_autostart_is_active_and_debug_image_shows_the_frame_beside_its_thumbnail(
        start_node, client_factory, route, model16, ros_domains):
    import cv2

    reference, _ = route
    domain = ros_domains.new()
    node = start_node(domain, model16, {"reliable": "true"})  # model16 stores thumbnails
    client = client_factory(domain)
    life = LifecycleClient(client)
    views: list[Image] = []
    debug_sub = client.node.create_subscription(Image, f"/{NODE}/debug_image", views.append, reliable_qos())
    node.wait_ready()
    assert life.state() == "active"  # autostart (the default)
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
    code, _ = node.stop()
    assert code == 0, node.output()
