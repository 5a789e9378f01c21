"""Query time and memory against map size: the full network and template pre-selection.

    python -m bench.perf.map_size                         # 300, 3,300 and 10,000 places
    python -m bench.perf.map_size --places 300 3300 --preselect 8 --repeats 7

Each size runs in a fresh process (so that its peak resident memory is its
own) on a synthetic network of places / 25 modules
(:func:`bench.common.synthetic_network`): timing does not depend on what was learned, and 10,000
places is more than the shared data holds. Prints, per size, the median query
time (rates -> spike counts -> place scores, one image at a time; pre-selection
includes the template ranking) and the peak resident memory of a process that
only loads the network and runs the path (a :class:`~vprsnn_ros.snn.inference.Scorer`,
as the localizer scores):

- full network: every module; its time and memory grow linearly with the map;
- pre-selection K: the ranking grows linearly but is a matrix-vector product
  (n_places x 784), the SNN part is constant (K modules).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from bench.common import ROOT


def child(places: int, k: int, repeats: int) -> dict:
    from bench.common import cpu_line, images, synthetic_network  # noqa: PLC0415
    from vprsnn_ros.snn.inference import Scorer  # noqa: PLC0415
    from vprsnn_ros.snn.network import NetworkConfig  # noqa: PLC0415

    net = synthetic_network(NetworkConfig(), places // 25)
    pixels = images(25)
    scorer = Scorer([net], preselect_k=k)  # k = 0: every module
    times = []
    for q in range(repeats + 1):
        start = time.perf_counter()
        scorer.scores(pixels[q % 25][None], [q])
        times.append(time.perf_counter() - start)
    return {"places": places, "modules": net.n_modules, "k": k, "cpu": cpu_line(),
            "ms": 1e3 * float(np.median(times[1:])),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--places", type=int, nargs="+", default=[300, 3300, 10000])
    ap.add_argument("--preselect", type=int, default=8, metavar="K")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    rows = []
    for places in args.places:
        for k in (0, args.preselect):
            out = subprocess.run([sys.executable, "-m", "bench.perf.map_size", "--child", str(places), str(k),
                                  str(args.repeats)], cwd=ROOT, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(rows[0]["cpu"])
    print(f"medians of {args.repeats} queries; peak RSS of a process that loads the network and runs it")
    print(f"{'places':>7} {'modules':>7}  {'path':<16} {'ms/query':>9} {'Hz':>8} {'peak MB':>8}")
    for r in rows:
        path = "full network" if r["k"] == 0 else f"pre-select K={r['k']}"
        print(f"{r['places']:>7} {r['modules']:>7}  {path:<16} {r['ms']:9.2f} {1e3 / r['ms']:8.1f} "
              f"{r['peak_mb']:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
