"""End-to-end latency and throughput of the localizer node over DDS.

Starts the ``localizer`` node as a subprocess, publishes frames at each input
rate for ``--seconds`` and matches every ``~/estimate`` to its frame by stamp:

    python -m bench.perf.node_latency --model MODEL_DIR --rates 10 20 50
    python -m bench.perf.node_latency --places 3300          # random-weight model of that size
    python -m bench.perf.node_latency --places 3300 --preselect 8 --rates 30 --repeats 5

Prints per rate: frames published, estimates received, throughput, dropped
frames (from the node's diagnostics) and publish-to-estimate latency
p50/p95/p99 and the node's peak resident memory (median over ``--repeats``
runs), with the CPU and Numba target. A random-weight model costs the
same per frame as a trained one of the same size (the work is the synaptic
events), which is what this measures.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, cpu_line


def random_model(out: Path, n_places: int, per_module: int = 25) -> Path:
    """A complete model of ``n_places`` places with initial (untrained) weights."""
    from vprsnn_ros.model.network_io import network_meta, save_module, save_network_part
    from vprsnn_ros.model.store import ModelStore
    from vprsnn_ros.snn.module_training import ModuleResult
    from vprsnn_ros.snn.network import NetworkConfig, initial_weights, make_delays, make_regions

    cfg = NetworkConfig()
    regions = make_regions(n_places, per_module, False, 0)
    store = ModelStore.create(out, network_meta(cfg, [f"p{k}" for k in range(n_places)]))
    save_network_part(store, make_delays(cfg), regions, 0)
    rs = np.random.default_rng(0)
    for m, region in enumerate(regions):
        w = initial_weights(cfg, m)
        w *= (cfg.params.weight_sum / w.sum(axis=0))[None, :]
        save_module(store, m, ModuleResult(epochs=0, weights=w, theta=rs.uniform(40, 50, cfg.n_neurons),
                                           assignments=region[np.arange(cfg.n_neurons) % len(region)].astype(np.int32)))
    store.write_part("hyperactivity", {"active_images": np.zeros((len(regions), cfg.n_neurons), np.int32)})
    store.update_meta(hyperactive_threshold=0, complete=True)
    return out


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a running process, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run_rate(model: Path, rate: float, seconds: float, domain: int, params: list[str]) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.qos import qos_profile_sensor_data

    from vprsnn_ros.io.synthetic import make_route
    from vprsnn_ros.nodes.image_convert import array_to_image

    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vprsnn_ros.nodes.localizer_node", "--ros-args", "--params-file",
         str(ROOT / "config" / "localize.yaml"), "-p", f"model_path:={model}", *params, "-r", "image:=/bench/image"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            if "ready:" in line:
                ready.set()
    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(300):
        proc.kill()
        raise RuntimeError("the node did not become ready")
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("latency_bench", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    sent: dict[tuple[int, int], float] = {}
    latencies: list[float] = []
    diagnostics: dict[str, str] = {}

    def on_estimate(msg: PoseWithCovarianceStamped) -> None:
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if key in sent:
            latencies.append(time.perf_counter() - sent[key])

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "vprsnn_localizer":
                diagnostics.update({kv.key: kv.value for kv in status.values})

    node.create_subscription(PoseWithCovarianceStamped, "/vprsnn_localizer/estimate", on_estimate, 100)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    pub = node.create_publisher(type(array_to_image(np.zeros((2, 2), np.uint8), "mono8")),
                                "/bench/image", qos_profile_sensor_data)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    frames = make_route(50, seed=1)[1]
    period = 1.0 / rate
    start = time.perf_counter()
    k = 0
    while time.perf_counter() - start < seconds:
        msg = array_to_image(frames[k % len(frames)], "bgr8")
        msg.header.stamp.sec, msg.header.stamp.nanosec = k, 1
        sent[(k, 1)] = time.perf_counter()
        pub.publish(msg)
        k += 1
        next_time = start + k * period
        while time.perf_counter() < next_time:
            executor.spin_once(timeout_sec=max(0.0, min(0.005, next_time - time.perf_counter())))
    drain = time.perf_counter() + 3.0
    while time.perf_counter() < drain:
        executor.spin_once(timeout_sec=0.05)
    peak = peak_rss_mb(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    node.destroy_node()
    rclpy.shutdown(context=context)
    lat = np.array(latencies) * 1e3
    return {"published": k, "estimates": len(latencies), "throughput_hz": len(latencies) / seconds,
            "dropped": int(diagnostics.get("frames_dropped", -1)),
            "p50": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "p95": float(np.percentile(lat, 95)) if lat.size else float("nan"),
            "p99": float(np.percentile(lat, 99)) if lat.size else float("nan"),
            "peak_rss_mb": peak}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model directory (default: a random model of --places)")
    ap.add_argument("--places", type=int, default=3300)
    ap.add_argument("--rates", type=float, nargs="+", default=[10, 20, 50])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--preselect", type=int, metavar="K",
                    help="node parameter preselect_k (default: the model's calibrated K)")
    args = ap.parse_args()
    params = [] if args.preselect is None else ["-p", f"preselect_k:={args.preselect}"]
    model = args.model
    if model is None:
        model = random_model(Path(tempfile.mkdtemp(prefix="vprsnn_bench_")) / "model", args.places)
    print(cpu_line())
    print(f"model {model}; preselect_k {args.preselect if args.preselect is not None else 'model'}; "
          f"{args.seconds:.0f} s per run, medians of {args.repeats} runs")
    for rate in args.rates:
        runs = [run_rate(model, rate, args.seconds, 60 + r, params) for r in range(args.repeats)]
        med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
        print(f"input {rate:5.1f} Hz: published {med['published']:.0f}, estimates {med['estimates']:.0f} "
              f"({med['throughput_hz']:.2f} Hz), dropped {med['dropped']:.0f}, latency ms "
              f"p50 {med['p50']:.1f} p95 {med['p95']:.1f} p99 {med['p99']:.1f}, "
              f"node peak RSS {med['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
