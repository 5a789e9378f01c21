"""Where the training time goes: one 400-neuron module, split into the parts of a presentation.

    python -m bench.perf.training_profile [--repeats 5]
    NUMBA_CPU_NAME=haswell NUMBA_CACHE_DIR=/tmp/nc_avx2 python -m bench.perf.training_profile   # AVX2 code
    python -m bench.perf.training_profile --baseline e790470     # beside commit e790470's kernel

A module is trained for ``--epochs`` epochs on 25 Nordland summer frames (so that
it fires like a module in training, not like fresh weights), then each part of
one presentation (350 ms of input, 150 ms of rest) is timed from the same state:

- neuron updates: the same steps with no input at all;
- + delayed input drive: frozen (no STDP), so every synaptic arrival is one add;
- + STDP: learning on, the full presentation; the difference is the pre-synaptic
  potentiation at each arrival and the post-synaptic update of 784 weights at
  each excitatory spike.

The kernel is timed as ``train_presentations`` runs it: the weights and the
learning layout are laid out once per call of many presentations, so not timed.
Also printed: synaptic arrivals and excitatory spikes per presentation, so that
each part can be read as nanoseconds per event. Medians of ``--repeats`` runs.

``--baseline REV`` runs REV's own training profile with the same options in a git
worktree of REV (its package and kernel, its own Numba cache; see
:func:`bench.common.run_baseline`) and prints both side by side with ratios.
``--json`` prints the rows as one JSON object.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

import numpy as np

from bench.common import baseline_argv, cpu_line, emit_json, images, print_comparison, row, run_baseline
from vprsnn_ros.snn.coding import rates_hz
from vprsnn_ros.snn.kernels import scalar as kernels
from vprsnn_ros.snn.module_training import fresh_state
from vprsnn_ros.snn.network import DelayLayout, NetworkConfig, initial_weights, make_delays
from vprsnn_ros.snn.params import pack, steps

PARTS = ("neuron updates", "input drive", "STDP", "presentation")


def part_time(simulate, syn, state, learn: bool, input_rates: np.ndarray,
              n_neurons: int, repeats: int) -> tuple[float, int]:
    """Median seconds and excitatory spikes of presenting ``input_rates`` from the saved state."""
    times, spikes = [], 0
    for _ in range(repeats + 1):  # the first run compiles or loads the cache
        w, st = syn._replace(Wd=syn.Wd.copy()), type(state)(*(a.copy() for a in state))
        counts = np.zeros(n_neurons, np.int64)
        start = time.perf_counter()
        simulate(w, learn, input_rates, st, counts)
        times.append(time.perf_counter() - start)
        spikes = int(counts.sum())
    return float(np.median(times[1:])), spikes


# Lines of a training profile before --json (e.g. bench/training_profile.py at e790470), for --baseline.
_EPOCHS_LINE = re.compile(r"^after (\d+) epochs:")
_KERNEL_LINE = re.compile(r"^\s+(\S+)\s+kernel: neuron updates\s+([\d.]+) ms \| \+ input drive\s+(-?[\d.]+) ms .*"
                          r"\| \+ STDP\s+(-?[\d.]+) ms .*\| presentation\s+([\d.]+) ms")


def parse_text(text: str) -> list[dict]:
    """Rows of an older training profile's printed lines (its in-process "previous" kernel marked so)."""
    rows, epochs = [], None
    for line in text.splitlines():
        if m := _EPOCHS_LINE.match(line):
            epochs = int(m[1])
        elif (m := _KERNEL_LINE.match(line)) and epochs is not None:
            mark = "" if m[1] == "current" else f" [its {m[1]} kernel]"
            rows += [row(f"after {epochs} epochs: {part}{mark}", float(ms) / 1e3)
                     for part, ms in zip(PARTS, m.groups()[1:])]
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, nargs="+", default=[0, 10], help="training before the profile")
    ap.add_argument("--baseline", metavar="REV", help="also run REV's own training profile (git worktree)")
    ap.add_argument("--json", action="store_true", help="print the rows as one JSON object")
    args = ap.parse_args()
    out = sys.stderr if args.json else sys.stdout
    cfg = NetworkConfig()
    p = cfg.params
    packed = pack(p, cfg.dt)
    layout = DelayLayout.build(make_delays(cfg), cfg.dt, p.delay_max)
    rates = rates_hz(images(25)).astype(np.float64)
    n_present, n_rest = steps(p.present_ms, cfg.dt), steps(p.rest_ms, cfg.dt)
    silent = np.zeros_like(rates[0])
    rows = []
    print(cpu_line(), file=out)
    for trained_epochs in args.epochs:
        weights = initial_weights(cfg, 0)
        state = fresh_state(cfg)
        rng = np.array([1], np.uint64)
        t0 = steps(p.initial_rest_ms, cfg.dt)
        for _ in range(trained_epochs):
            t0 = kernels.train_presentations(
                packed, weights, layout.tgt, layout.off, layout.slot, rates, n_present, n_rest,
                p.weight_sum, state, t0, rng, np.zeros((25, cfg.n_neurons), np.int32))

        # The kernel as train_presentations runs it: the weights by delay and the learning
        # layout are made once per call of many presentations, so they are not timed here.
        syn = kernels.synapses(packed, weights, layout.tgt, layout.off, layout.slot, True)

        def simulate(s, learn, input_rates, st, counts, t0=t0):
            kernels.simulate_by_delay(packed, s, input_rates, n_present, n_rest, learn, st, t0,
                                      np.array([7], np.uint64), counts)

        _, _, in_off, _ = kernels.input_emissions(packed, rates[0], n_present, np.array([7], np.uint64))
        arrivals = int(in_off[-1]) * cfg.n_neurons
        print(f"\nafter {trained_epochs} epochs: {arrivals / 1e6:.2f} M synaptic arrivals per presentation",
              file=out)
        timed = dict(simulate=simulate, syn=syn, state=state, n_neurons=cfg.n_neurons,
                     repeats=args.repeats)
        neurons, _ = part_time(learn=True, input_rates=silent, **timed)
        frozen, _ = part_time(learn=False, input_rates=rates[0], **timed)
        full, spikes = part_time(learn=True, input_rates=rates[0], **timed)
        print(f"  current  kernel: neuron updates {1e3 * neurons:6.2f} ms | + input drive "
              f"{1e3 * (frozen - neurons):6.2f} ms ({1e9 * (frozen - neurons) / arrivals:4.2f} ns/arrival) | "
              f"+ STDP {1e3 * (full - frozen):6.2f} ms ({spikes} spikes) | presentation {1e3 * full:6.2f} ms",
              file=out, flush=True)
        rows += [row(f"after {trained_epochs} epochs: {part}", s)
                 for part, s in zip(PARTS, (neurons, frozen - neurons, full - frozen, full))]
    baseline = None
    if args.baseline:
        baseline = run_baseline(args.baseline, "perf.training_profile", baseline_argv(sys.argv[1:]), parse_text)
        if not args.json:
            print_comparison(rows, baseline, f"medians of {args.repeats} presentations; input drive and STDP "
                                             "are differences of medians; ")
    if args.json:
        emit_json("perf.training_profile", args, rows, baseline=baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
