"""The Nordland protocol of the issue: 3,300 non-dark places, 600 calibration / 2,700 test.

Train the members first (each calibrates its own T on the 600 calibration places):

    D=../shared/data/nordland
    vprsnn train --reference $D/summer --exclude $D/places.csv --limit 3300 \\
        --calibration-places 600 --calibration-query $D/winter --shuffle --ensemble 5 --out ENS

then score the 2,700 test queries once per member (cached next to the model as
``test_scores.npy``) and report R@1/R@5 for the first member alone and for the
ensemble (score sum), each without and with sequence matching:

    python -m bench.accuracy.protocol ENS --sequence-length 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import nordland_places
from vprsnn_ros.eval.evaluation import query_scores
from vprsnn_ros.eval.metrics import evaluate_scores
from vprsnn_ros.io import dataset
from vprsnn_ros.model.ensemble import member_dirs
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.snn.confidence import max_spikes_per_neuron, score_confidence
from vprsnn_ros.snn.sequence import sequence_scores


def member_scores(model_dir: Path, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Test-split scores (Q, P) of one member, cached; also the test places and timing."""
    net = load_network(model_dir)
    places = net.split_places("test")
    cache = model_dir / "test_scores.npy"
    info = {"threshold": net.hyperactive_threshold, "modules": int(len(net.module_split("test")))}
    if cache.exists():
        return np.load(cache, allow_pickle=False), places, info
    started = time.perf_counter()
    S = query_scores([net], pixels[places], net.module_split("test"))[:, places]
    info["seconds"] = round(time.perf_counter() - started, 1)
    info["queries_per_second"] = round(len(places) / info["seconds"], 2)
    np.save(cache, S, allow_pickle=False)
    return S, places, info


def report(S: np.ndarray, members: int, length: int, max_spikes: int) -> dict:
    if length > 1:
        S = sequence_scores(S, length)
    out = evaluate_scores(S, confidence=score_confidence(S, max_spikes * length * members), tolerance=1)
    return {"R@1": round(out["recall"]["1"], 4), "R@5": round(out["recall"]["5"], 4),
            "R@1+-1": round(out["recall_tolerance"]["1"], 4), "pr_auc": round(out["pr_auc"], 4),
            "queries": out["queries"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="model or ensemble directory")
    ap.add_argument("--places", type=int, default=3300)
    ap.add_argument("--sequence-length", type=int, default=10)
    args = ap.parse_args()
    pixels = dataset.load_images(nordland_places("winter", args.places).paths)
    if (args.model / "model.yaml").exists() or (args.model / "ensemble.yaml").exists():
        dirs = member_dirs(args.model)
    else:  # an ensemble still training: its complete members so far
        dirs = sorted(d for d in args.model.iterdir()
                      if (d / "model.yaml").exists() and ModelStore.open(d).complete)
    results: dict = {"members": [], "single": {}, "ensemble": {}}
    total = None
    max_spikes = None
    for d in dirs:
        S, places, info = member_scores(d, pixels)
        max_spikes = max_spikes or max_spikes_per_neuron(load_network(d).config)
        results["members"].append({"dir": str(d), **info, "R@1": report(S, 1, 1, max_spikes)["R@1"]})
        total = S if total is None else total + S
    for length in (1, args.sequence_length):
        S0, _, _ = member_scores(dirs[0], pixels)
        results["single"][f"L={length}"] = report(S0, 1, length, max_spikes)
        results["ensemble"][f"L={length}"] = report(total, len(dirs), length, max_spikes)
    results["ensemble_size"] = len(dirs)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
