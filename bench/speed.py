"""Speed of training and inference, each against a baseline run in the same process.

    python bench/speed.py                                  # 12 and 132 modules
    python bench/speed.py --modules 132 --preselect 8 16 --ensemble 5 --repeats 7
    NUMBA_CPU_NAME=haswell NUMBA_CACHE_DIR=/tmp/nc_avx2 python bench/speed.py   # AVX2 code

Prints the CPU (model, vector extensions) and the code Numba generates for
(``NUMBA_CPU_NAME``: ``host`` unless set, e.g. ``haswell`` for AVX2 without
AVX-512 on an AVX-512 machine), then medians over ``--repeats`` runs of:

- training: presentations per second of one 400-neuron module, first epoch
  (from fresh weights) and steady state (epochs 6-10), of the current kernel
  and of the previous one (commit e3f1d48, ``bench/legacy_training.py``),
  against each other and the NumPy reference simulation;
- queries, one image at a time (rates -> spike counts -> place scores), at M
  modules: the previous lane engine (commit 21823f1, ``bench/legacy_lanes.py``),
  the current full network, the scalar kernel, and template pre-selection with
  K modules (ranking included); and a ``--ensemble`` E-member ensemble with
  pre-selection, in one pass. Ratios are against the previous engine. For K
  below ``module_engine.MAX_MODULES`` the pre-selected modules run one per job
  (:mod:`vprsnn_ros.snn.kernels.modules`); the "lane groups" rows run the same
  modules in lane groups of 8, as before the module engine.

Weights are the seeded initial weights normalised as in training and theta is
drawn from 40-50 mV (the range of trained Nordland modules), so that the
network fires sparsely as a trained one does; speed does not depend on what was
learned. Peak resident memory of the process is printed last.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from numba import get_num_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
import legacy_lanes  # noqa: E402
import legacy_training  # noqa: E402

from vprsnn_ros import module_engine  # noqa: E402
from vprsnn_ros.io import dataset
from vprsnn_ros.io.preprocess import preprocess_batch, rates_hz  # noqa: E402
from vprsnn_ros.io.synthetic import make_route  # noqa: E402
from vprsnn_ros.snn.kernels import scalar as kernels
from vprsnn_ros.snn.network import (  # noqa: E402
    DelayLayout,
    ModularSNN,
    NetworkConfig,
    initial_weights,
    lane_spike_counts,
    make_delays,
)
from vprsnn_ros.snn.params import pack, steps  # noqa: E402
from vprsnn_ros.snn.preselect import ModuleRanker  # noqa: E402
from vprsnn_ros.snn.reference import simulate_reference  # noqa: E402
from vprsnn_ros.train.training import _fresh_state  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nordland"


def cpu_line() -> str:
    """CPU model, the vector extensions that matter here, and Numba's code target."""
    model, flags = platform.processor() or "?", set()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
            elif key.strip() == "Flags":
                flags = set(value.split())
    except (OSError, subprocess.CalledProcessError):
        pass
    vec = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "asimd")
           if f in flags]
    target = os.environ.get("NUMBA_CPU_NAME", "host")
    return (f"CPU {model}, {os.cpu_count()} cores, flags {' '.join(vec) or '?'}; "
            f"Numba target {target}, {get_num_threads()} threads")


