"""Cost of the readouts per query at 3,300 places (132 modules x 400 neurons, synthetic counts).

Times the faithful mean readout and the z-score merge on one query, and the
reference statistics' recording cost over 3,300 images (added to the hyperactivity
recording of training).

    python -m bench.perf.readout_cost
"""

from __future__ import annotations

import time

import numpy as np

from vprsnn_ros.snn.network import hyperactive_mask, place_scores
from vprsnn_ros.snn.readout import ReferenceStats

M, N, P, PER = 132, 400, 3300, 25


def main() -> None:
    rng = np.random.default_rng(0)
    regions = [np.arange(m * PER, (m + 1) * PER) for m in range(M)]
    assignments = np.stack([rng.choice(regions[m], N) for m in range(M)]).astype(np.int32)
    stats = ReferenceStats(assignments=assignments, n_places=P)
    started = time.perf_counter()
    for b in range(0, P, 64):
        # About 50 spikes per module and image, as on Nordland.
        stats.add(rng.poisson(50 / N, (min(64, P - b), M, N)))
    print(f"reference statistics over {P} images: {time.perf_counter() - started:.1f} s")
    active = rng.integers(0, 300, (M, N))
    counts = rng.poisson(50 / N, (1, M, N))
    modules = tuple(range(M))
    for t in (0, 60):
        masked = hyperactive_mask(active, t) if t else None
        timings = {}
        for name in ("mean", "zscore"):
            def once(name=name, masked=masked):
                S = place_scores(counts, assignments, P, masked)
                return stats.merge(S, masked, regions, modules) if name == "zscore" else S
            once()
            started = time.perf_counter()
            for _ in range(500):
                once()
            timings[name] = (time.perf_counter() - started) / 500 * 1e3
        print(f"T={t}: mean readout {timings['mean']:.3f} ms, zscore readout {timings['zscore']:.3f} ms "
              f"per query")


if __name__ == "__main__":
    main()
