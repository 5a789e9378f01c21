"""``vprsnn train``: a modular SNN (or an ensemble) from reference image folders or bags."""

from __future__ import annotations

import argparse
from dataclasses import fields

from vprsnn_ros.cli._common import add_option, add_place_options, progress_bar
from vprsnn_ros.snn.profiles import PROFILES
from vprsnn_ros.train.options import TrainOptions, option_fields

_METAVARS = {"out": "MODEL_DIR", "calibration_places": "N", "calibration_query": "DIR_OR_BAG",
             "epoch_checkpoints": "E1,E2,...", "ensemble": "K", "cluster": "SPEC", "cluster_timeout": "S"}


def add_parser(sub) -> None:
    t = sub.add_parser("train", help="train a modular SNN (or an ensemble) from reference image folders or bags")
    for f in option_fields():
        if f.name == "reference":
            t.add_argument("--reference", nargs="+", required=True, metavar="DIR_OR_BAG",
                           help=f.metadata["help"])
        elif f.name == "out":
            t.add_argument("--out", required=True, metavar="MODEL_DIR", help=f.metadata["help"])
        elif f.name == "profile":
            t.add_argument("--profile", choices=tuple(PROFILES), default=f.default, help=f.metadata["help"])
        elif f.metadata["group"] == "places":
            continue
        else:
            add_option(t, f, **({"metavar": _METAVARS[f.name]} if f.name in _METAVARS else {}))
    add_place_options(t)
    t.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    return TrainOptions(**{f.name: getattr(args, f.name) for f in fields(TrainOptions)})


def run(args: argparse.Namespace) -> int:
    from vprsnn_ros.train.from_sources import train_from_sources

    opts = options_from_args(args)
    train_from_sources(opts, progress_for=lambda seed: progress_bar(f"train seed {seed}"),
                       say=lambda line: print(line, flush=True))
    print(f"model written to {opts.out}")
    return 0
