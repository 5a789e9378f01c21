"""``vprsnn replay-eval``: replay a bag through the real localizer node and report."""

from __future__ import annotations

import argparse

from vprsnn_ros.cli._common import check_scoring_options
from vprsnn_ros.errors import ConfigError
from vprsnn_ros.snn.readout import READOUTS
from vprsnn_ros.snn.sequence import SEQUENCE_MATCHERS


def add_parser(sub) -> None:
    r = sub.add_parser("replay-eval", help="replay a bag through the localizer node and report")
    r.add_argument("--model", required=True, metavar="MODEL_DIR")
    r.add_argument("--bag", required=True)
    r.add_argument("--topic", help="image topic in the bag (default: the only one)")
    r.add_argument("--mode", choices=("lockstep", "realtime"), default="lockstep")
    r.add_argument("--rate-factor", type=float, default=1.0, help="realtime: speed-up of the recording")
    r.add_argument("--report", required=True, metavar="OUT_DIR")
    r.add_argument("--sequence-length", type=int, default=1)
    r.add_argument("--sequence-matcher", choices=SEQUENCE_MATCHERS, default="diagonal")
    r.add_argument("--preselect", type=int, metavar="K",
                   help="modules run per frame (default: the model's K; 0 = every module)")
    r.add_argument("--readout", choices=READOUTS, help="place readout (default: the model's profile)")
    r.add_argument("--threshold", type=int, help="hyperactivity threshold T (default: the calibrated one)")
    r.add_argument("--every", type=int, default=1)
    r.add_argument("--limit", type=int)
    r.add_argument("--timeout", type=float, default=3600.0, help="seconds")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vprsnn_ros.eval.loss import format_where_loss
    from vprsnn_ros.eval.replay import replay_evaluate

    if args.rate_factor <= 0:
        raise ConfigError("--rate-factor must be > 0")
    check_scoring_options(args)
    report = replay_evaluate(args.model, args.bag, args.report, topic=args.topic, mode=args.mode,
                             rate_factor=args.rate_factor, sequence_length=args.sequence_length,
                             sequence_matcher=args.sequence_matcher,
                             preselect_k=-1 if args.preselect is None else args.preselect,
                             readout=args.readout, threshold=args.threshold, every=args.every,
                             limit=args.limit, timeout=args.timeout)
    recall = report["recall"]
    lat = report["latency_ms"]
    print(f"frames played {report['frames_played']}, answered {report['frames_answered']}, "
          f"dropped {report['frames_dropped']}")
    print("   N  " + "  ".join(f"{int(n):>6d}" for n in recall))
    print("R@N   " + "  ".join(f"{v:6.3f}" for v in recall.values()))
    print(f"PR-AUC {report['pr_auc']:.3f}   recall@100%P {report['recall_at_100_precision']:.3f}   "
          f"latency ms p50 {lat['p50']} p95 {lat['p95']} p99 {lat['p99']}")
    base = report.get("baseline")
    if base:
        print("SAD   " + "  ".join(f"{v:6.3f}" for v in base["recall"].values())
              + f"   PR-AUC {base['pr_auc']:.3f}   (baseline: sum of absolute differences, same frames)")
    if report.get("where_loss"):
        print(format_where_loss(report["where_loss"]))
    print(f"report written to {args.report}")
    return 0
