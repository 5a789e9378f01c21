"""What starting every query from rest changes: the reference code's carried-over state, measured.

    python -m bench.accuracy.carry_over --model /tmp/models/n300 --places 300

The published code runs the test queries one after another, each followed by
the 150 ms rest, without resetting the network; this package starts every query
from rest (docs/guides/fidelity.md). This bench scores the Nordland winter
queries both ways with every module of ``--model`` (mean readout, no masking)
and prints R@1 of each.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from numba import njit

from bench.common import load_nordland, r1
from vprsnn_ros.model.ensemble import load_model
from vprsnn_ros.snn.kernels.scalar import simulate_by_delay, synapses
from vprsnn_ros.snn.module_training import fresh_state
from vprsnn_ros.snn.params import steps


@njit(cache=True, nogil=True)
def infer_carry_over(P, W, tgt, off, slot, rates_hz, n_present, n_rest, state, t0, rng, counts):
    """Frozen queries of one module with ``state`` carried from query to query (``counts`` (Q, N))."""
    syn = synapses(P, W, tgt, off, slot, False)
    for q in range(rates_hz.shape[0]):
        t0 = simulate_by_delay(P, syn, rates_hz[q], n_present, n_rest, False, state, t0, rng, counts[q])
    return t0


def carried_counts(net, rates: np.ndarray) -> np.ndarray:
    cfg, lay = net.config, net.layout
    packed = cfg.packed(learning=False)
    n_present, n_rest = steps(cfg.params.present_ms, cfg.dt), steps(cfg.params.rest_ms, cfg.dt)
    counts = np.zeros((len(rates), net.n_modules, cfg.n_neurons), np.int32)
    for m in range(net.n_modules):
        state = fresh_state(cfg)._replace(theta=net.theta[m].copy())
        rng = np.array([np.uint64(cfg.seed * 1000 + m)], np.uint64)
        block = np.zeros((len(rates), cfg.n_neurons), np.int32)
        infer_carry_over(packed, net.weights[m], lay.tgt, lay.off, lay.slot, rates, n_present, n_rest, state,
                         0, rng, block)
        counts[:, m] = block
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--places", type=int, default=300)
    args = ap.parse_args()
    net = load_model(args.model)[0]
    _names, _ref, query = load_nordland(args.places)
    rates = net.config.input_rates(query)
    rest = net.spike_counts(rates, np.arange(len(query)))
    print(f"from rest (this package) R@1 {r1(net.scores(rest, threshold=0, readout='mean')):.3f}")
    print(f"carried over (reference) R@1 {r1(net.scores(carried_counts(net, rates), threshold=0, readout='mean')):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
