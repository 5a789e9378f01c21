"""How many of a module's neurons answer a query, at the trained inhibition and weaker (issue 16, 4g).

The profile switch ``query_inhibition`` multiplies w_ie at query time. With the trained
inhibition a winner-take-all module answers a query with few neurons, so which neuron fires
first decides; this counts, for each of the first ``--queries`` winter queries, the neurons
of its true place's module with at least one spike::

    python -m bench.accuracy.answering MODEL --factors 1 0.25 0.1 [--places 300] [--queries 100]

MODEL is a model trained on the first ``--places`` Nordland places (contiguous or shuffled
regions alike: each query runs on its own true module).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.common import cpu_line, load_nordland
from vprsnn_ros.eval.loss import place_modules
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.snn.coding import rates_hz


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--factors", type=float, nargs="+", default=[1.0, 0.25, 0.1])
    ap.add_argument("--places", type=int, default=300)
    ap.add_argument("--queries", type=int, default=100)
    args = ap.parse_args()
    net = load_network(args.model)
    _, _, qry = load_nordland(args.places, patch=net.config.patch)
    n = min(args.queries, len(qry))
    true_module = place_modules(net.regions, net.n_places)[:n]
    rates = rates_hz(qry[:n]).astype(np.float64)
    trained = net.config
    print(cpu_line())
    for factor in args.factors:
        net.config = trained.with_(query_inhibition=factor)
        counts = net.spike_counts(rates, np.arange(n), modules=true_module[:, None])
        answering = (counts[:, 0, :] > 0).sum(axis=1)
        print(f"query_inhibition {factor:g}: neurons answering a query, of {trained.n_neurons}: "
              f"median {np.median(answering):.0f}, mean {answering.mean():.1f} ({n} queries)")
    net.config = trained
    return 0


if __name__ == "__main__":
    sys.exit(main())
