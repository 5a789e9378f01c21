"""Accuracy on Nordland (reference summer, query winter, dark places excluded).

Trains one modular network on the first ``--places`` non-dark summer frames and
reports R@1/R@5 on the matching winter frames: the sum-of-absolute-differences
baseline on the same preprocessed images, the network for every hyperactivity
threshold T of the sweep, and the inference ablations (state carried over from
query to query as in the reference code; one input train per module instead of
one shared per query). Prints a table and writes JSON.

    python bench/nordland_accuracy.py --places 300 --epochs 60 --out /tmp/nordland300
    python bench/nordland_accuracy.py --places 300 --epochs 60 --shuffle --out /tmp/n300s
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from vprsnn_ros.eval.metrics import recall_at_n
from vprsnn_ros.io import dataset
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.snn.coding import rates_hz
from vprsnn_ros.snn.kernels import scalar as kernels
from vprsnn_ros.snn.network import DEFAULT_T_SWEEP, ModularSNN, NetworkConfig
from vprsnn_ros.snn.params import NetworkParams, pack, steps
from vprsnn_ros.train.training import _fresh_state, train_network

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nordland"


def load(places: int, every: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    dark = dataset.read_exclude_csv(DATA / "places.csv")
    keep = list(range(0, places * every, every))
    ref = dataset.load_place_list(DATA / "summer", exclude=dark).subset(keep)
    qry = dataset.load_place_list(DATA / "winter", exclude=dark).subset(keep)
    return ref.names, dataset.load_images(ref.paths), dataset.load_images(qry.paths)


def carry_over_counts(net: ModularSNN, rates: np.ndarray) -> np.ndarray:
    """Reference test procedure: fresh network, 500 ms rest, then each query + 150 ms rest."""
    cfg, p = net.config, net.config.params
    packed = pack(p, cfg.dt)
    lay = net.layout
    out = np.zeros((len(rates), net.n_modules, cfg.n_neurons), np.int64)
    for m in range(net.n_modules):
        st = _fresh_state(cfg)
        rng = np.array([kernels.stream_seed(cfg.seed, 7, m)], np.uint64)
        args = (st["v_e"], st["ge_e"], st["gi_e"], st["timer"], st["last_e"], st["post1"],
                st["post2"], st["v_i"], st["ge_i"], st["last_i"], st["last_emit"])
        t0 = kernels.infer_carry_over(packed, net.weights[m], net.theta[m], lay.tgt, lay.off,
                                      lay.slot, np.zeros((1, cfg.n_inputs)), 0,
                                      steps(p.initial_rest_ms, cfg.dt), *args, 0, rng,
                                      np.zeros((1, cfg.n_neurons), np.int64))
        counts = np.zeros((len(rates), cfg.n_neurons), np.int64)
        kernels.infer_carry_over(packed, net.weights[m], net.theta[m], lay.tgt, lay.off, lay.slot,
                                 rates, steps(p.present_ms, cfg.dt), steps(p.rest_ms, cfg.dt),
                                 *args, t0, rng, counts)
        out[:, m] = counts
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--places", type=int, default=300)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--dt", type=float, default=0.5)
    ap.add_argument("--neurons", type=int, default=400)
    ap.add_argument("--shuffle", action="store_true")
    ap.add_argument("--subtract-pre", action="store_true",
                    help="Diehl & Cook's pre-synaptic STDP term (w -= nu_pre * post1) instead of the reference's +=")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", required=True, help="model directory (reused if complete)")
    ap.add_argument("--skip-ablations", action="store_true")
    args = ap.parse_args()
    if not DATA.exists():
        print(f"no Nordland data at {DATA}", file=sys.stderr)
        return 2
    names, R, Q = load(args.places, args.every)
    result: dict = {"places": args.places, "epochs": args.epochs, "dt": args.dt,
                    "shuffle": args.shuffle, "subtract_pre": args.subtract_pre, "seed": args.seed}
    sad = -np.abs(Q[:, None, :].astype(np.int32) - R[None, :, :].astype(np.int32)).sum(-1)
    result["sad"] = recall_at_n(sad.astype(float), ns=(1, 5))
    out = Path(args.out)
    if (out / "model.yaml").exists():
        net = load_network(out)
        result["train_seconds"] = None
    else:
        params = NetworkParams(nu_pre=-1e-4) if args.subtract_pre else NetworkParams()
        cfg = NetworkConfig(epochs=args.epochs, dt=args.dt, shuffle=args.shuffle, seed=args.seed,
                            n_neurons=args.neurons, params=params)
        started = time.perf_counter()
        net = train_network(cfg, [R], names, out, workers=args.workers)
        result["train_seconds"] = round(time.perf_counter() - started, 1)
    rates = rates_hz(Q).astype(np.float64)
    started = time.perf_counter()
    counts = net.spike_counts(rates, np.arange(len(Q)))
    result["query_seconds"] = round(time.perf_counter() - started, 2)
    sweep = {}
    for t in DEFAULT_T_SWEEP:
        sweep[t] = recall_at_n(net.scores(counts, threshold=t), ns=(1, 5))
        sweep[t]["masked"] = net.n_masked(t)
    result["snn_by_T"] = sweep
    best_t = max(sweep, key=lambda t: sweep[t][1])
    result["best_T_on_test"] = best_t
    if not args.skip_ablations:
        scalar = net.spike_counts(rates, np.arange(len(Q)), engine="scalar")
        carry = carry_over_counts(net, rates)
        for name, c in (("independent_input_trains", scalar), ("carry_over_state", carry)):
            result[name] = {t: recall_at_n(net.scores(c, threshold=t), ns=(1, 5))
                            for t in (0, best_t)}
    print(json.dumps(result, indent=1, default=str))
    (out.parent / f"{out.name}_accuracy.json").write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
