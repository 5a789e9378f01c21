"""``vprsnn``: train, evaluate and demo from the command line.

Every error the package raises on purpose ends the command with one line on
stderr and exit status 2; an interrupt with 130.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from vprsnn_ros import __version__
from vprsnn_ros.errors import ConfigError, DataError, ModelError, VprsnnError


def _progress_bar(desc: str, unit: str = "presentation"):
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


# --------------------------------------------------------------------------
# Cluster
# --------------------------------------------------------------------------

def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", metavar="SPEC",
                   help="run the work on Dask: local[:N] (N worker processes here), tcp://HOST:PORT "
                        "(a running scheduler) or a scheduler file (needs vprsnn_ros[cluster])")
    p.add_argument("--cluster-timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for the Dask scheduler to answer")


class _NoRunner:
    """Context for the in-process default: the callee makes its own threads."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        pass


def _cluster_runner(args: argparse.Namespace):
    """A Dask runner for --cluster (reached before any work starts), else None."""
    if not getattr(args, "cluster", None):
        return _NoRunner()
    if args.cluster_timeout <= 0:
        raise ConfigError("--cluster-timeout must be > 0")
    from vprsnn_ros.parallel.runner import open_runner

    return open_runner(args.cluster, timeout=args.cluster_timeout)


# --------------------------------------------------------------------------
# Places
# --------------------------------------------------------------------------

def _add_place_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--list", metavar="CSV", help="CSV of file names (column 'filename') giving the places in order")
    p.add_argument("--exclude", metavar="CSV",
                   help="CSV of files to drop (column 'filename'; with flag columns, rows with any flag set)")
    p.add_argument("--every", type=int, default=1, metavar="K", help="keep every K-th place (after --exclude)")
    p.add_argument("--limit", type=int, metavar="N", help="keep the first N places (after --every)")
    p.add_argument("--topic", help="bags: the image topic (default: the bag's only image topic)")
    p.add_argument("--every-seconds", type=float, metavar="T", help="bags: one place every T seconds")
    p.add_argument("--every-metres", type=float, metavar="D",
                   help="bags with an Odometry or NavSatFix topic: one place every D metres (places keep their pose)")
    p.add_argument("--pose-topic", help="bags: the Odometry or NavSatFix topic (default: the only one)")
    p.add_argument("--strict", action="store_true", help="images of different sizes are an error, not a warning")


def _traverse(source: str, args: argparse.Namespace, size: tuple[int, int], patch: int, desc: str):
    """Places of an image folder or a bag, preprocessed."""
    from vprsnn_ros.io.sources import load_traverse

    return load_traverse(source, size, patch, list_csv=args.list, exclude_csv=args.exclude,
                         every=args.every, every_seconds=args.every_seconds,
                         every_metres=args.every_metres, limit=args.limit, topic=args.topic,
                         pose_topic=args.pose_topic, desc=desc, strict=args.strict)


# --------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    from vprsnn_ros.model.ensemble import write_ensemble_manifest
    from vprsnn_ros.snn.network import NetworkConfig
    from vprsnn_ros.snn.profiles import get_profile

    get_profile(args.profile)  # a wrong name fails before anything is read
    if args.ensemble < 1:
        raise ConfigError("--ensemble must be >= 1")
    config = NetworkConfig(
        n_neurons=args.neurons, places_per_module=args.places_per_module, epochs=args.epochs,
        dt=args.dt, seed=args.seed, shuffle=args.shuffle, image_width=args.width,
        image_height=args.height, patch=args.patch).validate()
    try:
        checkpoints = [int(e) for e in (args.epoch_checkpoints or "").split(",") if e.strip()]
    except ValueError:
        raise ConfigError(f"--epoch-checkpoints must be comma-separated epoch counts, "
                          f"not {args.epoch_checkpoints!r}") from None
    if any(e < 1 or e > config.epochs for e in checkpoints):
        raise ConfigError(f"--epoch-checkpoints must lie in [1, --epochs {config.epochs}]")
    # The cluster is reached first: a wrong address fails at once, not after reading every image.
    with _cluster_runner(args) as runner:
        members = _read_and_train(args, config, checkpoints, runner)
    if args.ensemble > 1:
        write_ensemble_manifest(args.out, members)
    print(f"model written to {args.out}")
    return 0


