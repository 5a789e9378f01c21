"""What the tests that run the localizer node over real DDS share: the node process, this
process's ROS side, QoS and Image messages.

* :class:`NodeProcess`: ``python -m vprsnn_ros.nodes.localizer_node --ros-args ...`` in a
  process group of its own on a ROS domain of its own (loopback discovery), its output
  collected line by line by a reader thread, stopped with SIGINT (SIGKILL after a timeout).
* :class:`RosClient`: an rclpy Context + node of this process on the same domain, subscribed
  to the localizer's outputs and ``/diagnostics``, with its service clients; every wait
  spins until a condition holds or a deadline passes (never a fixed sleep: the machine may
  be busy). Test files subclass it for what only they need.
* :func:`reliable_qos`, :func:`raw_image`, :func:`array_image`, :func:`stamp_of`.

The ``start_node``, ``client_factory`` and ``localhost_only`` fixtures of conftest.py start
and close these, so that nothing outlives its test. Test files import this module as
``from ros_harness import ...`` (pytest puts ``test/`` on sys.path: it has no
``__init__.py``). It imports without rclpy, as every test file must (test_collection.py):
the ``ros`` marker skips, or fails in CI, the tests that need it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pytest

try:  # optional: the `ros` marker skips (fails in CI) the tests that need them
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
    from rclpy.publisher import Publisher
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float32, Int32
    from std_srvs.srv import Trigger
except ImportError:
    pass

REPO = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO / "config" / "localize.yaml"
NODE = "vprsnn_localizer"
IMAGE_TOPIC = "/test_cam/image"  # the node's `image` input, remapped (unless a test names another)

# Generous deadlines: a 2-core machine may be running benchmarks at the same time.
READY_TIMEOUT = 90.0    # node start: imports, model load, kernel warm-up
FRAME_TIMEOUT = 30.0    # one frame in, its estimate out
DIAG_TIMEOUT = 15.0     # a (fresh, matching) /diagnostics message
STOP_TIMEOUT = 10.0     # SIGINT -> exit


# --------------------------------------------------------------------------
# the node process
# --------------------------------------------------------------------------

class NodeProcess:
    """The localizer node in a subprocess; stdout+stderr are collected by a reader thread.

    ``params``: ``-p name:=value`` each, after ``params_file`` (None: the node's defaults)
    and ``model_path``. ``image_topic``: where the node's ``image`` input is remapped (None:
    not remapped). ``ready_timeout`` and ``stop_timeout``: the defaults of :meth:`wait_ready`
    and :meth:`stop`. ``env``: the process's environment (default: this one's, on
    ``domain_id`` with loopback discovery and unbuffered output).
    """

    def __init__(self, domain_id: int, model: Path | str, params: dict | None = None, *,
                 image_topic: str | None = IMAGE_TOPIC, params_file: Path | None = PARAMS_FILE,
                 ready_timeout: float = READY_TIMEOUT, stop_timeout: float = STOP_TIMEOUT,
                 env: dict[str, str] | None = None):
        cmd = [sys.executable, "-m", "vprsnn_ros.nodes.localizer_node", "--ros-args"]
        if params_file is not None:
            cmd += ["--params-file", str(params_file)]
        cmd += ["-p", f"model_path:={model}"]
        for name, value in (params or {}).items():
            cmd += ["-p", f"{name}:={value}"]
        if image_topic is not None:
            cmd += ["-r", f"image:={image_topic}"]
        if env is None:
            env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                       PYTHONUNBUFFERED="1")
        self.domain_id = domain_id
        self.cmd = cmd
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.stopped_after: float | None = None  # seconds from the last stop() to the exit
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        # A session of its own: SIGINT/SIGKILL reach the node's whole process group, not pytest.
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

    def count_lines(self, needle: str, count: int, timeout: float = 10.0) -> int:
        """How many output lines contain ``needle``, once ``count`` do, at EOF or at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = sum(needle in line for line in self.lines)
                left = deadline - time.monotonic()
                if found >= count or self._eof or left <= 0:
                    return found
                self._cond.wait(min(left, 0.5))

    def wait_for_line(self, needle: str, timeout: float, count: int = 1) -> str | None:
        """The ``count``-th output line containing ``needle``, or None at EOF / the deadline."""
        if self.count_lines(needle, count, timeout) < count:
            return None
        with self._cond:
            return [line for line in self.lines if needle in line][count - 1]

    def wait_ready(self, timeout: float | None = None) -> str:
        """The node's ``ready:`` line; fails the test with its output if it does not come."""
        timeout = self.ready_timeout if timeout is None else timeout
        line = self.wait_for_line("ready:", timeout)
        if line is None:
            pytest.fail(f"node not ready within {timeout} s (exit code {self.proc.poll()}); "
                        f"command {' '.join(self.cmd)}; output:\n{self.output()}")
        return line

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if still running at the deadline. Once it has exited, the
        reader thread has its last lines too (output() is complete)."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(timeout=5.0)
        return code

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGINT to the process group; SIGKILL after ``timeout`` (default ``stop_timeout``).
        Returns the exit code, None if it had to be killed; ``stopped_after`` is the seconds
        it took."""
        timeout = self.stop_timeout if timeout is None else timeout
        started = time.monotonic()
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        code = self.wait_exit(timeout)
        self.stopped_after = time.monotonic() - started
        if code is None:
            self.kill()
        self._reader.join(timeout=5.0)
        return code

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.wait_exit(10.0)

    def rss_kb(self) -> int | None:
        """Resident memory (VmRSS) of the node process in kB; None once it is gone."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


