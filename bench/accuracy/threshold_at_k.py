"""T and K on a trained model's calibration queries: the grid behind ``threshold_at_k`` (issue 16).

    python -m bench.accuracy.threshold_at_k MODEL --places 3300

Prints, for each T of the sweep, the calibration R@1 of every K of the K sweep (the
:func:`vprsnn_ros.snn.preselect.calibrate_k` table at that T), then the pair the model
was trained with and the pair :func:`vprsnn_ros.train.calibration.choose_threshold_at_k`
chooses. Only the calibration split is read; the test split is left to ``vprsnn evaluate``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.common import cpu_line, load_nordland
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.snn.network import DEFAULT_T_SWEEP
from vprsnn_ros.snn.preselect import calibrate_k
from vprsnn_ros.train.calibration import choose_threshold_at_k


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--places", type=int, default=3300)
    args = ap.parse_args()
    print(cpu_line())
    net = load_network(args.model)
    query = load_nordland(args.places, patch=net.config.patch)[2][net.split_places("calibration")]
    mods, places = net.module_split("calibration"), net.split_places("calibration")
    print(f"trained with T = {net.hyperactive_threshold}, K = {net.preselect_k or 'every module'}")
    # T masks neurons after the simulation: one recording of the queries serves every T.
    counts = net.spike_counts(net.config.input_rates(query), np.arange(len(query)), modules=mods)
    for t in DEFAULT_T_SWEEP:
        k, table = calibrate_k(net, query, places, mods, t, counts=counts)
        print(f"T {t:3d}: K(T) = {k or 'all'}   " + "  ".join(f"K={r['k']}: {r['recall_at_1']:.3f}" for r in table))
    t, k, _, choice = choose_threshold_at_k(net, query)
    print(f"T and K together: T = {t}, K = {k or 'every module'} ({choice['reason']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