def _read_and_train(args: argparse.Namespace, config, checkpoints: list[int], runner) -> list[str]:
    # Read and check every input before anything is written: bad input leaves no model behind.
    traverses = [_traverse(src, args, config.image_size, config.patch, f"reference {k + 1}")
                 for k, src in enumerate(args.reference)]
    for src, other in zip(args.reference[1:], traverses[1:]):
        if len(other) != len(traverses[0]):
            raise DataError(f"reference traverses must show the same places: {args.reference[0]} has "
                            f"{len(traverses[0])} places but {src} has {len(other)}")
    cal_query = None
    if args.calibration_query:
        if args.calibration_places <= 0:
            raise ConfigError("--calibration-query needs --calibration-places N > 0")
        cal = _traverse(args.calibration_query, args, config.image_size, config.patch, "calibration query")
        if len(cal) < args.calibration_places:
            raise DataError(f"calibration query {args.calibration_query} has {len(cal)} places, "
                            f"fewer than --calibration-places {args.calibration_places}")
        cal_query = cal.pixels[: args.calibration_places]
    if args.calibration_places >= len(traverses[0]):
        raise ConfigError(f"--calibration-places must be smaller than the {len(traverses[0])} places")
    from vprsnn_ros.snn.profiles import get_profile
    from vprsnn_ros.train.training import train_network

    profile = get_profile(args.profile)
    out = Path(args.out)
    members = []
    for k in range(args.ensemble):
        member_out = out if args.ensemble == 1 else out / f"seed_{args.seed + k}"
        started = time.perf_counter()
        net = train_network(config.with_(seed=args.seed + k), [t.pixels for t in traverses],
                      traverses[0].names, member_out, profile=profile,
                      calibration_places=args.calibration_places, calibration_query=cal_query,
                      epoch_checkpoints=checkpoints, workers=args.workers, resume=args.resume,
                      progress=_progress_bar(f"train seed {args.seed + k}"),
                      place_poses=traverses[0].poses, pose_frame=traverses[0].pose_frame,
                      thumbnails=traverses[0].thumbnails, runner=runner)
        members.append(member_out.name)
        print(f"trained {member_out} in {time.perf_counter() - started:.1f} s", flush=True)
        _print_threshold_choice(member_out, net.hyperactive_threshold, args.profile)
        _print_preselect_choice(member_out)
    return members


def _print_threshold_choice(model_dir: Path, threshold: int, profile: str) -> None:
    """Say which T the model will run with and why: a model must not run unmasked silently."""
    from vprsnn_ros.model.store import ModelStore

    choice = ModelStore.open(model_dir).meta.get("threshold_choice", {})
    print(f"profile {profile}: hyperactivity threshold T = {threshold} "
          f"({choice.get('method', '?')}: {choice.get('reason', '')})", flush=True)
    if choice.get("method") == "none":
        print("  give --calibration-places N --calibration-query DIR, or --profile tuned "
              "(T chosen on the reference itself), to mask hyperactive neurons", flush=True)


def _print_preselect_choice(model_dir: Path) -> None:
    """Say how many modules the SNN will run per query, and why."""
    from vprsnn_ros.model.store import ModelStore

    meta = ModelStore.open(model_dir).meta
    k = int(meta.get("preselect_k", 0))
    if "preselect" not in meta:
        print("  module pre-selection K = every module (no calibration query to choose K on)", flush=True)
    else:
        print(f"  module pre-selection K = {k or 'every module'} (the cheapest K whose calibration "
              f"R@1 is within 0.005 of every module's)", flush=True)


