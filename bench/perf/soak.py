"""Soak: the localizer node driven at 30 Hz for 30 minutes, reloaded every 5 minutes.

    python -m bench.perf.soak                                   # 3,300 places, tracking (L = 10, K = 1), 30 min
    python -m bench.perf.soak --model /path/to/model --minutes 30 --json-out soak.json
    python -m bench.perf.soak --places 300 --minutes 1 --reload-every 20   # the 60-second version (tested)

Starts the real node (``python -m vprsnn_ros.nodes.localizer_node``) on a model
(``--model``, else a synthetic trained-like one of ``--places`` places written
to a temporary folder: speed and memory do not depend on what was learned),
publishes camera frames at ``--rate`` Hz and, during the run:

- calls ``~/reload`` every ``--reload-every`` seconds;
- once, halfway through the first reload period, renames the model directory
  away and calls ``~/reload``: it must fail and the old model must keep
  answering; the directory is then restored and the next reload must succeed.

Per minute it prints the node's resident memory (VmRSS), the end-to-end latency
(frame published -> ``~/estimate`` with its stamp) p50/p99, the node's own
processing p99 (``/diagnostics``), and frames sent / received / answered /
dropped. Targets (issue 17): RSS growth <= 5 % after the first minute, no frame
answered by a half-loaded model (no failed frame, every answer a valid place),
every reload answered.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import cpu_line, images, synthetic_network


def write_synthetic_model(out: Path, n_places: int, places_per_module: int = 25) -> Path:
    """A complete model directory holding :func:`bench.common.synthetic_network` (no training)."""
    from vprsnn_ros.model.network_io import network_meta, save_module, save_network_part
    from vprsnn_ros.model.store import ModelStore
    from vprsnn_ros.snn.module_training import ModuleResult
    from vprsnn_ros.snn.network import NetworkConfig

    cfg = NetworkConfig(places_per_module=places_per_module)
    net = synthetic_network(cfg, -(-n_places // places_per_module), places_per_module)
    names = [f"place_{k:05d}" for k in range(net.n_places)]
    store = ModelStore.create(out, network_meta(cfg, names))
    save_network_part(store, net.delays, net.regions, 0)
    for m in range(net.n_modules):
        save_module(store, m, ModuleResult(weights=net.weights[m], theta=net.theta[m],
                                           assignments=net.assignments[m], epochs=cfg.epochs))
    store.write_part("hyperactivity", {"active_images": net.active_images})
    store.update_meta(hyperactive_threshold=0, preselect_k=1, complete=True)
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class Driver:
    """The bench's ROS side: publishes frames, collects answers and diagnostics, calls ~/reload."""

    def __init__(self, frames: np.ndarray, rate: float, domain: int) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseWithCovarianceStamped
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from std_msgs.msg import Int32
        from std_srvs.srv import Trigger

        self._Image, self._Trigger = Image, Trigger
        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node("vprsnn_soak", context=self.ctx)
        self.frames = frames
        self.lock = threading.Lock()
        self.sent: dict[int, float] = {}          # stamp ns -> time sent
        self.latencies: list[tuple[float, float]] = []  # (time answered, seconds)
        self.answers = 0
        self.bad_answers = 0
        self.diagnostics: dict[str, str] = {}
        self.n_places = 0
        self.pub = self.node.create_publisher(Image, "/soak/image", qos_profile_sensor_data)
        self.node.create_subscription(Int32, "/vprsnn_localizer/place_id", self._on_place, 100)
        self.node.create_subscription(PoseWithCovarianceStamped, "/vprsnn_localizer/estimate",
                                      self._on_estimate, 100)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.client = self.node.create_client(Trigger, "/vprsnn_localizer/reload")
        self.k = 0
        self.publishing = False
        self.node.create_timer(1.0 / rate, self._publish)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.ctx)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self.executor.spin, daemon=True)
        self._spin.start()

    def _publish(self) -> None:
        if not self.publishing:
            return
        image = self.frames[self.k % len(self.frames)]
        now = time.time_ns()
        msg = self._Image(height=image.shape[0], width=image.shape[1], encoding="mono8", is_bigendian=0,
                          step=image.shape[1], data=image.tobytes())
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 10**9)
        with self.lock:
            self.sent[now] = time.monotonic()
        self.pub.publish(msg)
        self.k += 1

    def _on_place(self, msg) -> None:
        with self.lock:
            self.answers += 1
            if not -1 <= msg.data < max(self.n_places, 1):
                self.bad_answers += 1

    def _on_estimate(self, msg) -> None:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        with self.lock:
            sent = self.sent.pop(stamp, None)
            if sent is not None:
                self.latencies.append((time.monotonic(), time.monotonic() - sent))

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name == "vprsnn_localizer":
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}

    def reload(self, timeout: float = 120.0) -> dict:
        started = time.monotonic()
        future = self.client.call_async(self._Trigger.Request())
        while not future.done() and time.monotonic() - started < timeout:
            time.sleep(0.01)
        seconds = time.monotonic() - started
        if not future.done():
            return {"answered": False, "success": False, "seconds": seconds, "message": "no answer"}
        r = future.result()
        return {"answered": True, "success": bool(r.success), "seconds": round(seconds, 3), "message": r.message}

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


