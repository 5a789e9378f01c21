"""Speed of training and inference; with ``--baseline REV``, against REV's own bench on this machine.

    python -m bench.perf.speed                                  # 12 and 132 modules
    python -m bench.perf.speed --modules 132 --preselect 8 16 --ensemble 5 --repeats 7
    NUMBA_CPU_NAME=haswell NUMBA_CACHE_DIR=/tmp/nc_avx2 python -m bench.perf.speed   # AVX2 code
    python -m bench.perf.speed --modules 12 --preselect 1 --baseline e790470          # vs commit e790470

Prints the CPU (model, vector extensions) and the code Numba generates for
(``NUMBA_CPU_NAME``: ``host`` unless set, e.g. ``haswell`` for AVX2 without
AVX-512 on an AVX-512 machine), then medians over ``--repeats`` runs of:

- training: presentations per second of one 400-neuron module, first epoch
  (from fresh weights) and steady state (epochs 6-10), against the NumPy
  reference simulation;
- queries, one image at a time (rates -> spike counts -> place scores), at M
  modules: the full network, the scalar kernel, and template pre-selection with
  K modules (ranking included); and a ``--ensemble`` E-member ensemble with
  pre-selection, in one pass. All but the scalar kernel are scored by a
  :class:`~vprsnn_ros.snn.inference.Scorer`, the localizer's path. For K below ``MAX_MODULES`` of
  :mod:`vprsnn_ros.snn.kernels.modules` the pre-selected modules run one per job
  (the module engine); the "lane groups" rows run the same modules in lane groups
  of 8, as before the module engine.

``--baseline REV`` (a commit, tag or branch) then runs REV's own speed bench with
the same options in a git worktree of REV (its package, its own Numba cache; see
:func:`bench.common.run_baseline`) and prints both sets of rows side by side with
their ratios: the way to measure a change against the code before it. ``--json``
prints the rows as one JSON object instead of the table.

The network is the synthetic trained-like one of :func:`bench.common.synthetic_network`:
speed does not depend on what was learned. Peak resident memory of the process is
printed last.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import time

import numpy as np

from bench.common import (
    baseline_argv,
    cpu_line,
    emit_json,
    image_source,
    images,
    median_time,
    print_comparison,
    row,
    run_baseline,
    synthetic_network,
)
from vprsnn_ros.snn.coding import rates_hz
from vprsnn_ros.snn.inference import Scorer
from vprsnn_ros.snn.kernels import modules as module_engine
from vprsnn_ros.snn.kernels import scalar as kernels
from vprsnn_ros.snn.module_training import _fresh_state, fresh_state
from vprsnn_ros.snn.network import DelayLayout, NetworkConfig, initial_weights, make_delays
from vprsnn_ros.snn.params import pack, steps
from vprsnn_ros.snn.reference import simulate_reference
from vprsnn_ros.snn.threads import numba_threads
from vprsnn_ros.snn.tracking import Tracker

TRAINING_ROWS = {"first": "training first epoch", "steady": "training steady (epochs 6-10)",
                 "reference": "training NumPy reference"}


def bench_training(cfg: NetworkConfig, pixels: np.ndarray, repeats: int) -> dict[str, float]:
    """Seconds per training presentation, first epoch and steady state (epochs 6-10), and of
    the NumPy reference."""
    p = cfg.params
    packed = pack(p, cfg.dt)
    layout = DelayLayout.build(make_delays(cfg), cfg.dt, p.delay_max)
    rates = rates_hz(pixels).astype(np.float64)
    n_present, n_rest = steps(p.present_ms, cfg.dt), steps(p.rest_ms, cfg.dt)

    def epochs(n: int) -> list[float]:
        weights = initial_weights(cfg, 0)
        st = fresh_state(cfg)
        rng = np.array([1], np.uint64)
        t0 = steps(p.initial_rest_ms, cfg.dt)
        out = []
        for _ in range(n):
            start = time.perf_counter()
            t0 = kernels.train_presentations(
                packed, weights, layout.tgt, layout.off, layout.slot, rates, n_present, n_rest,
                p.weight_sum, st, t0, rng, np.zeros((len(rates), cfg.n_neurons), np.int32))
            out.append((time.perf_counter() - start) / len(rates))
        return out

    epochs(1)  # compile / load from cache
    runs = [epochs(10) for _ in range(max(1, repeats // 2))]
    out = {"first": float(np.median([x[0] for x in runs])),
           "steady": float(np.median([np.mean(x[5:]) for x in runs]))}

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


def bench_queries(cfg: NetworkConfig, pixels: np.ndarray, n_modules: int, ks: list[int],
                  ensemble: int, repeats: int, tracking: int = 10) -> dict[str, float]:
    """Seconds per query (pixels -> rates -> counts -> scores), one image at a time, for each path.

    Every path but the scalar one runs through a :class:`~vprsnn_ros.snn.inference.Scorer`,
    as the localizer does: the weights are laid out once, not per query.
    """
    net = synthetic_network(cfg, n_modules)
    rates = rates_hz(pixels).astype(np.float64)
    queue = iter(range(10**9))
    members = [synthetic_network(cfg.with_(seed=e), n_modules) for e in range(ensemble)]
    scorers = {(1, 0): Scorer([net], preselect_k=0)}
    for k in ks:
        scorers[1, k] = Scorer([net], preselect_k=k)
        if ensemble > 1:
            scorers[ensemble, k] = Scorer(members, preselect_k=k)

    def frame() -> tuple[int, np.ndarray, np.ndarray]:
        q = next(queue)
        return q, rates[q % len(rates)][None], pixels[q % len(pixels)][None]

    def scored(n_members: int, k: int) -> None:
        q, _, u = frame()
        scorers[n_members, k].scores(u, [q])

    def scalar() -> None:
        q, r, _ = frame()
        net.scores(net.spike_counts(r, [q], engine="scalar"))

    def in_lane_groups(fn):
        """``fn`` with the lane engine even for fewer than MAX_MODULES modules (as before the module engine)."""
        def run() -> None:
            saved, module_engine.MAX_MODULES = module_engine.MAX_MODULES, 0
            try:
                fn()
            finally:
                module_engine.MAX_MODULES = saved
        return run

    runs = {"full": lambda: scored(1, 0), "scalar": scalar}
    for k in ks:
        if k < n_modules:
            runs[f"K={k}"] = lambda k=k: scored(1, k)
            if k < module_engine.MAX_MODULES:
                runs[f"K={k} lane groups"] = in_lane_groups(lambda k=k: scored(1, k))
    if ensemble > 1:
        for k in ks:
            if k < n_modules:
                runs[f"ensemble {ensemble} K={k}"] = lambda k=k: scored(ensemble, k)
                if k < module_engine.MAX_MODULES:
                    runs[f"ensemble {ensemble} K={k} lanes"] = in_lane_groups(lambda k=k: scored(ensemble, k))
    trackers = {}
    if tracking > 1:
        for k in ks:
            if k < n_modules:
                trackers[f"tracking L={tracking} K={k}"] = Tracker(Scorer([net], preselect_k=k), tracking)
                if ensemble > 1:
                    trackers[f"ensemble {ensemble} tracking L={tracking} K={k}"] = Tracker(
                        Scorer(members, preselect_k=k), tracking)
    def track(tracker: Tracker) -> None:
        # Consecutive frames, as a robot sees them: the sequence hypotheses add their modules.
        q, _, u = frame()
        tracker.step(u, q)

    for name, tracker in trackers.items():
        runs[name] = lambda tracker=tracker: track(tracker)
    for fn in runs.values():  # compile / load from cache
        fn()
    for tracker in trackers.values():
        for _ in range(2 * tracking):  # a full sequence history first
            track(tracker)
    out = {}
    for name, fn in runs.items():
        out[name] = median_time(fn, max(1, repeats // 3) if name == "scalar" else repeats)
    for k in ks:
        if k < n_modules:
            # A robot's cores are shared: K = k on one thread, idle and beside a busy process.
            with numba_threads(1):
                out[f"K={k} one thread"] = median_time(lambda k=k: scored(1, k), repeats)
            busy = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
            try:
                time.sleep(0.3)
                out[f"K={k} beside 1 busy process"] = median_time(lambda k=k: scored(1, k), repeats)
            finally:
                busy.kill()
                busy.wait(10)
    return out


# Text rows of speed benches before --json (e.g. bench/speed.py at e790470), read for --baseline.
_TRAINING_LINE = re.compile(r"^training (previous kernel|current kernel)\s+first epoch\s+([\d.]+) "
                            r"presentations/s/module\s+steady \(epochs 6-10\)\s+([\d.]+)\s+reference\s+([\d.]+)")
_QUERY_LINE = re.compile(r"^query M=(\d+)\s+(.+?)\s+([\d.]+) Hz\s+([\d.]+) ms")


def parse_text(text: str) -> list[dict]:
    """Rows of an older speed bench's printed table (its in-process "previous" rows marked so)."""
    rows = []
    for line in text.splitlines():
        if m := _TRAINING_LINE.match(line):
            mark = "" if m[1] == "current kernel" else " [its previous kernel]"
            rows += [row(TRAINING_ROWS["first"] + mark, 1 / float(m[2])),
                     row(TRAINING_ROWS["steady"] + mark, 1 / float(m[3]))]
            if not mark:
                rows.append(row(TRAINING_ROWS["reference"], 1 / float(m[4])))
        elif m := _QUERY_LINE.match(line):
            name = m[2].strip()
            rows.append(row(f"query M={m[1]} {name}" + (" [its previous engine]" if name == "previous" else ""),
                            float(m[4]) / 1e3))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", type=int, nargs="+", default=[12, 132])
    ap.add_argument("--preselect", type=int, nargs="+", default=[8], metavar="K")
    ap.add_argument("--ensemble", type=int, default=5, metavar="E")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--dt", type=float, default=0.5)
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--tracking", type=int, default=10, metavar="L",
                    help="also time tracking with sequences of L frames (1 = not)")
    ap.add_argument("--baseline", metavar="REV", help="also run REV's own speed bench (git worktree) and compare")
    ap.add_argument("--json", action="store_true", help="print the rows as one JSON object")
    args = ap.parse_args()
    out = sys.stderr if args.json else sys.stdout
    cfg = NetworkConfig(dt=args.dt)
    pixels = images(25)
    rows = []
    print(cpu_line(), file=out)
    print(f"input: {image_source()}, dt {args.dt} ms, 400 neurons per module, medians of {args.repeats} runs",
          file=out, flush=True)
    if not args.skip_training:
        t = bench_training(cfg, pixels, args.repeats)
        print(f"training current kernel  first epoch {1 / t['first']:7.1f} presentations/s/module   "
              f"steady (epochs 6-10) {1 / t['steady']:7.1f}   reference {1 / t['reference']:7.3f}   "
              f"steady/reference {t['reference'] / t['steady']:6.0f}x", file=out, flush=True)
        rows += [row(TRAINING_ROWS[k], t[k]) for k in ("first", "steady", "reference")]
    for m in args.modules:
        t = bench_queries(cfg, pixels, m, args.preselect, args.ensemble, args.repeats, args.tracking)
        for name, seconds in t.items():
            print(f"query M={m:<4d} {name:<24s} {1 / seconds:8.2f} Hz  {1e3 * seconds:8.2f} ms   "
                  f"x{t['full'] / seconds:6.2f} vs full network", file=out, flush=True)
            rows.append(row(f"query M={m} {name}", seconds))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak_mb:.0f} MB", file=out, flush=True)
    baseline = None
    if args.baseline:
        baseline = run_baseline(args.baseline, "perf.speed", baseline_argv(sys.argv[1:]), parse_text)
        if not args.json:
            print_comparison(rows, baseline, f"medians of {args.repeats} runs; ")
    if args.json:
        emit_json("perf.speed", args, rows, peak_rss_mb=peak_mb, baseline=baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
