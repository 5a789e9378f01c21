"""K chosen without query images (perturbed reference) against K chosen on calibration queries.

    python -m bench.accuracy.k_rule --model /tmp/models/n3300 --places 3300

``--model``: a model trained with a calibration query (``vprsnn train ... --calibration-places 600
--calibration-query winter``), so that it records the calibration choice of K and its table.
The bench applies :func:`vprsnn_ros.train.calibration.choose_k_without_queries` to the same
network (its reference pixels, its T), prints both tables and both K, and the test-split R@1
of the winter queries with each K (reported, not used for any choice).
"""

from __future__ import annotations

import argparse
import sys

from bench.common import cpu_line, load_nordland
from vprsnn_ros.eval.evaluation import evaluate
from vprsnn_ros.model.ensemble import load_model
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.train.calibration import choose_k_without_queries


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--places", type=int, default=3300)
    args = ap.parse_args()
    print(cpu_line())
    net = load_model(args.model)[0]
    meta = ModelStore.open(args.model).meta
    cal = meta.get("preselect") or {}
    print(f"calibration query: K = {meta.get('preselect_k')} ({cal.get('method', 'calibration_query')})")
    for row in cal.get("table", []):
        print(f"  K={row['k']:>3}  calibration R@1 {row['recall_at_1']:.3f}")
    k, record = choose_k_without_queries(net, net.reference_pixels, net.hyperactive_threshold)
    print(f"perturbed reference ({record['queries']} images): K = {k}")
    for row in record["table"]:
        print(f"  K={row['k']:>3}  perturbed-reference R@1 {row['recall_at_1']:.3f}")
    _names, _ref, query = load_nordland(args.places)
    for label, kk in (("calibration K", int(meta.get("preselect_k", 0))), ("reference K", k)):
        report, _S, _gt = evaluate([net], query, preselect_k=kk)
        print(f"test split ({report['queries']} queries) with {label} = {kk or 'all'}: R@1 "
              f"{report['recall']['1']:.3f} (SAD {report['baseline']['recall']['1']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
