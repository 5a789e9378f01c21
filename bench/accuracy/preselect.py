"""Module pre-selection on Nordland: R@1 and query rate against K, calibration and test splits.

    python -m bench.accuracy.preselect MODEL [--places 3300] [--ks 1 2 4 8 16 32 64] [--cache DIR]

MODEL is a model trained with a calibration split (the 3,300-place protocol:
``vprsnn train ... --limit 3300 --calibration-places 600 --calibration-query
$D/winter --shuffle``). For each split the full network's spike counts of every
winter query are computed once (cached in ``--cache``); a module's counts do
not depend on which other modules run, so the top-K result for every K is the
full counts restricted to the K best-ranked modules (the same as running them,
tested in test/test_lane_engine.py). The hyperactivity threshold is the
model's calibrated T. K is chosen on the calibration split only (what
``vprsnn train`` stores as ``preselect_k``); the test split is reported, not
tuned on. The query rate is timed on test queries, one image at a time, with
ranking, spike counts and scores (median of ``--repeats``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import cpu_line, nordland_places
from vprsnn_ros.io import dataset
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.snn.coding import rates_hz
from vprsnn_ros.snn.inference import Scorer
from vprsnn_ros.snn.preselect import ModuleRanker, calibrate_k, preselected_scores


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--places", type=int, default=3300)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    ap.add_argument("--cache", type=Path, help="folder for the full-network counts (default: none)")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    net = load_network(args.model)
    pixels = dataset.load_images(nordland_places("winter", args.places).paths)
    t = net.hyperactive_threshold
    print(cpu_line())
    print(f"model {args.model}: {net.n_places} places, {net.n_modules} modules, T = {t}, "
          f"stored preselect_k = {net.preselect_k}")
    for split in ("calibration", "test"):
        modules, places = net.module_split(split), net.split_places(split)
        cache = args.cache / f"{split}_counts.npy" if args.cache else None
        if cache is not None and cache.exists():
            counts = np.load(cache, allow_pickle=False)
        else:
            started = time.perf_counter()
            # Query ids 0..Q-1 of the split, as vprsnn evaluate and calibration number them.
            counts = net.spike_counts(rates_hz(pixels[places]).astype(np.float64),
                                      np.arange(len(places)), modules=modules)
            print(f"{split}: full-network counts of {len(places)} queries in "
                  f"{time.perf_counter() - started:.0f} s")
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.save(cache, counts, allow_pickle=False)
        if split == "calibration":
            k, table = calibrate_k(net, pixels[places], places, modules, t, counts=counts,
                                   sweep=tuple(args.ks))
            print(f"calibration chooses K = {k or 'all'} (cheapest K within 0.005 of all modules)")
        ranker = ModuleRanker(net, modules, t)
        order = np.argsort(-ranker.module_scores(pixels[places]), axis=1, kind="stable")
        module_of = {p: i for i, m in enumerate(modules) for p in net.regions[m]}
        true_rank = np.array([int(np.nonzero(order[q] == module_of[p])[0][0]) for q, p in enumerate(places)])
        print(f"{split}: {len(places)} queries, {len(modules)} modules")
        print(f"  {'K':>5} {'R@1':>7} {'true module in top K':>21}")
        for k in sorted({k for k in args.ks if k < len(modules)} | {len(modules)}):
            S = preselected_scores(net, counts, order, k, modules, t)[:, places]
            r1 = float(np.mean(np.argmax(S, axis=1) == np.arange(len(places))))
            print(f"  {k:>5} {r1:7.4f} {float(np.mean(true_rank < k)):21.3f}")
    test_places = net.split_places("test")
    test_modules = net.module_split("test")
    print(f"query rate, test split ({len(test_modules)} modules), one image at a time:")
    for k in sorted({k for k in args.ks if k < len(test_modules)} | {len(test_modules)}):
        # Ranking among the test modules (K = all: every test module), counts and scores.
        scorer = Scorer([net], modules=test_modules, threshold=t, preselect_k=k)
        times = []
        for r in range(args.repeats + 1):
            q = int(test_places[r % len(test_places)])
            start = time.perf_counter()
            scorer.scores(pixels[q][None], [q])
            times.append(time.perf_counter() - start)
        med = float(np.median(times[1:]))
        print(f"  K {k:>4}: {1e3 * med:8.2f} ms  {1 / med:8.1f} Hz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
