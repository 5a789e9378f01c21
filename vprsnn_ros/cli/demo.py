"""``vprsnn demo``: a synthetic route -> bags -> train from the reference bag -> replay the query bag."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    d = sub.add_parser("demo", help="synthetic route: train, evaluate, print recall")
    d.add_argument("--work", default="demo_output", help="folder for the route and the report")
    d.add_argument("--model", default="models/demo", help="where the demo model is written")
    d.add_argument("--places", type=int, default=40)
    d.add_argument("--places-per-module", type=int, default=10)
    d.add_argument("--neurons", type=int, default=100)
    d.add_argument("--epochs", type=int, default=20)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--resume", action="store_true")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Synthetic route -> bags -> train from the reference bag -> replay the query bag through the node."""
    import importlib.util

    from vprsnn_ros.cli import build_parser
    from vprsnn_ros.io.bags import write_bag_from_folder
    from vprsnn_ros.io.synthetic import write_route

    def call(argv: list[str]) -> int:
        """Run another subcommand, exactly as if it had been typed."""
        sub_args = build_parser().parse_args(argv)
        return sub_args.func(sub_args)

    work = Path(args.work)
    ref_dir, query_dir = write_route(work / "route", args.places, seed=args.seed)
    bags = {}
    for name, folder in (("reference", ref_dir), ("query", query_dir)):
        bags[name] = work / f"{name}_bag"
        if not bags[name].exists():
            write_bag_from_folder(folder, bags[name], rate_hz=5.0)
    print(f"synthetic route with {args.places} places written to {work} (image folders and mcap bags)")
    call([
        "train", "--reference", str(bags["reference"]), "--out", str(args.model),
        "--places-per-module", str(args.places_per_module), "--neurons", str(args.neurons),
        "--epochs", str(args.epochs), "--seed", str(args.seed), "--workers", str(args.workers)]
        + (["--resume"] if args.resume else []))
    if importlib.util.find_spec("rclpy") is None:
        print("rclpy is not installed (pip install -e '.[ros]'): evaluating offline instead of through the node")
        return call([
            "evaluate", "--model", str(args.model), "--query", str(bags["query"]),
            "--report", str(work / "report")])
    print("replaying the query bag through the localizer node (lockstep)")
    return call([
        "replay-eval", "--model", str(args.model), "--bag", str(bags["query"]),
        "--report", str(work / "report"), "--mode", "lockstep"])
