"""Where a full-network query's time goes: one lane group of 8 modules, phase by phase, one thread.

    python -m bench.perf.query_profile [--modules 132] [--repeats 7]
    NUMBA_CPU_NAME=haswell NUMBA_CACHE_DIR=/tmp/nc_avx2 python -m bench.perf.query_profile   # AVX2 code

On the synthetic trained-like network of :func:`bench.common.synthetic_network`, times the phases of
the lane engine (:mod:`vprsnn_ros.snn.kernels.lanes`) for one query and one group:
the input train, the drive (one 8-wide add per synaptic arrival, from the
interleaved weights), and the membrane equations on the drive; then a whole
query of every group on every thread, as ``bench.perf.speed`` runs it. The
per-group phases times the number of groups, over the threads, should add up to
the whole query: that says which phase a faster full network must shrink.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from numba import get_num_threads

from bench.common import cpu_line, images, median_time, synthetic_network
from vprsnn_ros.snn.coding import rates_hz
from vprsnn_ros.snn.inference import Scorer
from vprsnn_ros.snn.kernels import lanes as lane_engine
from vprsnn_ros.snn.kernels.scalar import SHARED_STREAM, input_emissions, stream_seed
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.snn.params import pack, steps


def median_ms(fn, repeats: int) -> float:
    fn()  # compile or load from the cache
    return 1e3 * median_time(fn, repeats)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", type=int, default=132)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    cfg = NetworkConfig()
    net = synthetic_network(cfg, args.modules)
    packed = pack(cfg.params, cfg.dt)
    n_present = steps(cfg.params.present_ms, cfg.dt)
    pixels = images(1)
    rates = rates_hz(pixels).astype(np.float64)
    slot_t = np.ascontiguousarray(net.layout.slot.T)  # delays by target neuron, as the lane kernels read them
    Wl = lane_engine.interleave(net.weights)
    rows, wblk, drive = lane_engine.scratch(n_present, slot_t, 1)
    groups = lane_engine.make_groups(np.arange(args.modules))
    n_groups = groups.shape[1]
    mods = np.empty(lane_engine.GROUP, np.int64)
    th = np.empty(cfg.n_neurons * lane_engine.GROUP)
    lane_engine._group_setup(groups[0, 0], net.theta, mods, th)
    rng = np.array([stream_seed(np.uint64(cfg.seed), 0, SHARED_STREAM)], np.uint64)
    _, _, in_off, in_times = input_emissions(packed, rates[0], n_present, rng.copy())
    n_blocks = -(-cfg.n_neurons // lane_engine.BLOCK)
    counts = np.zeros(cfg.n_neurons * lane_engine.GROUP, np.int32)

    def train() -> None:
        input_emissions(packed, rates[0], n_present, rng.copy())

    def drive_phase() -> None:
        lane_engine._drive_blocks(net.weights, Wl[0], mods, slot_t, in_off, in_times, 0, n_blocks,
                                  rows[0], wblk[0], drive[0])

    def dynamics() -> None:
        counts[:] = 0
        lane_engine._simulate_lanes(packed, th, drive[0], n_present, counts, lane_engine.GROUP)

    scorer = Scorer([net], preselect_k=0)  # the full network, its weights interleaved once

    def whole_query() -> None:
        scorer.spike_counts(pixels[:1], [0], [None])

    arrivals = int(in_off[-1]) * cfg.n_neurons
    print(cpu_line())
    print(f"{args.modules} modules = {n_groups} lane groups of {lane_engine.GROUP}; "
          f"{int(in_off[-1])} input spikes x {cfg.n_neurons} neurons = {arrivals / 1e6:.2f} M arrivals per group")
    t_train = median_ms(train, args.repeats)
    t_drive = median_ms(drive_phase, args.repeats)
    t_dyn = median_ms(dynamics, args.repeats)
    t_query = median_ms(whole_query, args.repeats)
    per_group = t_drive + t_dyn
    threads = get_num_threads()
    print(f"one group, one thread: input train {t_train:6.3f} ms | drive {t_drive:6.2f} ms "
          f"({1e6 * t_drive / arrivals:.2f} ns per 8-wide arrival) | dynamics {t_dyn:6.2f} ms")
    print(f"expected query: {n_groups} groups x {per_group:.2f} ms / {threads} threads = "
          f"{n_groups * per_group / threads:.1f} ms; measured whole query {t_query:.1f} ms "
          f"({1e3 / t_query:.1f} Hz); drive share {t_drive / per_group:.0%}")
    print(f"50 Hz needs {20.0 * threads / n_groups:.2f} ms per group and thread "
          f"(drive {1e6 * 20.0 * threads / n_groups / arrivals * t_drive / per_group:.2f} ns per arrival "
          f"at the same share)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