# --------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------

def cmd_evaluate(args: argparse.Namespace) -> int:
    from vprsnn_ros.model.ensemble import load_model

    if args.sequence_length < 1:
        raise ConfigError("--sequence-length must be >= 1")
    if args.threshold is not None and args.threshold < 0:
        raise ConfigError("--threshold must be >= 0 (0 = no masking)")
    if args.preselect is not None and args.preselect < 0:
        raise ConfigError("--preselect must be >= 0 (0 = every module)")
    if args.tolerance < 0:
        raise ConfigError("--tolerance must be >= 0")
    report_dir = Path(args.report)
    if report_dir.exists() and not report_dir.is_dir():
        raise ConfigError(f"--report {report_dir} exists and is not a directory")
    members = load_model(args.model)
    with _cluster_runner(args) as runner:
        return _evaluate_on(args, members, runner)


def _evaluate_on(args: argparse.Namespace, members, runner) -> int:
    from vprsnn_ros.eval.evaluation import evaluate, format_report, write_report
    from vprsnn_ros.io.dataset import check_correspondence, read_ground_truth_csv

    cfg = members[0].config
    queries = _traverse(args.query, args, cfg.image_size, cfg.patch, "query images")
    gt = None
    if args.ground_truth:
        if not members[0].place_names:
            raise DataError(f"model {args.model} stores no place names; --ground-truth needs them")
        gt = read_ground_truth_csv(args.ground_truth, queries.names, members[0].place_names)
    else:
        check_correspondence(members[0].n_places, len(queries), args.query)
    pixels = queries.pixels
    bar = _progress_bar("evaluate", unit="query")
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


# --------------------------------------------------------------------------
# extend and info
# --------------------------------------------------------------------------

# extend options that must match the model: option -> config key
_EXTEND_CHECKS = {"width": "image_width", "height": "image_height", "patch": "patch",
                  "neurons": "n_neurons", "places_per_module": "places_per_module", "dt": "dt",
                  "epochs": "epochs", "profile": "profile"}


def cmd_extend(args: argparse.Namespace) -> int:
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
    with _cluster_runner(args) as runner:
        traverses = [_traverse(src, args, config.image_size, config.patch, f"new reference {k + 1}")
                     for k, src in enumerate(args.reference)]
        cal_query = None
        if args.calibration_query:
            cal_query = _traverse(args.calibration_query, args, config.image_size, config.patch,
                                  "calibration query").pixels
        out = extend_model(args.model, [t.pixels for t in traverses], traverses[0].names,
                           poses=traverses[0].poses, pose_frame=traverses[0].pose_frame,
                           out=args.out, calibration_query=cal_query, given=given, runner=runner,
                           workers=args.workers, progress=_progress_bar("extend"),
                           thumbnails=traverses[0].thumbnails)
    print(f"added {len(traverses[0])} places to {out} in {time.perf_counter() - started:.1f} s")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from vprsnn_ros.model.info import describe_model

    print("\n".join(describe_model(args.model)))
    return 0


# --------------------------------------------------------------------------
# replay-eval
# --------------------------------------------------------------------------

def cmd_replay_eval(args: argparse.Namespace) -> int:
    from vprsnn_ros.eval.replay import replay_evaluate

    if args.rate_factor <= 0:
        raise ConfigError("--rate-factor must be > 0")
    if args.sequence_length < 1:
        raise ConfigError("--sequence-length must be >= 1")
    report = replay_evaluate(args.model, args.bag, args.report, topic=args.topic, mode=args.mode,
                             rate_factor=args.rate_factor, sequence_length=args.sequence_length,
                             sequence_matcher=args.sequence_matcher,
                             preselect_k=-1 if args.preselect is None else args.preselect,
                             every=args.every, limit=args.limit, timeout=args.timeout)
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
    print(f"report written to {args.report}")
    return 0