def run(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="vprsnn_soak_"))
    model = Path(args.model) if args.model else write_synthetic_model(work / "model", args.places)
    frames = images(max(args.distinct_frames, 1)).reshape(-1, 28, 28)
    domain = args.domain
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    log = (work / "node.log").open("w")
    node = subprocess.Popen([sys.executable, "-m", "vprsnn_ros.nodes.localizer_node", "--ros-args",
                             "-p", f"model_path:={model}", "-p", f"sequence_length:={args.sequence_length}",
                             "-p", f"preselect_k:={args.preselect}", "-r", "image:=/soak/image"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    driver = Driver(frames, args.rate, domain)
    minutes, reloads = [], []
    try:
        deadline = time.monotonic() + 300
        while "ready:" not in (work / "node.log").read_text():
            if node.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the node did not start:\n{(work / 'node.log').read_text()[-3000:]}")
            time.sleep(0.2)
        if not driver.client.wait_for_service(timeout_sec=60):
            raise SystemExit("no ~/reload service")
        from vprsnn_ros.model.store import ModelStore

        driver.n_places = int(ModelStore.open(model).meta["places"]["count"])
        driver.publishing = True
        start = time.monotonic()
        end = start + 60.0 * args.minutes
        next_reload = start + args.reload_every
        away_at = start + args.reload_every / 2
        next_minute = start + 60.0
        last = {"sent": 0, "answers": 0}
        last_row_at = start
        while True:
            now = time.monotonic()
            done = now >= end  # checked once per pass: the last row is written exactly once
            if not done and away_at is not None and now >= away_at:
                away_at = None
                moved = model.with_name(model.name + ".away")
                os.rename(model, moved)
                try:
                    before = driver.answers
                    r = driver.reload()
                    time.sleep(2.0)  # the old model must keep answering meanwhile
                    r.update(kind="model renamed away", answered_after=driver.answers - before)
                finally:
                    os.rename(moved, model)
                reloads.append(r)
            if not done and now >= next_reload:
                next_reload += args.reload_every
                reloads.append({**driver.reload(), "kind": "scheduled"})
            # A row per minute, and one for the last part of the run unless it is under a second.
            if now >= next_minute or (done and now - last_row_at > 1.0):
                if now >= next_minute:
                    next_minute += 60.0
                last_row_at = now
                with driver.lock:
                    lat = [s for t, s in driver.latencies if t >= now - 60.0]
                    diag = dict(driver.diagnostics)
                    sent, answers = driver.k, driver.answers
                minutes.append({
                    "minute": len(minutes) + 1, "rss_mb": round(rss_mb(node.pid), 1),
                    "e2e_p50_ms": round(1e3 * float(np.percentile(lat, 50)), 2) if lat else None,
                    "e2e_p99_ms": round(1e3 * float(np.percentile(lat, 99)), 2) if lat else None,
                    "node_p99_ms": float(diag.get("latency_p99_ms", "nan")),
                    "sent": sent - last["sent"], "answered": answers - last["answers"],
                    "received_total": int(diag.get("frames_received", 0)),
                    "dropped_total": int(diag.get("frames_dropped", 0)),
                    "failed_total": int(diag.get("frames_failed", 0)),
                })
                last = {"sent": sent, "answers": answers}
                print(_minute_line(minutes[-1]), flush=True)
            if done:
                break
            time.sleep(0.05)
        driver.publishing = False
        time.sleep(1.0)
    finally:
        driver.close()
        if node.poll() is None:
            os.killpg(node.pid, 2)
            try:
                node.wait(20)
            except subprocess.TimeoutExpired:
                node.kill()
        log.close()
    rss = [m["rss_mb"] for m in minutes]
    growth = (max(rss[1:]) - rss[0]) / rss[0] if len(rss) > 1 else 0.0
    failed_reload = next((r for r in reloads if r["kind"] == "model renamed away"), None)
    after_failed = [r for r in reloads if r["kind"] == "scheduled"]
    summary = {
        "cpu": cpu_line(), "model": str(model), "places": driver.n_places, "minutes": minutes,
        "reloads": reloads, "rss_growth_after_first_minute": round(growth, 4),
        "every_reload_answered": all(r["answered"] for r in reloads),
        "renamed_model_reload_failed": bool(failed_reload and not failed_reload["success"]),
        "answers_during_failed_reload": failed_reload["answered_after"] if failed_reload else 0,
        "next_reload_succeeded": bool(after_failed and after_failed[0]["success"]),
        "bad_answers": driver.bad_answers, "frames_failed": minutes[-1]["failed_total"] if minutes else None,
        "args": vars(args),
    }
    shutil.rmtree(work, ignore_errors=True)
    return summary


def _minute_line(m: dict) -> str:
    return (f"min {m['minute']:3d}  RSS {m['rss_mb']:8.1f} MB  e2e p50/p99 {m['e2e_p50_ms']}/{m['e2e_p99_ms']} ms  "
            f"node p99 {m['node_p99_ms']} ms  sent {m['sent']}  answered {m['answered']}  "
            f"received {m['received_total']}  dropped {m['dropped_total']}  failed {m['failed_total']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a model directory (default: a synthetic one of --places places)")
    ap.add_argument("--places", type=int, default=3300)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=30.0, help="frames per second")
    ap.add_argument("--reload-every", type=float, default=300.0, metavar="S")
    ap.add_argument("--sequence-length", type=int, default=10, help="tracking with pre-selection (L > 1)")
    ap.add_argument("--preselect", type=int, default=1, metavar="K")
    ap.add_argument("--distinct-frames", type=int, default=200)
    ap.add_argument("--domain", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "77")))
    ap.add_argument("--json-out", help="also write the summary here")
    args = ap.parse_args()
    print(cpu_line(), flush=True)
    summary = run(args)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("minutes", "args")}, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=2) + "\n")
    ok = (summary["every_reload_answered"] and summary["renamed_model_reload_failed"]
          and summary["next_reload_succeeded"] and summary["bad_answers"] == 0 and not summary["frames_failed"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
