"""Ablation table of issue 7 on Nordland: SAD vs the SNN, readouts, T choices, sequence matchers.

Reference summer, query winter, dark places excluded (places.csv), the first
``--places`` places. The first ``--calibration`` places are the calibration
split, the rest the test split; models are trained with that split so that no
module mixes the two (``train_network(..., calibration_places=N)``, no
calibration query: nothing is tuned on queries at training time). Each split is
scored with its own modules and its own places only, as ``vprsnn evaluate
--split test`` does.

Every choice is made on the calibration split only:

* ``T=0``: no masking; ``T=auto``: chosen on the reference traverse alone
  (profile switch ``auto_threshold``); ``T=cal``: best single-frame R@1 on the
  calibration queries (with that row's readout);
* the profile that wins on calibration R@1 is reported as the one that should
  be the default.

Rows: SAD (single frame, diagonal and SeqSLAM sequences of ``--sequence-length``),
then every model (contiguous / shuffled regions) x readout (mean / zscore) x T
choice, each with single-frame, diagonal and SeqSLAM R@1 on calibration and test.
Models are trained once into ``--work`` and reused. One training takes ~3 min
on 2 cores.

    python bench/ablation.py --work /tmp/ablation           # the whole table (trains 2 models)
    python bench/ablation.py --work /tmp/ablation --models contiguous --epochs 60

The lead extends ``MODEL_VARIANTS`` / ``snn_rows`` with kernel switches.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nordland_accuracy import DATA, load  # noqa: E402

from vprsnn_ros.eval.baseline import sad_scores  # noqa: E402
from vprsnn_ros.eval.metrics import recall_at_n  # noqa: E402
from vprsnn_ros.io.preprocess import rates_hz  # noqa: E402
from vprsnn_ros.model.network_io import load_network  # noqa: E402
from vprsnn_ros.snn.network import DEFAULT_T_SWEEP, ModularSNN, NetworkConfig  # noqa: E402
from vprsnn_ros.snn.readout import READOUTS  # noqa: E402
from vprsnn_ros.snn.sequence import match_sequences, seqslam_scores  # noqa: E402
from vprsnn_ros.train.training import choose_threshold_without_queries, record_reference, train_network  # noqa: E402

# name -> NetworkConfig changes (kernel switches go here too).
MODEL_VARIANTS = {"contiguous": {"shuffle": False}, "shuffled": {"shuffle": True}}


def r1(S: np.ndarray) -> float:
    return round(float(recall_at_n(S, ns=(1,))[1]), 4)


def matched(S: np.ndarray, length: int) -> dict[str, float]:
    """R@1 single frame, diagonal and SeqSLAM sequences of ``length``."""
    return {"single": r1(S), f"diagonal{length}": r1(match_sequences(S, length, "diagonal")),
            f"seqslam{length}": r1(match_sequences(S, length, "seqslam")),
            # SeqSLAM's two parts apart: contrast normalisation with v = 1 only.
            f"contrast_v1_{length}": r1(seqslam_scores(S, length, velocities=(1.0,)))}


def split_queries(net: ModularSNN, Q: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Modules, places and query pixels of a split (query k of the split = its k-th place)."""
    mods = net.module_split(split)
    places = net.split_places(split)
    return mods, places, Q[places]


def train_or_load(out: Path, names, R: np.ndarray, args, changes: dict) -> tuple[ModularSNN, float | None]:
    if (out / "model.yaml").exists():
        net = load_network(out)
        seconds = None
    else:
        cfg = NetworkConfig(epochs=args.epochs, seed=args.seed, **changes)
        started = time.perf_counter()
        net = train_network(cfg, [R], names, out, calibration_places=args.calibration, workers=args.workers)
        seconds = round(time.perf_counter() - started, 1)
    if net.reference_stats is None:  # a model trained before the statistics were kept
        record_reference(net, rates_hz(R).astype(np.float64))
    return net, seconds


def snn_rows(name: str, net: ModularSNN, R: np.ndarray, Q: np.ndarray, length: int) -> list[dict]:
    counts, timing = {}, {}
    for split in ("calibration", "test"):
        mods, places, pixels = split_queries(net, Q, split)
        started = time.perf_counter()
        # Stream ids 0..n-1 of the split's queries, as vprsnn evaluate numbers them.
        counts[split] = net.spike_counts(rates_hz(pixels).astype(np.float64), np.arange(len(pixels)),
                                         modules=mods)
        timing[split] = (time.perf_counter() - started) / len(pixels)
    auto = {}
    for readout in READOUTS:
        started = time.perf_counter()
        auto[readout] = choose_threshold_without_queries(net, rates_hz(R).astype(np.float64),
                                                         readout=readout)
        auto_seconds = time.perf_counter() - started

    def scores(split: str, t: int, readout: str) -> np.ndarray:
        mods, places, _ = split_queries(net, Q, split)
        return net.scores(counts[split], modules=mods, threshold=t, readout=readout)[:, places]

    rows = []
    for readout in READOUTS:
        cal_sweep = {t: r1(scores("calibration", t, readout)) for t in DEFAULT_T_SWEEP}
        t_cal = max(cal_sweep, key=lambda t: (cal_sweep[t], -t))
        t_auto, auto_table = auto[readout]
        for policy, t in (("T=0", 0), ("T=auto", t_auto), ("T=cal", t_cal)):
            row = {"system": f"SNN {name}", "readout": readout, "T": f"{policy} ({t})",
                   "masked": net.n_masked(t)}
            for split in ("calibration", "test"):
                S = scores(split, t, readout)
                row[split] = matched(S, length)
            started = time.perf_counter()
            for _ in range(20):
                net.scores(counts["test"][:1], modules=net.module_split("test"), threshold=t, readout=readout)
            row["readout_ms_per_query"] = round((time.perf_counter() - started) / 20 * 1e3, 3)
            row["spikes_ms_per_query"] = round(timing["test"] * 1e3, 1)
            rows.append(row)
        rows[-1]["calibration_sweep"] = cal_sweep
        rows[-2]["auto_T_table"] = auto_table
    rows[0]["auto_T_seconds"] = round(auto_seconds, 1)
    return rows


