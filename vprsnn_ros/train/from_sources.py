"""The one training entry: options in, a trained model (or ensemble) directory out.

`vprsnn train` and the trainer node both call :func:`train_from_sources`; they
differ only in how they show progress (a tqdm bar, a ``~/progress`` topic) and
where their lines go (stdout, the node's log). Every input is read and checked
before anything is written, so bad input leaves no model behind.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vprsnn_ros.errors import ConfigError, DataError
from vprsnn_ros.io.sources import Traverse, load_traverse
from vprsnn_ros.model.ensemble import write_ensemble_manifest
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.parallel.runner import open_runner
from vprsnn_ros.snn.profiles import get_profile
from vprsnn_ros.train.options import TrainOptions
from vprsnn_ros.train.training import ProgressFn, train_network


@dataclass(frozen=True)
class TrainedMember:
    """One trained network of a run, with the choices training made for it."""

    path: Path
    seconds: float
    hyperactive_threshold: int
    threshold_choice: dict
    preselect_k: int
    preselect_chosen: bool   # False: no calibration query, so K was not chosen


def _traverse(source: str, opts: TrainOptions, size: tuple[int, int], patch: int, desc: str,
              with_poses: bool = False) -> Traverse:
    """Places of ``source`` with the place options; ``with_poses``: the first reference, which
    ``--poses`` describes (the model keeps its places' poses)."""
    poses = {"poses_csv": opts.poses, "pose_frame": opts.pose_frame} if with_poses else {}
    return load_traverse(source, size, patch, list_csv=opts.list, exclude_csv=opts.exclude, every=opts.every,
                         every_seconds=opts.every_seconds, every_metres=opts.every_metres, limit=opts.limit,
                         topic=opts.topic, pose_topic=opts.pose_topic, desc=desc, strict=opts.strict, **poses)


def train_from_sources(opts: TrainOptions, *, progress_for: Callable[[int], ProgressFn] | None = None,
                       say: Callable[[str], None] = print,
                       ready: Callable[[], None] | None = None) -> list[TrainedMember]:
    """Read the reference (and calibration) traverses, train every seed, write the model.

    ``progress_for(seed)`` gives the progress callback of one member's
    training; ``say`` receives the lines worth showing a person; ``ready`` is
    called once every input is read and checked, just before training starts.
    With ``ensemble`` > 1 the members go to ``out/seed_<s>`` and ``out/ensemble.yaml``
    lists them.
    """
    if not opts.reference or not opts.out:
        raise ConfigError("the reference traverses and the output directory are required")
    profile = get_profile(opts.profile)  # a wrong name fails before anything is read
    if opts.ensemble < 1:
        raise ConfigError("--ensemble must be >= 1")
    if opts.workers < 1:
        raise ConfigError("--workers must be >= 1")
    config = opts.network_config()
    checkpoints = opts.checkpoints()
    if opts.cluster and opts.cluster_timeout <= 0:
        raise ConfigError("--cluster-timeout must be > 0")
    # The cluster is reached first: a wrong address fails at once, not after reading every image.
    runner = open_runner(opts.cluster, opts.workers, opts.cluster_timeout) if opts.cluster else nullcontext()
    with runner as dask_runner:
        traverses, cal_query = _read_inputs(opts, config)
        where = f" on Dask cluster {opts.cluster}" if opts.cluster else ""
        say(f"training {len(traverses[0])} places from {', '.join(map(str, opts.reference))} "
            f"into {opts.out}{where}")
        if ready is not None:
            ready()
        out = Path(opts.out)
        members = []
        for k in range(opts.ensemble):
            seed = opts.seed + k
            member_out = out if opts.ensemble == 1 else out / f"seed_{seed}"
            started = time.perf_counter()
            net = train_network(config.with_(seed=seed), [t.pixels for t in traverses], traverses[0].names,
                                member_out, profile=profile, calibration_places=opts.calibration_places,
                                calibration_query=cal_query, epoch_checkpoints=checkpoints,
                                workers=opts.workers, resume=opts.resume,
                                progress=progress_for(seed) if progress_for else _quiet,
                                place_poses=traverses[0].poses, pose_frame=traverses[0].pose_frame,
                                thumbnails=traverses[0].thumbnails, runner=dask_runner)
            member = _describe(member_out, time.perf_counter() - started, net.hyperactive_threshold)
            members.append(member)
            say(f"trained {member_out} in {member.seconds:.1f} s")
            for line in choice_lines(member, opts.profile):
                say(line)
    if opts.ensemble > 1:
        write_ensemble_manifest(out, [m.path.name for m in members])
    return members


def _quiet(done: int, total: int, message: str) -> None:
    pass


def _read_inputs(opts: TrainOptions, config):
    """Every input, read and checked: the reference traverses and the calibration query's pixels."""
    traverses = [_traverse(src, opts, config.image_size, config.patch, f"reference {k + 1}", with_poses=k == 0)
                 for k, src in enumerate(opts.reference)]
    for src, other in zip(opts.reference[1:], traverses[1:]):
        if len(other) != len(traverses[0]):
            raise DataError(f"reference traverses must show the same places: {opts.reference[0]} has "
                            f"{len(traverses[0])} places but {src} has {len(other)}")
    cal_query = None
    if opts.calibration_query:
        if opts.calibration_places <= 0:
            raise ConfigError("--calibration-query needs --calibration-places N > 0")
        cal = _traverse(opts.calibration_query, opts, config.image_size, config.patch, "calibration query")
        if len(cal) < opts.calibration_places:
            raise DataError(f"calibration query {opts.calibration_query} has {len(cal)} places, "
                            f"fewer than --calibration-places {opts.calibration_places}")
        cal_query = cal.pixels[: opts.calibration_places]
    if opts.calibration_places >= len(traverses[0]):
        raise ConfigError(f"--calibration-places must be smaller than the {len(traverses[0])} places")
    return traverses, cal_query


def _describe(path: Path, seconds: float, threshold: int) -> TrainedMember:
    meta = ModelStore.open(path).meta
    return TrainedMember(path=path, seconds=seconds, hyperactive_threshold=threshold,
                         threshold_choice=dict(meta.get("threshold_choice", {})),
                         preselect_k=int(meta.get("preselect_k", 0)), preselect_chosen="preselect" in meta)


def choice_lines(member: TrainedMember, profile: str) -> list[str]:
    """Which T and K the model will run with, and why: a model must not run unmasked silently."""
    choice = member.threshold_choice
    lines = [f"profile {profile}: hyperactivity threshold T = {member.hyperactive_threshold} "
             f"({choice.get('method', '?')}: {choice.get('reason', '')})"]
    if choice.get("method") == "none":
        lines.append("  give --calibration-places N --calibration-query DIR, or --profile tuned "
                     "(T chosen on the reference itself), to mask hyperactive neurons")
    if not member.preselect_chosen:
        lines.append("  module pre-selection K = every module (no calibration query to choose K on)")
    else:
        lines.append(f"  module pre-selection K = {member.preselect_k or 'every module'} (the cheapest K whose "
                     f"calibration R@1 is within 0.005 of every module's)")
    return lines