# --------------------------------------------------------------------------
# bag
# --------------------------------------------------------------------------

def cmd_bag_from_folder(args: argparse.Namespace) -> int:
    from vprsnn_ros.io.bags import write_bag_from_folder

    out = write_bag_from_folder(args.folder, args.out, topic=args.topic, rate_hz=args.rate,
                                storage=args.storage, compressed=args.compressed, frame_id=args.frame_id)
    print(f"bag written to {out}")
    return 0


def cmd_bag_info(args: argparse.Namespace) -> int:
    from vprsnn_ros.io.bags import bag_info

    print(f"{'topic':40s} {'type':34s} {'count':>8s} {'rate Hz':>9s}")
    for t in bag_info(args.bag):
        kind = " (pose)" if t.is_pose else ""
        print(f"{t.topic:40s} {t.msgtype:34s} {t.count:8d} {t.rate_hz:9.3f}{kind}")
    return 0


# --------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    """Synthetic route -> bags -> train from the reference bag -> replay the query bag through the node."""
    import importlib.util

    from vprsnn_ros.io.bags import write_bag_from_folder
    from vprsnn_ros.io.synthetic import write_route

    work = Path(args.work)
    ref_dir, query_dir = write_route(work / "route", args.places, seed=args.seed)
    bags = {}
    for name, folder in (("reference", ref_dir), ("query", query_dir)):
        bags[name] = work / f"{name}_bag"
        if not bags[name].exists():
            write_bag_from_folder(folder, bags[name], rate_hz=5.0)
    print(f"synthetic route with {args.places} places written to {work} (image folders and mcap bags)")
    cmd_train(build_parser().parse_args([
        "train", "--reference", str(bags["reference"]), "--out", str(args.model),
        "--places-per-module", str(args.places_per_module), "--neurons", str(args.neurons),
        "--epochs", str(args.epochs), "--seed", str(args.seed), "--workers", str(args.workers)]
        + (["--resume"] if args.resume else [])))
    if importlib.util.find_spec("rclpy") is None:
        print("rclpy is not installed (pip install -e '.[ros]'): evaluating offline instead of through the node")
        return cmd_evaluate(build_parser().parse_args([
            "evaluate", "--model", str(args.model), "--query", str(bags["query"]),
            "--report", str(work / "report")]))
    print("replaying the query bag through the localizer node (lockstep)")
    return cmd_replay_eval(build_parser().parse_args([
        "replay-eval", "--model", str(args.model), "--bag", str(bags["query"]),
        "--report", str(work / "report"), "--mode", "lockstep"]))


