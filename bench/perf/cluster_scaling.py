"""Training on Dask: time for M modules on 1 and 2 workers, overhead per task, a cost model.

    python -m bench.perf.cluster_scaling                  # ~3 minutes on 2 cores
    python -m bench.perf.cluster_scaling --modules 16 --repeats 5

Measures on this machine (medians over ``--repeats`` runs; the machine may be
shared, so the numbers are noisy):

1. the pieces of the cost model, in this process: t_mod, the time to train
   one bench module (a single-threaded Numba kernel); t_inf, the core-seconds
   to run one module on one reference image (hyperactivity recording); and
   the same two at the full size (400 neurons, 25 places, 60 epochs);
2. the Dask overhead: starting a LocalCluster, and the round trip of an empty
   task (o_task);
3. whole trainings of M bench modules: in process (1 thread) and on a
   LocalCluster of 1 and 2 worker processes (cluster start excluded),
   split into module training and hyperactivity recording.

The cost model (printed with the numbers; see also README, "Cluster"):

    T_train(W) = ceil(M / W) * (t_mod * W / C_eff(W) + o_task)   one module per task
    T_rec(W)   = M * P * t_inf / C_w + n_rec * (c_rec + o_task) / W + n_sh * o_share
    T(W)       = T_start + T_train(W) + T_rec(W)

with M modules, P places, W workers (one task at a time each), C_eff(W) the
cores W single-threaded tasks really get (W on an idle machine with >= W cores;
here it is measured by the same training in process on 1 and 2 threads, which
involves no Dask: the machine is shared), C_w the cores
the workers can use for inference (the lane kernel uses every core of its
machine: here C_w = 2 for 1 and 2 workers alike; W one-core machines: C_w = W),
n_rec recording tasks (one per 8 modules and 256 images; in process: one
per 64 images), c_rec the fixed cost of one recording task, n_sh the arrays
sent to every worker before recording (delays, and weights and theta of each 8
modules) and o_share the time to send one. It is checked against the
measured 1- and 2-worker runs, then projected to 100,000 places at the full
size on W one-core workers.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import cpu_line, image_source
from bench.common import images as bench_images
from vprsnn_ros.parallel.cluster import DaskRunner
from vprsnn_ros.parallel.runner import LocalRunner
from vprsnn_ros.parallel.tasks import activity_task
from vprsnn_ros.snn.module_training import train_module_on_pixels
from vprsnn_ros.snn.network import DelayLayout, NetworkConfig, initial_weights, make_delays
from vprsnn_ros.train.training import train_network

FULL = NetworkConfig()  # 400 neurons, 25 places per module, 60 epochs


def images(n: int) -> np.ndarray:
    """Nordland summer frames, else a synthetic route (seed 1)."""
    return bench_images(n, synthetic_seed=1)


def median(values: list[float]) -> float:
    return float(np.median(values))


def time_module(config: NetworkConfig, pixels: np.ndarray, repeats: int) -> float:
    layout = DelayLayout.build(make_delays(config), config.dt, config.params.delay_max)
    region = np.arange(config.places_per_module)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        train_module_on_pixels(config, layout, 0, region, [pixels[region]], config.epochs)
        times.append(time.perf_counter() - start)
    return median(times)


def time_inference(config: NetworkConfig, pixels: np.ndarray, repeats: int) -> tuple[float, float]:
    """(core-seconds per (module, image), seconds per task) of hyperactivity recording.

    One task = 8 modules; the slope between ``len(pixels) // 4`` and ``len(pixels)``
    images separates the per-image cost from the fixed cost of a task."""
    delays = make_delays(config)
    w = np.stack([initial_weights(config, m) for m in range(8)])
    th = np.full((8, config.n_neurons), config.params.theta_init)
    activity_task(config, delays, w, th, pixels[:2], 0)  # warm the kernels
    few, many = len(pixels) // 4, len(pixels)
    t = {}
    for n in (few, many):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            activity_task(config, delays, w, th, pixels[:n], 0)
            times.append(time.perf_counter() - start)
        t[n] = median(times)
    per_image = max(t[many] - t[few], 0.0) / (many - few)
    cores = os.cpu_count() or 1  # the lane kernel uses every core of the process
    return per_image * cores / 8, max(t[few] - few * per_image, 0.0)


def time_training(config, pixels, names, runner, repeats) -> tuple[float, float, float]:
    """Median (total, module training, recording) seconds of train_network on ``runner``."""
    totals, trains, records = [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            train_network(config, [pixels], names, Path(tmp) / "m", runner=runner)
            totals.append(time.perf_counter() - start)
            import yaml
            meta = yaml.safe_load((Path(tmp) / "m" / "model.yaml").read_text())
            trains.append(meta["training"]["seconds"])
            records.append(meta["training"]["record_seconds"])
    return median(totals), median(trains), median(records)


def empty_task() -> int:
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", type=int, default=8, help="M bench modules")
    ap.add_argument("--neurons", type=int, default=100)
    ap.add_argument("--places-per-module", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--target-places", type=int, default=100_000)
    ap.add_argument("--full-t-mod", type=float, metavar="S",
                    help="also project with this full-size t_mod (e.g. from a measured 3,300-place run)")
    ap.add_argument("--full-t-inf", type=float, metavar="S",
                    help="also project with this full-size t_inf in core-seconds")
    args = ap.parse_args()
    import distributed

    cfg = NetworkConfig(n_neurons=args.neurons, places_per_module=args.places_per_module,
                        epochs=args.epochs)
    n_places = args.modules * cfg.places_per_module
    spare = images(max(n_places, 64))
    pixels, names = spare[:n_places], [f"p{k:05d}" for k in range(n_places)]
    cores = os.cpu_count() or 1
    print(f"load average at the start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"machine: {cpu_line()}; python {platform.python_version()}, dask {distributed.__version__}")
    print("the machine is shared with other jobs: every figure is a median of "
          f"{args.repeats} runs and still noisy")
    print(f"bench modules: {cfg.n_neurons} neurons, {cfg.places_per_module} places, "
          f"{cfg.epochs} epochs; M = {args.modules} modules, P = {n_places} places\n")

    # 1. Pieces of the cost model, in process.
    t_mod = time_module(cfg, pixels, args.repeats)
    t_inf, c_rec = time_inference(cfg, spare[:64], args.repeats)
    t_mod_full_1 = time_module(FULL.with_(epochs=2), spare, args.repeats) / 2
    t_mod_full = t_mod_full_1 * FULL.epochs
    t_inf_full, c_rec_full = time_inference(FULL, spare[:64], args.repeats)
    print(f"images: {image_source()}")
    print(f"t_mod  (one bench module, 1 thread)        {t_mod:8.3f} s")
    print(f"t_inf  (module x image, core-seconds)      {t_inf * 1e3:8.3f} ms")
    print(f"c_rec  (fixed cost of a recording task)    {c_rec * 1e3:8.2f} ms")
    print(f"full size: t_mod = 60 x {t_mod_full_1:.2f} s = {t_mod_full:.0f} s, "
          f"t_inf = {t_inf_full * 1e3:.3f} ms, c_rec = {c_rec_full * 1e3:.1f} ms")

    # 2. Dask overhead.
    starts, overheads, shares = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40)
        client = distributed.Client(cluster)
        client.submit(empty_task, pure=False).result()
        starts.append(time.perf_counter() - start)
        n = 200
        start = time.perf_counter()
        for f in distributed.as_completed([client.submit(empty_task, pure=False) for _ in range(n)]):
            f.result()
        overheads.append((time.perf_counter() - start) / n)
        block = np.zeros((8, cfg.n_inputs, cfg.n_neurons), np.float32)
        start = time.perf_counter()
        for k in range(10):
            block[0, 0, 0] = k  # another array each time (scatter hashes the content)
            client.scatter(block, broadcast=True)
        shares.append((time.perf_counter() - start) / 10)
        client.close()
        cluster.close()
    t_start, o_task, o_share = median(starts), median(overheads), median(shares)
    print(f"T_start (LocalCluster up, first task)     {t_start:8.2f} s")
    print(f"o_task  (empty task round trip, 1 worker)  {o_task * 1e3:8.2f} ms")
    print(f"o_share (8 bench modules' weights to all)  {o_share * 1e3:8.2f} ms\n")

    # 3. Whole trainings.
    rows = []
    for threads in (1, 2):
        with LocalRunner(threads) as local:
            rows.append((f"in process, {threads} thread(s)", threads,
                         *time_training(cfg, pixels, names, local, args.repeats)))
    # Cores two single-threaded tasks really get on this (shared) machine, measured without Dask.
    c_eff = {1: 1.0, 2: min(2.0, max(1.0, rows[0][3] / rows[1][3]))}
    for w in (1, 2):
        cluster = distributed.LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40)
        runner = DaskRunner(distributed.Client(cluster), f"local:{w}", cluster)
        time_training(cfg, pixels[:cfg.places_per_module], names[:cfg.places_per_module], runner, 1)
        rows.append((f"Dask, {w} worker(s)", w, *time_training(cfg, pixels, names, runner, args.repeats)))
        runner.close()

    def model(w: int, m: int, p: int, dask: bool) -> tuple[float, float]:
        o = o_task if dask else 0.0
        train = math.ceil(m / w) * (t_mod * w / c_eff[w] + o)
        # Every run here shares this machine's cores for inference (C_w = cores).
        if dask:
            n_rec = math.ceil(m / 8) * math.ceil(p / 256)
            rec = m * p * t_inf / cores + n_rec * (c_rec + o) / w + (1 + 2 * math.ceil(m / 8)) * o_share
        else:
            rec = m * p * t_inf / cores + math.ceil(p / 64) * c_rec * math.ceil(m / 8)
        return train, rec

    print(f"C_eff(2) = {c_eff[2]:.2f} (in-process 2-thread speedup; 2.00 on an idle 2-core machine)")
    print(f"{'run':24s} {'total s':>8s} {'train s':>8s} {'model':>8s} {'record s':>9s} {'model':>8s}")
    for name, w, total, train, record in rows:
        p_train, p_rec = model(w, args.modules, n_places, name.startswith("Dask"))
        fit = " (C_eff fitted here)" if name.startswith("in process, 2") else ""
        print(f"{name:24s} {total:8.2f} {train:8.2f} {p_train:8.2f} {record:9.2f} {p_rec:8.2f}{fit}")
    speedup = rows[2][3] / rows[3][3]
    predicted = model(1, args.modules, n_places, True)[0] / model(2, args.modules, n_places, True)[0]
    print(f"\nmodule training on Dask, 2 workers vs 1: x{speedup:.2f} (model: x{predicted:.2f})")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")

    # 4. Projection.
    m_full = math.ceil(args.target_places / FULL.places_per_module)
    print(f"\nprojection: {args.target_places} places, full size ({m_full} modules), W one-core "
          f"workers (C_eff = C_w = W), t_mod, t_inf and o_task as measured here")
    sets = [("measured here", t_mod_full, t_inf_full)]
    if args.full_t_mod or args.full_t_inf:
        sets.append(("given", args.full_t_mod or t_mod_full, args.full_t_inf or t_inf_full))
    for label, tm, ti in sets:
        print(f"t_mod = {tm:.1f} s, t_inf = {ti * 1e3:.3f} ms ({label})")
        print(f"{'W':>6s} {'train h':>9s} {'record h':>9s} {'total h':>9s}")
        for w in (2, 16, 64, 256, 1024):
            n_rec = math.ceil(m_full / 8) * math.ceil(args.target_places / 256)
            train = math.ceil(m_full / w) * (tm + o_task)
            rec = m_full * args.target_places * ti / w + n_rec * (c_rec_full + o_task) / w \
                + (1 + 2 * math.ceil(m_full / 8)) * o_share
            print(f"{w:6d} {train / 3600:9.2f} {rec / 3600:9.2f} {(t_start + train + rec) / 3600:9.2f}")
        print(f"recording (M x P = P^2 / 25 module-images) outweighs training (M modules) "
              f"past P = t_mod / t_inf = {tm / ti:,.0f} places")
    return 0


if __name__ == "__main__":
    sys.exit(main())
