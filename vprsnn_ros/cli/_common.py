"""What several subcommands share: progress bars, the cluster options and the place options."""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from typing import Any

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.train.options import TrainOptions, option, option_fields, option_type


def progress_bar(desc: str, unit: str = "presentation"):
    """A tqdm bar driven by (done, total, message) callbacks."""
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int, message: str = "") -> None:
        nonlocal bar
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, file=sys.stderr)
        bar.update(done - bar.n)
        if message:
            bar.set_postfix_str(message, refresh=False)
        if done >= total:
            bar.close()
            bar = None
    return update


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", metavar="SPEC", help=option("cluster").metadata["help"])
    p.add_argument("--cluster-timeout", type=float, default=TrainOptions.cluster_timeout, metavar="S",
                   help=option("cluster_timeout").metadata["help"])


def cluster_runner(args: argparse.Namespace) -> Any:
    """A Dask runner for --cluster (reached before any work starts), else a context giving None."""
    if not getattr(args, "cluster", None):
        return nullcontext()
    if args.cluster_timeout <= 0:
        raise ConfigError("--cluster-timeout must be > 0")
    from vprsnn_ros.parallel.runner import open_runner

    return open_runner(args.cluster, timeout=args.cluster_timeout)


_PLACE_METAVARS = {"list": "CSV", "exclude": "CSV", "every": "K", "limit": "N", "every_seconds": "T",
                   "every_metres": "D", "poses": "CSV", "pose_frame": "FRAME"}
_POSE_OPTIONS = ("poses", "pose_frame")


def add_place_options(p: argparse.ArgumentParser, poses: bool = True) -> None:
    """The place options of :class:`TrainOptions` (evaluate and extend read places the same way).

    ``poses``: also ``--poses CSV`` and ``--pose-frame`` (train and extend: the
    model keeps its places' poses; evaluate does not use a query's poses).
    """
    for f in option_fields():
        if f.metadata["group"] != "places" or (not poses and f.name in _POSE_OPTIONS):
            continue
        add_option(p, f, metavar=_PLACE_METAVARS.get(f.name))


def add_option(p: argparse.ArgumentParser, f, **extra) -> None:
    """``--name`` for the :class:`TrainOptions` field ``f``, with its type, default and help."""
    flag = "--" + f.name.replace("_", "-")
    if option_type(f) is bool:
        p.add_argument(flag, action="store_true", help=f.metadata["help"])
    else:
        p.add_argument(flag, type=option_type(f), default=f.default, help=f.metadata["help"], **extra)


def traverse(source: str, args: argparse.Namespace, size: tuple[int, int], patch: int, desc: str,
             with_poses: bool = False):
    """Places of an image folder or a bag, preprocessed, with the command's place options;
    ``with_poses``: with ``--poses``/``--pose-frame`` (the first reference traverse)."""
    from vprsnn_ros.io.sources import load_traverse

    poses = {"poses_csv": args.poses, "pose_frame": args.pose_frame} if with_poses else {}
    return load_traverse(source, size, patch, list_csv=args.list, exclude_csv=args.exclude,
                         every=args.every, every_seconds=args.every_seconds,
                         every_metres=args.every_metres, limit=args.limit, topic=args.topic,
                         pose_topic=args.pose_topic, desc=desc, strict=args.strict, **poses)


def check_scoring_options(args: argparse.Namespace) -> None:
    """The scoring overrides that evaluate and replay-eval share: sequence length, T and K."""
    if args.sequence_length < 1:
        raise ConfigError("--sequence-length must be >= 1")
    if args.threshold is not None and args.threshold < 0:
        raise ConfigError("--threshold must be >= 0 (0 = no masking)")
    if args.preselect is not None and args.preselect < 0:
        raise ConfigError("--preselect must be >= 0 (0 = every module)")