# --------------------------------------------------------------------------
# QoS and messages
# --------------------------------------------------------------------------

def reliable_qos(depth: int = 10, latched: bool = False) -> QoSProfile:
    """RELIABLE, KEEP_LAST(``depth``); ``latched``: TRANSIENT_LOCAL (a late subscriber still
    gets the last message, as from the node's ``~/places``)."""
    return QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=depth,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def raw_image(encoding: str, height: int, width: int, step: int, data: bytes,
              stamp: tuple[int, int] = (0, 0), frame_id: str = "test_cam") -> Image:
    """An Image with exactly these fields, consistent or not (for the bad-input tests)."""
    msg = Image()
    msg.header.stamp = Time(sec=stamp[0], nanosec=stamp[1])
    msg.header.frame_id = frame_id
    msg.encoding = encoding
    msg.height, msg.width, msg.step = height, width, step
    msg.is_bigendian = int(sys.byteorder == "big")
    msg.data = data
    return msg


def array_image(a: np.ndarray, encoding: str | None = None, stamp: tuple[int, int] = (0, 0),
                frame_id: str = "test_cam") -> Image:
    """The Image of an array (rows unpadded); ``encoding`` None: bgr8 for H x W x 3, else mono8."""
    a = np.ascontiguousarray(a)
    if encoding is None:
        encoding = "bgr8" if a.ndim == 3 else "mono8"
    row = a.shape[1] * (a.shape[2] if a.ndim == 3 else 1) * a.itemsize
    return raw_image(encoding, a.shape[0], a.shape[1], row, a.tobytes(), stamp, frame_id)


def stamp_of(msg) -> tuple[int, int]:
    """(sec, nanosec) of a message's header stamp: how an answer names its frame."""
    return msg.header.stamp.sec, msg.header.stamp.nanosec


def settled(d: dict) -> bool:
    """Diagnostics values in which every received frame is accounted for (none pending or in
    progress): received = processed + dropped + rejected + failed."""
    return int(d["frames_received"]) == (int(d["frames_processed"]) + int(d["frames_dropped"])
                                         + int(d["frames_rejected"]) + int(d["frames_failed"]))


# --------------------------------------------------------------------------
# this process's ROS side
# --------------------------------------------------------------------------

