"""``vprsnn extend``: add new places to a trained model (or ensemble) without retraining it."""

from __future__ import annotations

import argparse
import time

from vprsnn_ros.cli._common import add_cluster_options, add_place_options, cluster_runner, progress_bar, traverse
from vprsnn_ros.errors import ConfigError, ModelError, VprsnnError

_EXTEND_CHECKS = {"width": "image_width", "height": "image_height", "patch": "patch",
                  "neurons": "n_neurons", "places_per_module": "places_per_module", "dt": "dt",
                  "epochs": "epochs", "profile": "profile"}



def add_parser(sub) -> None:
    x = sub.add_parser("extend", help="add new places to a trained model (or ensemble) without retraining it")
    x.add_argument("--model", required=True, metavar="MODEL_DIR", help="a complete model; extended in place "
                   "unless --out is given")
    x.add_argument("--reference", nargs="+", required=True, metavar="DIR_OR_BAG",
                   help="the new places only: one image folder or bag per reference traverse of the model")
    x.add_argument("--out", metavar="MODEL_DIR", help="write the extended model here and leave --model as it is")
    x.add_argument("--calibration-query", metavar="DIR_OR_BAG",
                   help="query traverse of the calibration places: choose T again with the new activity")
    x.add_argument("--workers", type=int, default=2, help="new modules trained in parallel")
    for opt, kind in (("width", int), ("height", int), ("patch", int), ("neurons", int),
                      ("places-per-module", int), ("dt", float), ("epochs", int), ("profile", str)):
        x.add_argument(f"--{opt}", type=kind, help="optional check: must equal the model's")
    add_place_options(x)
    add_cluster_options(x)
    x.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vprsnn_ros.model.ensemble import member_dirs
    from vprsnn_ros.model.store import ModelStore
    from vprsnn_ros.snn.network import NetworkConfig
    from vprsnn_ros.train.extend import extend_model

    if args.workers < 1:
        raise ConfigError("--workers must be >= 1")
    first = ModelStore.open(member_dirs(args.model)[0])
    try:
        config = NetworkConfig.from_dict(first.meta["config"])
    except (KeyError, TypeError, ValueError, VprsnnError) as exc:
        raise ModelError(f"model {args.model} has an invalid manifest: {exc}") from None
    given = {key: getattr(args, opt) for opt, key in _EXTEND_CHECKS.items()
             if getattr(args, opt) is not None}
    started = time.perf_counter()
    with cluster_runner(args) as runner:
        traverses = [traverse(src, args, config.image_size, config.patch, f"new reference {k + 1}",
                              with_poses=k == 0)
                     for k, src in enumerate(args.reference)]
        cal_query = None
        if args.calibration_query:
            cal_query = traverse(args.calibration_query, args, config.image_size, config.patch,
                                  "calibration query").pixels
        out = extend_model(args.model, [t.pixels for t in traverses], traverses[0].names,
                           poses=traverses[0].poses, pose_frame=traverses[0].pose_frame,
                           out=args.out, calibration_query=cal_query, given=given, runner=runner,
                           workers=args.workers, progress=progress_bar("extend"),
                           thumbnails=traverses[0].thumbnails)
    print(f"added {len(traverses[0])} places to {out} in {time.perf_counter() - started:.1f} s")
    return 0
