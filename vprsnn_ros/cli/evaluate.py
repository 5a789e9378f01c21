"""``vprsnn evaluate``: Recall@N, PR-AUC, plots and the SAD baseline of a model on a query traverse."""

from __future__ import annotations

import argparse
from pathlib import Path

from vprsnn_ros.cli._common import (
    add_cluster_options,
    add_place_options,
    check_scoring_options,
    cluster_runner,
    progress_bar,
    traverse,
)
from vprsnn_ros.errors import ConfigError, DataError
from vprsnn_ros.snn.readout import READOUTS
from vprsnn_ros.snn.sequence import SEQUENCE_MATCHERS


def add_parser(sub) -> None:
    e = sub.add_parser("evaluate", help="Recall@N, PR-AUC and plots of a model on a query traverse")
    e.add_argument("--model", required=True, metavar="MODEL_DIR")
    e.add_argument("--query", required=True, metavar="DIR_OR_BAG")
    e.add_argument("--report", required=True, metavar="OUT_DIR")
    e.add_argument("--tolerance", type=int, default=0, help="also report recall within +-N places")
    e.add_argument("--sequence-length", type=int, default=1)
    e.add_argument("--ground-truth", metavar="CSV", help="CSV query,reference of file names")
    e.add_argument("--split", choices=("auto", "test", "calibration", "all"), default="auto",
                   help="auto: test when the model has a calibration split, else all; calibration: "
                        "the calibration places with their own modules")
    e.add_argument("--threshold", type=int, help="hyperactivity threshold T (default: the calibrated one)")
    e.add_argument("--preselect", type=int, metavar="K",
                   help="run the SNN on each query's K best modules by template (default: the "
                        "calibrated K; 0 = every module)")
    e.add_argument("--readout", choices=READOUTS,
                   help="place readout (default: the model's profile)")
    e.add_argument("--sequence-matcher", choices=SEQUENCE_MATCHERS, default="diagonal",
                   help="diagonal sum, or SeqSLAM contrast normalisation + velocity search")
    add_place_options(e, poses=False)  # recall is by place id / ground truth: a query's poses are not used
    add_cluster_options(e)
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vprsnn_ros.model.ensemble import load_model

    check_scoring_options(args)
    if args.tolerance < 0:
        raise ConfigError("--tolerance must be >= 0")
    report_dir = Path(args.report)
    if report_dir.exists() and not report_dir.is_dir():
        raise ConfigError(f"--report {report_dir} exists and is not a directory")
    members = load_model(args.model)
    with cluster_runner(args) as runner:
        return _evaluate_on(args, members, runner)


def _evaluate_on(args: argparse.Namespace, members, runner) -> int:
    from vprsnn_ros.eval.evaluation import evaluate, format_report, write_report
    from vprsnn_ros.io.dataset import check_correspondence, read_ground_truth_csv

    cfg = members[0].config
    queries = traverse(args.query, args, cfg.image_size, cfg.patch, "query images")
    gt = None
    if args.ground_truth:
        if not members[0].place_names:
            raise DataError(f"model {args.model} stores no place names; --ground-truth needs them")
        gt = read_ground_truth_csv(args.ground_truth, queries.names, members[0].place_names)
    else:
        check_correspondence(members[0].n_places, len(queries), args.query)
    pixels = queries.pixels
    bar = progress_bar("evaluate", unit="query")
    scorer = None
    if runner is not None:
        from functools import partial

        from vprsnn_ros.parallel.cluster import cluster_query_scores
        scorer = partial(cluster_query_scores, runner)
    report, S, gt_local = evaluate(members, pixels, gt, split=args.split, tolerance=args.tolerance,
                                   sequence_length=args.sequence_length, threshold=args.threshold,
                                   preselect_k=args.preselect, progress=lambda d, t: bar(d, t),
                                   readout=args.readout, sequence_matcher=args.sequence_matcher,
                                   scorer=scorer)
    report["model"] = str(args.model)
    report["query"] = str(args.query)
    write_report(args.report, report, S, gt_local, title=f"{Path(args.model).name} on {Path(args.query).name}")
    print(format_report(report))
    print(f"report written to {args.report}")
    return 0