class RosClient:
    """An rclpy Context + node on ``domain_id``, subscribed to the localizer's ``~/estimate``,
    ``~/place_id``, ``~/confidence`` and its ``/diagnostics``, with clients of its
    ``~/reload``, ``~/set_parameters``, ``~/change_state`` and ``~/get_state``.

    Class attributes a test file's subclass may change: ``output_depth`` (KEEP_LAST depth of
    the output subscriptions), ``spin_step`` (longest single spin), ``call_timeout`` and
    ``service_timeout`` (of :meth:`call`; None: the call's timeout), ``ready_timeout`` (of a
    lifecycle transition, which may load the model).
    """

    output_depth = 100
    spin_step = 0.05
    call_timeout = 60.0
    service_timeout: float | None = None
    ready_timeout = READY_TIMEOUT

    def __init__(self, domain_id: int, name: str | None = None):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name or f"vprsnn_test_{domain_id}_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.estimates: list[PoseWithCovarianceStamped] = []
        self.place_ids: list[int] = []
        self.confidences: list[float] = []
        self.statuses: list = []  # the localizer's DiagnosticStatus messages
        self.diagnostics: list[tuple[float, dict]] = []  # (arrival monotonic time, their values)
        self.watched: NodeProcess | None = None  # a service call stops waiting when it dies
        qos = reliable_qos(self.output_depth)
        self.sub_estimate = self.node.create_subscription(
            PoseWithCovarianceStamped, f"/{NODE}/estimate", self.estimates.append, qos)
        self.node.create_subscription(Int32, f"/{NODE}/place_id", lambda m: self.place_ids.append(m.data), qos)
        self.node.create_subscription(Float32, f"/{NODE}/confidence", lambda m: self.confidences.append(m.data), qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, reliable_qos(100))
        self.reload_client = self.node.create_client(Trigger, f"/{NODE}/reload")
        self.param_client = self.node.create_client(SetParameters, f"/{NODE}/set_parameters")
        self.change_client = self.node.create_client(ChangeState, f"/{NODE}/change_state")
        self.state_client = self.node.create_client(GetState, f"/{NODE}/get_state")

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == NODE:
                self.statuses.append(status)
                self.diagnostics.append((time.monotonic(), {kv.key: kv.value for kv in status.values}))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    # ---------------------------------------------------------------- waiting

    def spin_until(self, predicate: Callable[[], object], timeout: float) -> bool:
        """Spin until ``predicate()`` is true or the deadline passes; returns its last value."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return bool(predicate())
            self.executor.spin_once(timeout_sec=min(self.spin_step, left))
        return True

    def wait_connected(self, node: NodeProcess, publishers: Sequence = (), *, subscriptions: Iterable | None = None,
                       services: Iterable | None = None, diagnostics: bool = True, timeout: float = 30.0) -> None:
        """Until the node subscribes to each of our ``publishers``, publishes to each of our
        ``subscriptions`` (default: ~/estimate), serves each of ``services`` (default:
        ~/reload) and (``diagnostics``) its /diagnostics came; fails the test saying what is
        missing. DDS discovery takes a while after the node's ready line."""
        subscriptions = [self.sub_estimate] if subscriptions is None else list(subscriptions)
        services = [self.reload_client] if services is None else list(services)
        ok = self.spin_until(lambda: (all(p.get_subscription_count() >= 1 for p in publishers)
                                      and all(s.get_publisher_count() >= 1 for s in subscriptions)
                                      and (not diagnostics or len(self.diagnostics) >= 1)
                                      and all(c.service_is_ready() for c in services)), timeout)
        if not ok:
            subs = self.node.get_subscriber_names_and_types_by_node(NODE, "/") \
                if NODE in self.node.get_node_names() else "node not in the graph"
            pytest.fail(f"not connected to the node within {timeout} s: matched subscriptions "
                        f"{[p.get_subscription_count() for p in publishers]} on "
                        f"{[p.topic_name for p in publishers]}, matched publishers "
                        f"{[s.get_publisher_count() for s in subscriptions]} on "
                        f"{[s.topic_name for s in subscriptions]}, "
                        f"services ready {[c.service_is_ready() for c in services]}, diagnostics "
                        f"{len(self.diagnostics)}; the node subscribes to {subs}; node alive {node.alive()}, "
                        f"output:\n{node.output()}")

    def image_publisher(self, node: NodeProcess, qos: QoSProfile | None = None, topic: str = IMAGE_TOPIC) -> Publisher:
        """Once the node is ready, a publisher of Images on ``topic`` (``qos`` default:
        :func:`reliable_qos`) that the node has matched, as :meth:`wait_connected` waits."""
        node.wait_ready()
        pub = self.node.create_publisher(Image, topic, reliable_qos() if qos is None else qos)
        self.wait_connected(node, [pub])
        return pub

    def wait_diag(self, predicate: Callable[[dict], bool] = lambda d: True, after: float | None = None,
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

    # ---------------------------------------------------------------- frames

    def send_and_wait_estimate(self, pub, msg, timeout: float = FRAME_TIMEOUT,
                               match_stamp: bool = False) -> PoseWithCovarianceStamped | None:
        """Publish one frame and wait for the next estimate (with ``match_stamp``: the
        next one carrying the frame's stamp); returns it or None."""
        before = len(self.estimates)
        stamp = stamp_of(msg)

        def found():
            for e in self.estimates[before:]:
                if not match_stamp or stamp_of(e) == stamp:
                    return e
            return None

        pub.publish(msg)
        self.spin_until(lambda: found() is not None, timeout)
        return found()

    # ---------------------------------------------------------------- services

    def call(self, client, request, timeout: float | None = None):
        """The service's answer; fails the test when the service is missing or does not answer
        in time (or the ``watched`` node died meanwhile)."""
        timeout = self.call_timeout if timeout is None else timeout
        service_timeout = timeout if self.service_timeout is None else self.service_timeout
        assert client.wait_for_service(timeout_sec=service_timeout), f"service {client.srv_name} missing"
        future = client.call_async(request)
        node = self.watched
        answered = self.spin_until(lambda: future.done() or (node is not None and not node.alive()), timeout)
        assert answered and future.done(), (f"no answer from {client.srv_name} (node alive: "
                                            f"{node.alive() if node else '?'}):\n{node.output() if node else ''}")
        return future.result()

    def set_params(self, **values) -> list:
        """``~/set_parameters`` of these values (bool, int, float or str); the results, in order."""
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

    def reload(self) -> Trigger.Response:
        return self.call(self.reload_client, Trigger.Request())

    def state(self) -> str:
        """The lifecycle state's label (``unconfigured``, ``inactive``, ``active``, ...)."""
        return self.call(self.state_client, GetState.Request()).current_state.label

    def transition(self, transition_id: int, timeout: float | None = None) -> bool:
        """Whether the node made the lifecycle transition; ``timeout`` defaults to ``ready_timeout``
        (configure loads the model: slow)."""
        request = ChangeState.Request(transition=Transition(id=transition_id))
        timeout = self.ready_timeout if timeout is None else timeout
        return bool(self.call(self.change_client, request, timeout=timeout).success)