def images(n: int) -> np.ndarray:
    if DATA.exists():
        places = dataset.load_place_list(DATA / "summer").subset(range(n))
        return dataset.load_images(places.paths)
    return preprocess_batch(make_route(n)[0])


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_training(cfg: NetworkConfig, pixels: np.ndarray, repeats: int) -> dict[str, float]:
    """Seconds per training presentation, first epoch and steady state (epochs 6-10), of the
    current kernel and of the previous one (``legacy_training``, run alternately with it), and
    of the NumPy reference."""
    p = cfg.params
    packed = pack(p, cfg.dt)
    layout = DelayLayout.build(make_delays(cfg), cfg.dt, p.delay_max)
    rates = rates_hz(pixels).astype(np.float64)
    n_present, n_rest = steps(p.present_ms, cfg.dt), steps(p.rest_ms, cfg.dt)

    def epochs(n: int, kernel) -> list[float]:
        weights = initial_weights(cfg, 0)
        st = _fresh_state(cfg)
        rng = np.array([1], np.uint64)
        t0 = steps(p.initial_rest_ms, cfg.dt)
        out = []
        for _ in range(n):
            start = time.perf_counter()
            t0 = kernel(
                packed, weights, layout.tgt, layout.off, layout.slot, rates, n_present, n_rest,
                p.weight_sum, st["v_e"], st["ge_e"], st["gi_e"], st["theta"], st["timer"],
                st["last_e"], st["post1"], st["post2"], st["v_i"], st["ge_i"], st["last_i"],
                st["last_emit"], t0, rng, np.zeros((len(rates), cfg.n_neurons), np.int32))
            out.append((time.perf_counter() - start) / len(rates))
        return out

    kernels_ = {"": kernels.train_presentations, "previous_": legacy_training.train_presentations_plain}
    runs: dict[str, list] = {name: [] for name in kernels_}
    for kernel in kernels_.values():
        epochs(1, kernel)  # compile / load from cache
    for _ in range(max(1, repeats // 2)):
        for name, kernel in kernels_.items():
            runs[name].append(epochs(10, kernel))
    out = {}
    for name, r in runs.items():
        out[f"{name}first"] = float(np.median([x[0] for x in r]))
        out[f"{name}steady"] = float(np.median([np.mean(x[5:]) for x in r]))

    def reference_presentation() -> None:
        weights = initial_weights(cfg, 0)
        weights *= (p.weight_sum / weights.sum(axis=0))[None, :]
        st = _fresh_state(cfg)
        st.pop("last_emit")
        st["pre_hist"] = np.zeros((layout.off.shape[1] - 1, cfg.n_inputs))
        step_off, step_inputs, _, _ = kernels.poisson_emissions(rates[0], n_present, cfg.dt,
                                                                np.array([1], np.uint64))
        emissions = np.zeros((n_present, cfg.n_inputs), bool)
        for t in range(n_present):
            emissions[t, step_inputs[step_off[t]:step_off[t + 1]]] = True
        simulate_reference(p, cfg.dt, weights, layout.slot, emissions, n_rest, True, st)

    out["reference"] = median_time(reference_presentation, 1)
    return out


def synthetic_network(cfg: NetworkConfig, n_modules: int, places_per_module: int = 25) -> ModularSNN:
    """A network of ``n_modules`` modules with trained-like firing (see the module docstring)."""
    rs = np.random.default_rng(cfg.seed)
    weights = np.stack([initial_weights(cfg, m) for m in range(n_modules)])
    weights *= (cfg.params.weight_sum / weights.sum(axis=1))[:, None, :]
    regions = [np.arange(m * places_per_module, (m + 1) * places_per_module) for m in range(n_modules)]
    return ModularSNN(
        config=cfg, delays=make_delays(cfg), n_places=n_modules * places_per_module, regions=regions,
        n_calibration_modules=0, weights=weights, theta=rs.uniform(40.0, 50.0, (n_modules, cfg.n_neurons)),
        assignments=np.stack([r[rs.integers(0, len(r), cfg.n_neurons)] for r in regions]).astype(np.int32),
        active_images=np.zeros((n_modules, cfg.n_neurons), np.int32))


def bench_queries(cfg: NetworkConfig, pixels: np.ndarray, n_modules: int, ks: list[int],
                  ensemble: int, repeats: int) -> dict[str, float]:
    """Seconds per query (rates -> counts -> scores), one image at a time, for each path."""
    net = synthetic_network(cfg, n_modules)
    rates = rates_hz(pixels).astype(np.float64)
    queue = iter(range(10**9))
    packed = pack(cfg.params, cfg.dt)
    n_present = steps(cfg.params.present_ms, cfg.dt)
    w_old, th_old = legacy_lanes.to_lanes(net.weights, net.theta)
    scratch_old = legacy_lanes.lane_scratch(n_present, net.slot_t)
    ranker = ModuleRanker(net)
    members = [synthetic_network(cfg.with_(seed=e), n_modules) for e in range(ensemble)]
    rankers = [ModuleRanker(m) for m in members]

    def frame() -> tuple[int, np.ndarray, np.ndarray]:
        q = next(queue)
        return q, rates[q % len(rates)][None], pixels[q % len(pixels)][None]

    def previous() -> None:
        q, r, _ = frame()
        counts = legacy_lanes.from_lanes(legacy_lanes.infer_lanes(
            packed, w_old, th_old, net.slot_t, r, n_present, np.uint64(cfg.seed), np.array([q]),
            scratch_old), n_modules)
        net.scores(counts)

    def full(engine: str = "lanes") -> None:
        q, r, _ = frame()
        net.scores(net.spike_counts(r, [q], engine=engine))

    def preselected(k: int) -> None:
        q, r, u = frame()
        mods = ranker.top_modules(u, k)
        net.scores(net.spike_counts(r, [q], modules=mods), modules=mods)

    def ensemble_pass(k: int) -> None:
        q, r, u = frame()
        mods = [rk.top_modules(u, k) for rk in rankers]
        counts = lane_spike_counts(members, r, np.array([q]), mods)
        sum(m.scores(c, modules=s) for m, c, s in zip(members, counts, mods))

    def in_lane_groups(fn):
        """``fn`` with the lane engine even for fewer than MAX_MODULES modules (the previous path)."""
        def run() -> None:
            saved, module_engine.MAX_MODULES = module_engine.MAX_MODULES, 0
            try:
                fn()
            finally:
                module_engine.MAX_MODULES = saved
        return run

    runs = {"previous": previous, "full": full, "scalar": lambda: full("scalar")}
    for k in ks:
        if k < n_modules:
            runs[f"K={k}"] = lambda k=k: preselected(k)
            if k < module_engine.MAX_MODULES:
                runs[f"K={k} lane groups"] = in_lane_groups(lambda k=k: preselected(k))
    if ensemble > 1:
        for k in ks:
            if k < n_modules:
                runs[f"ensemble {ensemble} K={k}"] = lambda k=k: ensemble_pass(k)
                if k < module_engine.MAX_MODULES:
                    runs[f"ensemble {ensemble} K={k} lanes"] = in_lane_groups(lambda k=k: ensemble_pass(k))
    for fn in runs.values():  # compile / load from cache
        fn()
    out = {}
    for name, fn in runs.items():
        out[name] = median_time(fn, max(1, repeats // 3) if name == "scalar" else repeats)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", type=int, nargs="+", default=[12, 132])
    ap.add_argument("--preselect", type=int, nargs="+", default=[8], metavar="K")
    ap.add_argument("--ensemble", type=int, default=5, metavar="E")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--dt", type=float, default=0.5)
    ap.add_argument("--skip-training", action="store_true")
    args = ap.parse_args()
    cfg = NetworkConfig(dt=args.dt)
    pixels = images(25)
    print(cpu_line())
    print(f"input: {'Nordland summer' if DATA.exists() else 'synthetic'} frames, dt {args.dt} ms, "
          f"400 neurons per module, medians of {args.repeats} runs")
    if not args.skip_training:
        t = bench_training(cfg, pixels, args.repeats)
        for name, label in (("previous_", "previous kernel"), ("", "current kernel ")):
            print(f"training {label}  first epoch {1 / t[name + 'first']:7.1f} presentations/s/module   "
                  f"steady (epochs 6-10) {1 / t[name + 'steady']:7.1f}   reference "
                  f"{1 / t['reference']:7.3f}   steady/reference {t['reference'] / t[name + 'steady']:6.0f}x")
        print(f"training current/previous: first epoch x{t['previous_first'] / t['first']:.2f}   "
              f"steady x{t['previous_steady'] / t['steady']:.2f}")
    for m in args.modules:
        t = bench_queries(cfg, pixels, m, args.preselect, args.ensemble, args.repeats)
        base = t["previous"]
        for name, seconds in t.items():
            print(f"query M={m:<4d} {name:<24s} {1 / seconds:8.2f} Hz  {1e3 * seconds:8.2f} ms   "
                  f"x{base / seconds:6.2f} vs previous engine")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
