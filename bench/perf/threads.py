"""Per-frame latency on a shared CPU: Numba threads against a competing busy process.

    python -m bench.perf.threads                        # 12 and 132 modules, K = 1 and all, 0 and 1 busy
    python -m bench.perf.threads --modules 12 --preselect 1 --frames 200 --repeats 7

A robot's cores are shared with its other nodes. Each row times
``Localizer.localize`` (preprocessing, template pre-selection, SNN, readout) on
one frame at a time, the way the node calls it, for:

- ``threads``: ``auto`` (this version: :func:`vprsnn_ros.snn.threads.threads_for`
  gives a call with little work one thread) or ``all`` (every core on every
  call: how the kernels ran before);
- ``busy``: 0, or 1 process spinning ``while 1: pass`` at nice 0 on the other core(s).

It prints the median over ``--repeats`` runs of each run's mean and 99th
percentile per-frame latency, and the ratio of the busy latency to the idle
one-thread latency (issue 16's target: <= 1.5 with one busy process). The
network is :func:`bench.common.synthetic_network` (speed does not depend on what
was learned); frames are :func:`bench.common.images`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

from bench.common import cpu_line, image_source, images, synthetic_network
from vprsnn_ros.localizer import Localizer
from vprsnn_ros.snn import threads as snn_threads
from vprsnn_ros.snn.network import NetworkConfig


def _busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(n)]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait(10)


def _run(loc: Localizer, frames: np.ndarray) -> tuple[float, float]:
    """(mean, p99) seconds per frame over ``frames``."""
    times = []
    for image in frames:
        start = time.perf_counter()
        loc.localize(image)
        times.append(time.perf_counter() - start)
    return float(np.mean(times)), float(np.percentile(times, 99))


def measure(net, k: int, setting: str, busy: int, frames: np.ndarray, repeats: int) -> dict:
    loc = Localizer([net], preselect_k=k)
    forced = snn_threads.MIN_JOBS_PER_THREAD
    if setting == "all":
        snn_threads.MIN_JOBS_PER_THREAD = 0  # every call on every thread, as before the rule
    try:
        loc.localize(frames[0])  # warm
        procs = _busy(busy)
        try:
            time.sleep(0.5)  # let the busy processes take their cores
            runs = [_run(loc, frames) for _ in range(repeats)]
        finally:
            _stop(procs)
    finally:
        snn_threads.MIN_JOBS_PER_THREAD = forced
    means, p99s = zip(*runs)
    return {"modules": net.n_modules, "k": k or net.n_modules, "threads": setting, "busy": busy,
            "mean_ms": 1e3 * float(np.median(means)), "p99_ms": 1e3 * float(np.median(p99s)),
            "worst_mean_ms": 1e3 * float(np.max(means))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", type=int, nargs="+", default=[12, 132])
    ap.add_argument("--preselect", type=int, nargs="+", default=[1, 0], metavar="K", help="0 = every module")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(cpu_line())
    print(f"frames: {image_source()}, {args.frames} per run, median of {args.repeats} runs")
    frames = images(args.frames)
    # Localizer takes camera frames: give it the preprocessed 28 x 28 pixels as a gray image.
    frames = frames.reshape(len(frames), 28, 28)
    print(f"{'modules':>7} {'K':>4} {'threads':>7} {'busy':>4} {'mean ms':>8} {'p99 ms':>8} "
          f"{'worst ms':>8} {'x idle 1-thread':>15}")
    for m in args.modules:
        net = synthetic_network(NetworkConfig(), m)
        for k in args.preselect:
            rows = [measure(net, k, setting, busy, frames, args.repeats)
                    for setting in ("auto", "all") for busy in (0, 1)]
            idle_one = next(r for r in rows if r["threads"] == "auto" and r["busy"] == 0)["mean_ms"]
            if rows[0]["k"] == m:  # the full network: auto uses every thread; time one thread too
                snn_threads.set_limit(1)
                try:
                    idle_one = measure(net, k, "auto", 0, frames, args.repeats)["mean_ms"]
                finally:
                    snn_threads.set_limit(0)
            for r in rows:
                print(f"{r['modules']:7d} {r['k']:4d} {r['threads']:>7} {r['busy']:4d} {r['mean_ms']:8.2f} "
                      f"{r['p99_ms']:8.2f} {r['worst_mean_ms']:8.2f} {r['mean_ms'] / idle_one:15.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