def sad_rows(R: np.ndarray, Q: np.ndarray, n_cal: int, length: int) -> dict:
    row = {"system": "SAD", "readout": "-", "T": "-"}
    n = len(R)
    for split, places in (("calibration", np.arange(n_cal)), ("test", np.arange(n_cal, n))):
        started = time.perf_counter()
        S = sad_scores(Q[places], R[places])
        row["sad_ms_per_query"] = round((time.perf_counter() - started) / len(places) * 1e3, 3)
        row[split] = matched(S, length)
    return row


def format_table(rows: list[dict], length: int) -> str:
    keys = ["single", f"diagonal{length}", f"seqslam{length}"]
    head = (f"{'system':16s} {'readout':7s} {'T':12s} | " + " ".join(f"{'cal ' + k:>14s}" for k in keys)
            + " | " + " ".join(f"{'test ' + k:>15s}" for k in keys))
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['system']:16s} {r['readout']:7s} {r['T']:12s} | "
                     + " ".join(f"{r['calibration'][k]:14.3f}" for k in keys) + " | "
                     + " ".join(f"{r['test'][k]:15.3f}" for k in keys))
    return "\n".join(lines)


def format_markdown(rows: list[dict], length: int) -> str:
    """The table as README Markdown: R@1 single / diagonal | seqslam sequences, calibration and test."""
    keys = ["single", f"diagonal{length}", f"seqslam{length}"]
    lines = [f"| system | readout | T | calibration R@1 (1 / {length} diag / {length} seqslam) "
             f"| test R@1 (1 / {length} diag / {length} seqslam) |", "|---|---|---|---|---|"]
    for r in rows:
        cells = [" / ".join(f"{r[split][k]:.3f}" for k in keys) for split in ("calibration", "test")]
        lines.append(f"| {r['system']} | {r['readout']} | {r['T']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, help="folder for the models and ablation.json")
    ap.add_argument("--places", type=int, default=300)
    ap.add_argument("--calibration", type=int, default=100, help="first N places = calibration split")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sequence-length", type=int, default=10)
    ap.add_argument("--models", nargs="*", default=list(MODEL_VARIANTS), choices=list(MODEL_VARIANTS))
    args = ap.parse_args()
    if not DATA.exists():
        print(f"no Nordland data at {DATA}", file=sys.stderr)
        return 2
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    names, R, Q = load(args.places, 1)
    L = args.sequence_length
    rows = [sad_rows(R, Q, args.calibration, L)]
    trained = {}
    for name in args.models:
        net, seconds = train_or_load(work / f"{name}_{args.places}_e{args.epochs}_s{args.seed}", names, R,
                                     args, MODEL_VARIANTS[name])
        trained[name] = seconds
        rows += snn_rows(name, net, R, Q, L)
    # The profile that would be the default: best calibration R@1 (single frame), never test.
    snn = [r for r in rows if r["system"] != "SAD"]
    best = max(snn, key=lambda r: r["calibration"]["single"])
    # What `vprsnn train` gives without calibration options, per profile.
    profiles = {name: [r for r in snn if r["readout"] == readout and r["T"].startswith(policy)]
                for name, readout, policy in (("faithful", "mean", "T=0"), ("tuned", "zscore", "T=auto"))}
    result = {"places": args.places, "calibration_places": args.calibration, "epochs": args.epochs,
              "seed": args.seed, "sequence_length": L, "train_seconds": trained, "rows": rows,
              "best_on_calibration": {k: best[k] for k in ("system", "readout", "T")},
              "profiles": {name: [{"system": r["system"], "calibration": r["calibration"], "test": r["test"]}
                                  for r in rs] for name, rs in profiles.items()}}
    (work / "ablation.json").write_text(json.dumps(result, indent=1) + "\n")
    print(format_table(rows, L))
    (work / "ablation.md").write_text(format_markdown(rows, L) + "\n")
    print(f"best on calibration (single frame): {best['system']} readout {best['readout']} {best['T']}; "
          f"its test R@1 {best['test']['single']:.3f}")
    for name, rs in profiles.items():
        for r in rs:
            print(f"profile {name:8s} {r['system']:16s} calibration R@1 {r['calibration']['single']:.3f} "
                  f"(seq {r['calibration'][f'diagonal{L}']:.3f})   test R@1 {r['test']['single']:.3f} "
                  f"(seq {r['test'][f'diagonal{L}']:.3f})")
    print(f"written {work / 'ablation.json'} and {work / 'ablation.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
