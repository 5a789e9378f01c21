"""Train the 3,300-place protocol with ``tuned`` and some profile switches changed (issue 16, item 4).

What ``vprsnn train`` does with its defaults and a calibration query, but with a profile
that the CLI has no name for::

    D=../shared/data/nordland
    vprsnn train --reference $D/summer --exclude $D/places.csv --limit 3300 \\
        --calibration-places 600 --calibration-query $D/winter --out BASE          # the baseline
    python -m bench.accuracy.protocol_variant --out IMPRINT --switch imprint=1.0   # the same + a switch

Then compare them on the calibration split (and report test) with
``python -m bench.accuracy.protocol_switches BASE IMPRINT --gains 1``. Switches are
``Profile`` fields (``vprsnn_ros/snn/profiles.py``), ``--param`` sets ``NetworkParams``
fields; values are parsed as YAML scalars. With ``--switch patch=P`` the images are
preprocessed with that window (``protocol_switches`` reads each model's).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import yaml

from bench.common import cpu_line, load_nordland
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.snn.profiles import TUNED
from vprsnn_ros.train.training import train_network


def _pair(item: str) -> tuple[str, object]:
    name, _, value = item.partition("=")
    return name, yaml.safe_load(value)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--switch", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--places", type=int, default=3300)
    ap.add_argument("--calibration", type=int, default=600)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    switches = dict(_pair(item) for item in args.switch)
    params = dict(_pair(item) for item in args.param)
    label = ",".join(f"{k}={v}" for k, v in {**switches, **params}.items())
    profile = TUNED.with_(name=f"tuned+{label}", **switches)
    config = NetworkConfig()
    config = config.with_(params=replace(config.params, **params))
    names, ref, qry = load_nordland(args.places, patch=switches.get("patch") or 7)
    print(cpu_line(), flush=True)
    started = time.perf_counter()
    train_network(config, [ref], names, args.out, calibration_places=args.calibration,
                  calibration_query=qry[:args.calibration], workers=args.workers, profile=profile,
                  resume=args.resume)
    print(f"trained {args.out} ({profile.name}) in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
