"""Input-coding switches on the 3,300-place protocol: calibration decides, test is reported.

    python -m bench.accuracy.protocol_switches MODEL [MODEL ...] --gains 1 2 [--preselect 1] [--places 3300]
    python -m bench.accuracy.protocol_switches MODEL --gains 1 --query-inhibition 1 0.5 0.25   # issue 16 (g)

For each trained model (e.g. one trained with Poisson and one with regular
spike trains) and each query rate gain: the reference is recorded again with
that gain (hyperactivity and the z-score statistics, as training would), then
every winter query of each split runs its top ``--preselect`` modules
(template pre-selection, the model's K by default) and is scored with the
z-score readout. T is chosen on the calibration split (best R@1, smallest T
among ties) and applied to the test split. Prints R@1 single frame and with
sequences of ``--sequence-length`` (diagonal) for both splits, the SAD baseline,
and which configuration wins on calibration.

``--query-inhibition F ...`` (issue 16, item 4g): each configuration also with the
queries and the reference recording run at F times the trained w_ie (profile switch
``query_inhibition``). Every row also gives R@1 given the true module
(:func:`vprsnn_ros.eval.loss.where_the_loss_is`): each query run again on its true
place's module alone, at the row's T, and SAD's within-module R@1 beside.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import cpu_line, load_nordland, r1
from vprsnn_ros.eval.baseline import sad_scores
from vprsnn_ros.eval.loss import place_modules, where_the_loss_is
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.snn.coding import rates_hz
from vprsnn_ros.snn.network import DEFAULT_T_SWEEP
from vprsnn_ros.snn.preselect import ModuleRanker, effective_k
from vprsnn_ros.snn.sequence import match_sequences
from vprsnn_ros.train.training import record_reference


def split_scores(net, pixels: np.ndarray, split: str, k: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Scores (Q, n_split_places) of a split's queries for every T of the sweep, top-k modules run."""
    modules, places = net.module_split(split), net.split_places(split)
    k = effective_k(net, k, len(modules))
    chosen = ModuleRanker(net, modules, 0).top_modules(pixels[places], k) if k < len(modules) else modules
    counts = net.spike_counts(rates_hz(pixels[places]).astype(np.float64), np.arange(len(places)),
                              modules=chosen)
    return [net.scores(counts, modules=chosen, threshold=t, readout="zscore")[:, places]
            for t in DEFAULT_T_SWEEP], places


def within_module(net, pixels: np.ndarray, split: str, threshold: int) -> float:
    """R@1 given the true module: each query of the split runs its true place's module alone."""
    places = net.split_places(split)
    column_module = place_modules(net.regions, net.n_places)
    true = column_module[places][:, None]
    counts = net.spike_counts(rates_hz(pixels[places]).astype(np.float64), np.arange(len(places)), modules=true)
    S = net.scores(counts, modules=true, threshold=threshold, readout="zscore")[:, places]
    return round(where_the_loss_is(S, np.arange(len(places)), column_module[places])["recall_at_1_given_module"], 4)


def sad_row(net, ref: np.ndarray, qry: np.ndarray, length: int) -> dict:
    """SAD per split on the model's images and regions: (R@1, R@1 with sequences, R@1 given the true module)."""
    out = {}
    for split in ("calibration", "test"):
        places = net.split_places(split)
        S = sad_scores(qry[places], ref[places])
        column_module = place_modules(net.regions, net.n_places)[places]
        within = where_the_loss_is(S, np.arange(len(places)), column_module)["recall_at_1_given_module"]
        out[split] = (r1(S), r1(match_sequences(S, length, "diagonal")), round(within, 4))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path, nargs="+")
    ap.add_argument("--gains", type=float, nargs="+", default=[1.0, 2.0])
    ap.add_argument("--query-inhibition", type=float, nargs="+", default=[1.0],
                    help="factors on w_ie for queries and the reference recording (issue 16, 4g)")
    ap.add_argument("--preselect", type=int, nargs="+", default=[None], metavar="K",
                    help="default: each model's K; several: one row each, on the same reference recording")
    ap.add_argument("--places", type=int, default=3300)
    ap.add_argument("--sequence-length", type=int, default=10)
    ap.add_argument("--out", type=Path, help="JSON of the table")
    args = ap.parse_args()
    images = {}  # patch -> (reference, query) pixels: each model is read at its own patch size
    L = args.sequence_length
    print(cpu_line())
    rows, sad = [], {}
    for path in args.models:
        net = load_network(path)
        trained = net.config
        if trained.patch not in images:
            images[trained.patch] = load_nordland(args.places, patch=trained.patch)[1:]
        ref, qry = images[trained.patch]
        for gain, inhibition in [(g, f) for g in args.gains for f in args.query_inhibition]:
            started = time.perf_counter()
            net.config = trained.with_(query_rate_gain=gain, query_inhibition=inhibition)
            record_reference(net, rates_hz(ref).astype(np.float64))
            record_s = time.perf_counter() - started
            for k in args.preselect:
                cal, cal_places = split_scores(net, qry, "calibration", k)
                test, test_places = split_scores(net, qry, "test", k)
                sweep = [r1(S) for S in cal]
                best = max(range(len(sweep)), key=lambda i: (sweep[i], -i))
                t = DEFAULT_T_SWEEP[best]
                row = {"model": str(path), "spike_trains": trained.spike_trains, "query_rate_gain": gain,
                       "query_inhibition": inhibition, "T": t, "k": effective_k(net, k, 10**9),
                       "calibration": sweep[best],
                       "calibration_seq": r1(match_sequences(cal[best], L, "diagonal")),
                       "test": r1(test[best]), "test_seq": r1(match_sequences(test[best], L, "diagonal")),
                       "calibration_within": within_module(net, qry, "calibration", t),
                       "test_within": within_module(net, qry, "test", t),
                       "record_seconds": round(record_s, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
        net.config = trained
        sad[str(path)] = sad_row(net, ref, qry, L)
        s = sad[str(path)]
        print(f"SAD (patch {trained.patch}, this model's regions): calibration {s['calibration'][0]} "
              f"(seq {s['calibration'][1]}, within {s['calibration'][2]}), "
              f"test {s['test'][0]} (seq {s['test'][1]}, within {s['test'][2]})", flush=True)
    best = max(rows, key=lambda r: r["calibration"])
    print(f"best on calibration: {best['model']} {best['spike_trains']} gain {best['query_rate_gain']} "
          f"query inhibition {best['query_inhibition']} "
          f"T {best['T']}: calibration {best['calibration']}, test {best['test']} (seq {best['test_seq']})")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "sad": sad}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
