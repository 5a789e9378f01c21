"""Train the 3,300-place protocol with ``tuned`` and some profile switches changed (issue 16, item 4).

What ``vprsnn train`` does with its defaults and a calibration query, but with a profile
that the CLI has no name for::

    D=../shared/data/nordland
    vprsnn train --reference $D/summer --exclude $D/places.csv --limit 3300 \\
        --calibration-places 600 --calibration-query $D/winter --out BASE          # the baseline
    python -m bench.accuracy.protocol_variant --out IMPRINT --switch imprint=1.0   # the same + a switch

Then compare them on the calibration split (and report test) with
``python -m bench.accuracy.protocol_switches BASE IMPRINT --gains 1``. Switches are
``Profile`` fields (``vprsnn_ros/snn/profiles.py``), values parsed as YAML scalars.
The preprocessing switch ``patch`` is refused: ``protocol_switches`` reads the images
at the spec's patch 7.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from bench.common import cpu_line, load_nordland
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.snn.profiles import TUNED
from vprsnn_ros.train.training import train_network


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--switch", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--places", type=int, default=3300)
    ap.add_argument("--calibration", type=int, default=600)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    switches = {}
    for item in args.switch:
        name, _, value = item.partition("=")
        switches[name] = yaml.safe_load(value)
    if "patch" in switches:
        ap.error("patch: protocol_switches reads the images at patch 7")
    profile = TUNED.with_(name="tuned+" + ",".join(f"{k}={v}" for k, v in switches.items()), **switches)
    names, ref, qry = load_nordland(args.places)
    print(cpu_line(), flush=True)
    started = time.perf_counter()
    train_network(NetworkConfig(), [ref], names, args.out, calibration_places=args.calibration,
                  calibration_query=qry[:args.calibration], workers=args.workers, profile=profile,
                  resume=args.resume)
    print(f"trained {args.out} ({profile.name}) in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
