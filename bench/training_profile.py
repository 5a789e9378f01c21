"""Where the training time goes: one 400-neuron module, split into the parts of a presentation.

    python bench/training_profile.py [--repeats 5]
    NUMBA_CPU_NAME=haswell NUMBA_CACHE_DIR=/tmp/nc_avx2 python bench/training_profile.py   # AVX2 code

A module is trained for ``--epochs`` epochs on 25 Nordland summer frames (so that
it fires like a module in training, not like fresh weights), then each part of
one presentation (350 ms of input, 150 ms of rest) is timed from the same state,
current kernel and previous kernel (``bench/legacy_training.py``) alike:

- neuron updates: the same steps with no input at all;
- + delayed input drive: frozen (no STDP), so every synaptic arrival is one add;
- + STDP: learning on, the full presentation; the difference is the pre-synaptic
  potentiation at each arrival and the post-synaptic update of 784 weights at
  each excitatory spike.

Also printed: synaptic arrivals and excitatory spikes per presentation, so that
each part can be read as nanoseconds per event. Medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import legacy_training  # noqa: E402
from speed import cpu_line, images  # noqa: E402

from vprsnn_ros import kernels  # noqa: E402
from vprsnn_ros.io.preprocess import rates_hz  # noqa: E402
from vprsnn_ros.snn.network import DelayLayout, NetworkConfig, initial_weights, make_delays  # noqa: E402
from vprsnn_ros.snn.params import pack, steps  # noqa: E402
from vprsnn_ros.train.training import _fresh_state  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, nargs="+", default=[0, 10], help="training before the profile")
    args = ap.parse_args()
    cfg = NetworkConfig()
    p = cfg.params
    packed = pack(p, cfg.dt)
    layout = DelayLayout.build(make_delays(cfg), cfg.dt, p.delay_max)
    rates = rates_hz(images(25)).astype(np.float64)
    n_present, n_rest = steps(p.present_ms, cfg.dt), steps(p.rest_ms, cfg.dt)
    silent = np.zeros_like(rates[0])
    print(cpu_line())
    for trained_epochs in args.epochs:
        weights = initial_weights(cfg, 0)
        state = _fresh_state(cfg)
        rng = np.array([1], np.uint64)
        t0 = steps(p.initial_rest_ms, cfg.dt)
        for _ in range(trained_epochs):
            t0 = kernels.train_presentations(
                packed, weights, layout.tgt, layout.off, layout.slot, rates, n_present, n_rest,
                p.weight_sum, *state.values(), t0, rng, np.zeros((25, cfg.n_neurons), np.int32))

        # The current kernel as train_presentations runs it: weights and the learning layout
        # are laid out once per call of many presentations, so they are not timed here.
        weights_by_delay = kernels.by_delay(weights, layout.tgt)
        learning = kernels.learning_layout(packed, layout.tgt, layout.slot, True)

        def previous(w, learn, input_rates, st, counts):
            legacy_training.simulate_plain(packed, w, layout.tgt, layout.off, layout.slot, input_rates,
                                           n_present, n_rest, learn, *st.values(), t0,
                                           np.array([7], np.uint64), counts)

        def current(w, learn, input_rates, st, counts):
            kernels.simulate_by_delay(packed, w, layout.tgt, layout.off, *learning, input_rates, n_present,
                                      n_rest, learn, *st.values(), t0, np.array([7], np.uint64), counts)

        def part(simulate, w0: np.ndarray, learn: bool, input_rates: np.ndarray) -> tuple[float, int]:
            """Seconds and excitatory spikes of presenting image 0 from the saved state."""
            times, spikes = [], 0
            for _ in range(args.repeats + 1):  # the first run compiles or loads the cache
                w, st = w0.copy(), {k: v.copy() for k, v in state.items()}
                counts = np.zeros(cfg.n_neurons, np.int64)
                start = time.perf_counter()
                simulate(w, learn, input_rates, st, counts)
                times.append(time.perf_counter() - start)
                spikes = int(counts.sum())
            return float(np.median(times[1:])), spikes

        _, _, in_off, _ = kernels.input_emissions(packed, rates[0], n_present, np.array([7], np.uint64))
        arrivals = int(in_off[-1]) * cfg.n_neurons
        print(f"\nafter {trained_epochs} epochs: {arrivals / 1e6:.2f} M synaptic arrivals per presentation")
        for name, simulate, w0 in (("previous", previous, weights), ("current", current, weights_by_delay)):
            neurons, _ = part(simulate, w0, True, silent)
            frozen, _ = part(simulate, w0, False, rates[0])
            full, spikes = part(simulate, w0, True, rates[0])
            print(f"  {name:8s} kernel: neuron updates {1e3 * neurons:6.2f} ms | + input drive "
                  f"{1e3 * (frozen - neurons):6.2f} ms ({1e9 * (frozen - neurons) / arrivals:4.2f} ns/arrival) | "
                  f"+ STDP {1e3 * (full - frozen):6.2f} ms ({spikes} spikes) | presentation {1e3 * full:6.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
