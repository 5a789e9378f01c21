"""Speed of training and inference, against the plain reference paths in the same process.

    python bench/speed.py                       # Nordland frames if present, else synthetic
    python bench/speed.py --modules 12 132 --repeats 5

Prints, as medians over ``--repeats`` runs:
- training presentations per second of one 400-neuron module (the Numba kernel,
  from fresh weights, first epochs) and of the NumPy reference simulation;
- query rate, one image at a time, at M modules: the lane engine (8 modules per
  vector on one shared input train), the scalar kernel (one module at a time,
  each with its own input train) and the NumPy reference (timed on one module,
  scaled to M);
- the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

from vprsnn_ros import dataset, kernels
from vprsnn_ros.network import DelayLayout, ModularSNN, NetworkConfig, initial_weights, make_delays
from vprsnn_ros.params import pack, steps
from vprsnn_ros.preprocess import preprocess_batch, rates_hz
from vprsnn_ros.reference import simulate_reference
from vprsnn_ros.synthetic import make_route
from vprsnn_ros.training import _fresh_state

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nordland"


def images(n: int) -> np.ndarray:
    if DATA.exists():
        places = dataset.load_place_list(DATA / "summer").subset(range(n))
        return dataset.load_images(places.paths)
    return preprocess_batch(make_route(n)[0])


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_training(cfg: NetworkConfig, pixels: np.ndarray, repeats: int) -> tuple[float, float]:
    """Seconds per training presentation: Numba kernel, NumPy reference."""
    p = cfg.params
    packed = pack(p, cfg.dt)
    layout = DelayLayout.build(make_delays(cfg), cfg.dt, p.delay_max)
    rates = rates_hz(pixels).astype(np.float64)
    n_present, n_rest = steps(p.present_ms, cfg.dt), steps(p.rest_ms, cfg.dt)

    def kernel_epoch() -> None:
        weights = initial_weights(cfg, 0)
        st = _fresh_state(cfg)
        rng = np.array([1], np.uint64)
        kernels.train_presentations(
            packed, weights, layout.tgt, layout.off, layout.slot, rates, n_present, n_rest,
            p.weight_sum, st["v_e"], st["ge_e"], st["gi_e"], st["theta"], st["timer"], st["last_e"],
            st["post1"], st["post2"], st["v_i"], st["ge_i"], st["last_i"], st["last_emit"],
            steps(p.initial_rest_ms, cfg.dt), rng, np.zeros((len(rates), cfg.n_neurons), np.int32))

    kernel_epoch()  # compile / load from cache
    fast = median_time(kernel_epoch, repeats) / len(rates)

    def reference_presentation() -> None:
        weights = initial_weights(cfg, 0)
        weights *= (p.weight_sum / weights.sum(axis=0))[None, :]
        st = _fresh_state(cfg)
        st.pop("last_emit")
        st["pre_hist"] = np.zeros((layout.off.shape[1] - 1, cfg.n_inputs))
        step_off, step_inputs, _, _ = kernels.poisson_emissions(rates[0], n_present, cfg.dt,
                                                                np.array([1], np.uint64))
        emissions = np.zeros((n_present, cfg.n_inputs), bool)
        for t in range(n_present):
            emissions[t, step_inputs[step_off[t]:step_off[t + 1]]] = True
        simulate_reference(p, cfg.dt, weights, layout.slot, emissions, n_rest, True, st)

    slow = median_time(reference_presentation, max(1, repeats // 3))
    return fast, slow


def bench_queries(cfg: NetworkConfig, pixels: np.ndarray, n_modules: int,
                  repeats: int) -> dict[str, float]:
    """Seconds per query at ``n_modules`` modules for each engine."""
    rs = np.random.default_rng(0)
    weights = np.stack([initial_weights(cfg, m) for m in range(n_modules)])
    weights *= (cfg.params.weight_sum / weights.sum(axis=1))[:, None, :]
    # Trained networks fire sparsely; theta ~45 mV (measured on Nordland models) gives that regime.
    theta = rs.uniform(40.0, 50.0, (n_modules, cfg.n_neurons))
    net = ModularSNN(config=cfg, delays=make_delays(cfg), n_places=n_modules, regions=[
        np.array([m]) for m in range(n_modules)], n_calibration_modules=0, weights=weights,
        theta=theta, assignments=np.zeros((n_modules, cfg.n_neurons), np.int32),
        active_images=np.zeros((n_modules, cfg.n_neurons), np.int32))
    rates = rates_hz(pixels).astype(np.float64)
    queue = iter(range(10**9))

    def one(engine: str) -> None:
        q = next(queue)
        net.spike_counts(rates[q % len(rates)], [q], engine=engine)

    one("lanes")
    one("scalar")
    out = {"lanes": median_time(lambda: one("lanes"), repeats),
           "scalar": median_time(lambda: one("scalar"), max(1, repeats // 2))}
    p = cfg.params
    st = _fresh_state(cfg)
    st.pop("last_emit")
    st["pre_hist"] = np.zeros((net.layout.off.shape[1] - 1, cfg.n_inputs))
    emissions = rs.random((steps(p.present_ms, cfg.dt), cfg.n_inputs)) < rates[0] * cfg.dt * 1e-3
    w0 = weights[0].copy()
    out["reference"] = n_modules * median_time(
        lambda: simulate_reference(p, cfg.dt, w0, net.layout.slot, emissions, 0, False, dict(st)), 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", type=int, nargs="+", default=[12, 132])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dt", type=float, default=0.5)
    args = ap.parse_args()
    cfg = NetworkConfig(dt=args.dt)
    pixels = images(25)
    print(f"input: {'Nordland summer' if DATA.exists() else 'synthetic'} frames, dt {args.dt} ms, "
          f"400 neurons per module, medians of {args.repeats} runs")
    fast, slow = bench_training(cfg, pixels, args.repeats)
    print(f"training   kernel {1 / fast:8.1f} presentations/s/module   reference {1 / slow:8.3f}   "
          f"ratio {slow / fast:7.1f}x")
    for m in args.modules:
        t = bench_queries(cfg, pixels, m, args.repeats)
        print(f"query M={m:<4d} lanes {1 / t['lanes']:7.2f} Hz   scalar {1 / t['scalar']:7.2f} Hz "
              f"({t['scalar'] / t['lanes']:5.1f}x)   reference {1 / t['reference']:8.4f} Hz "
              f"({t['reference'] / t['lanes']:7.0f}x)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
