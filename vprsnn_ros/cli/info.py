"""``vprsnn info``: places, modules, profile, T, training time and state of a model."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    i = sub.add_parser("info", help="places, modules, profile, T, training time and state of a model")
    i.add_argument("model", metavar="MODEL_DIR")
    i.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vprsnn_ros.model.info import describe_model

    print("\n".join(describe_model(args.model)))
    return 0