# --------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    from vprsnn_ros.snn.profiles import DEFAULT_PROFILE, PROFILES
    from vprsnn_ros.snn.readout import READOUTS
    from vprsnn_ros.snn.sequence import SEQUENCE_MATCHERS

    parser = argparse.ArgumentParser(prog="vprsnn", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"vprsnn_ros {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a modular SNN (or an ensemble) from reference image folders")
    t.add_argument("--reference", nargs="+", required=True, metavar="DIR_OR_BAG",
                   help="reference traverses: image folders or bags, place i = i-th place of each")
    t.add_argument("--out", required=True, metavar="MODEL_DIR")
    t.add_argument("--places-per-module", type=int, default=25)
    t.add_argument("--neurons", type=int, default=400, help="excitatory neurons per module")
    t.add_argument("--epochs", type=int, default=60)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--ensemble", type=int, default=1, metavar="K", help="train K seeds (seed, seed+1, ...)")
    t.add_argument("--shuffle", action="store_true", help="seeded random regions instead of contiguous ones")
    t.add_argument("--dt", type=float, default=0.5, help="simulation step in ms")
    t.add_argument("--width", type=int, default=28)
    t.add_argument("--height", type=int, default=28)
    t.add_argument("--patch", type=int, default=7)
    t.add_argument("--calibration-places", type=int, default=0, metavar="N",
                   help="the first N places form the calibration split")
    t.add_argument("--calibration-query", metavar="DIR",
                   help="query traverse whose first N places calibrate T (and the epochs)")
    t.add_argument("--epoch-checkpoints", metavar="E1,E2,...",
                   help="epoch counts to compare during calibration (the final --epochs is always one)")
    t.add_argument("--workers", type=int, default=2, help="modules trained in parallel")
    t.add_argument("--resume", action="store_true", help="continue an interrupted training in --out")
    t.add_argument("--profile", choices=tuple(PROFILES), default=DEFAULT_PROFILE,
                   help="faithful: the published method; tuned: z-score readout and T chosen without "
                        "queries (README: Accuracy profiles and baseline)")
    _add_place_options(t)
    _add_cluster_options(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="Recall@N, PR-AUC and plots of a model on a query traverse")
    e.add_argument("--model", required=True, metavar="MODEL_DIR")
    e.add_argument("--query", required=True, metavar="DIR_OR_BAG")
    e.add_argument("--report", required=True, metavar="OUT_DIR")
    e.add_argument("--tolerance", type=int, default=0, help="also report recall within +-N places")
    e.add_argument("--sequence-length", type=int, default=1)
    e.add_argument("--ground-truth", metavar="CSV", help="CSV query,reference of file names")
    e.add_argument("--split", choices=("auto", "test", "all"), default="auto")
    e.add_argument("--threshold", type=int, help="hyperactivity threshold T (default: the calibrated one)")
    e.add_argument("--preselect", type=int, metavar="K",
                   help="run the SNN on each query's K best modules by template (default: the "
                        "calibrated K; 0 = every module)")
    e.add_argument("--readout", choices=READOUTS,
                   help="place readout (default: the model's profile)")
    e.add_argument("--sequence-matcher", choices=SEQUENCE_MATCHERS, default="diagonal",
                   help="diagonal sum, or SeqSLAM contrast normalisation + velocity search")
    _add_place_options(e)
    _add_cluster_options(e)
    e.set_defaults(func=cmd_evaluate)

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
    _add_place_options(x)
    _add_cluster_options(x)
    x.set_defaults(func=cmd_extend)

    i = sub.add_parser("info", help="places, modules, profile, T, training time and state of a model")
    i.add_argument("model", metavar="MODEL_DIR")
    i.set_defaults(func=cmd_info)

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
    r.add_argument("--every", type=int, default=1)
    r.add_argument("--limit", type=int)
    r.add_argument("--timeout", type=float, default=3600.0, help="seconds")
    r.set_defaults(func=cmd_replay_eval)

    b = sub.add_parser("bag", help="write a bag from an image folder, or list a bag's image topics")
    bsub = b.add_subparsers(dest="bag_command", required=True)
    bf = bsub.add_parser("from-folder", help="write the images of a folder as a bag")
    bf.add_argument("folder")
    bf.add_argument("--out", required=True, metavar="BAG")
    bf.add_argument("--topic", default="/camera/image_raw")
    bf.add_argument("--rate", type=float, default=10.0, metavar="HZ", help="frames per second of the stamps")
    bf.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    bf.add_argument("--compressed", action="store_true", help="sensor_msgs/CompressedImage (PNG)")
    bf.add_argument("--frame-id", default="camera")
    bf.set_defaults(func=cmd_bag_from_folder)
    bi = bsub.add_parser("info", help="image (and pose) topics of a bag with counts and rates")
    bi.add_argument("bag")
    bi.set_defaults(func=cmd_bag_info)

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
    d.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Warnings about the input (e.g. mixed image sizes) as one plain line each.
    warnings.formatwarning = lambda message, *_args, **_kw: f"vprsnn: warning: {message}\n"
    try:
        return args.func(args)
    except VprsnnError as exc:
        print(f"vprsnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vprsnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
