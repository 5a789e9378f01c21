"""Growing a map: append new places to a trained model without retraining it.

``vprsnn extend --model M --reference NEW``: the new places get ids after the
existing ones and new modules of their own; the existing modules are not
touched (their files are byte-identical). Hyperactivity is then what training
on all places at once would record: the new modules are run over every
reference image (the old ones are stored in the model, part
``reference_pixels``: the preprocessed uint8 images of the first reference
traverse, checksummed like every part), the existing modules over the new
images only, added to their stored counts. With calibration query images, T
is chosen again on the calibration split with the updated activity (the epoch
count stays the one the model was trained with: the other checkpoints are not
kept).

Regions of the new places: consecutive runs of ``places_per_module`` new
places, or with ``shuffle`` a partition seeded by (seed, number of old
places). Module k is seeded by (seed, k) wherever it runs, so the extended
model is array for array the model :func:`~vprsnn_ros.train.training.train_network`
trains on all places at once when given the extended model's regions; without
``shuffle``, and when the old test split is a whole number of modules, those
are the regions it makes by itself.

Atomicity: everything new is first written to files the model's manifest does
not list (:meth:`ModelStore.stage_part`), recorded in ``extend.yaml`` so an
interrupted run resumes, then one manifest write per network switches to the
extended model. Until then the model is exactly as it was. For an ensemble,
every member is staged before the first is switched; a run interrupted
between two switches is finished by running the same command again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from vprsnn_ros.atomic import atomic_write_text
from vprsnn_ros.errors import ConfigError, DataError, ModelError
from vprsnn_ros.model.network_io import THUMBNAILS_PART, load_network, load_thumbnails
from vprsnn_ros.model.store import MANIFEST, ModelStore
from vprsnn_ros.parallel.runner import LocalRunner, Runner
from vprsnn_ros.snn.module_training import ModuleResult
from vprsnn_ros.snn.network import DEFAULT_T_SWEEP, NetworkConfig
from vprsnn_ros.snn.profiles import Profile
from vprsnn_ros.train.calibration import best_row, choose_threshold_at_k
from vprsnn_ros.train.training import (
    REFERENCE_PIXELS,
    ProgressFn,
    Tally,
    _quiet,
    calibrate,
    record_activity,
    record_reference,
    train_modules,
)

STAGE_FILE = "extend.yaml"


def extension_regions(n_old: int, n_new: int, per_module: int, shuffle: bool,
                      seed: int) -> list[np.ndarray]:
    """Regions of places n_old .. n_old + n_new - 1 (see the module docstring)."""
    ids = np.arange(n_old, n_old + n_new, dtype=np.int64)
    if shuffle:
        ids = np.random.default_rng([seed, 3, n_old]).permutation(ids)
        return [np.sort(ids[k:k + per_module]) for k in range(0, n_new, per_module)]
    return [ids[k:k + per_module] for k in range(0, n_new, per_module)]


# --------------------------------------------------------------------------
# Checks: everything is verified before anything is written
# --------------------------------------------------------------------------

def _profile(meta: dict) -> str:
    """Name of the model's profile (``model.yaml`` key ``profile``; none: faithful)."""
    return Profile.from_dict(meta.get("profile")).name


def check_extension(store: ModelStore, traverses: Sequence[np.ndarray], names: Sequence[str],
                    poses: np.ndarray | None, pose_frame: str | None,
                    given: dict[str, Any], calibration_query: np.ndarray | None,
                    base_places: int | None = None) -> None:
    """Raise ConfigError/DataError/ModelError if ``store`` cannot be extended with these places.

    ``given``: options the caller set ({config key: value}); each must equal the model's.
    ``base_places``: how many places the model had before (a resumed, partly switched run).
    """
    meta = store.meta
    where = f"cannot extend model {store.path}"
    if not store.complete:
        raise ModelError(f"{where}: it is incomplete (training was interrupted); finish it with "
                         f"vprsnn train --resume first")
    if not store.has_part(REFERENCE_PIXELS):
        raise ModelError(f"{where}: it does not store its reference images (part {REFERENCE_PIXELS!r}, "
                         f"written by vprsnn_ros >= 0.1.0 with extension support); retrain it")
    config = meta["config"]
    for key, value in given.items():
        stored = _profile(meta) if key == "profile" else config.get(key)
        if value is not None and value != stored:
            raise ConfigError(f"{where}: it was trained with {key} {stored!r}, not {value!r}; "
                              f"new places must use the model's image size, profile and network")
    n_trav = int(meta.get("training", {}).get("traverses", 1))
    if len(traverses) != n_trav:
        raise DataError(f"{where}: it was trained on {n_trav} reference traverse(s); give as many "
                        f"--reference sources of the new places, not {len(traverses)}")
    n_in = int(config["image_width"]) * int(config["image_height"])
    for k, trav in enumerate(traverses):
        if trav.shape != (len(names), n_in):
            raise DataError(f"{where}: new reference {k + 1} has {len(trav)} places, the first has "
                            f"{len(names)}; every traverse must show the same new places")
    if not names:
        raise DataError(f"{where}: the new reference holds no places")
    old_names = list(meta["places"].get("names") or [])
    if base_places is not None:
        old_names = old_names[:base_places]
    seen: set[str] = set()
    repeated = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if repeated:
        raise DataError(f"{where}: the new reference repeats place name(s) {_few(repeated)}")
    clash = sorted(set(old_names) & set(names))
    if clash:
        raise DataError(f"{where}: the new reference repeats existing place name(s) {_few(clash)}; "
                        f"give only new places")
    has_poses = "poses" in meta["places"]
    if has_poses and poses is None:
        raise DataError(f"{where}: the model has place poses but the new places have none; give theirs "
                        f"(--poses CSV for an image folder, a pose topic in a bag)")
    if poses is not None and not has_poses:
        raise DataError(f"{where}: the new places have poses (--poses or a bag's pose topic) but the model, "
                        f"trained without poses, has none; extend it without them, or retrain with poses")
    if poses is not None and np.shape(poses) != (len(names), 7):
        raise DataError(f"{where}: the new places' poses have shape {np.shape(poses)}, not "
                        f"({len(names)}, 7)")
    if has_poses and (pose_frame or "map") != meta["places"].get("pose_frame"):
        raise DataError(f"{where}: new poses are in frame {pose_frame!r}, the model's in "
                        f"{meta['places'].get('pose_frame')!r}")
    if calibration_query is not None:
        cal = meta.get("calibration")
        if not cal:
            raise ConfigError(f"{where} with --calibration-query: it has no calibration split "
                              f"(trained without --calibration-query)")
        if len(calibration_query) < int(cal["places"]):
            raise DataError(f"{where}: the calibration query has {len(calibration_query)} places, "
                            f"the calibration split {cal['places']}")


def _few(items: Sequence[str]) -> str:
    shown = ", ".join(repr(x) for x in list(items)[:3])
    return shown + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def _fingerprint(traverses: Sequence[np.ndarray], names: Sequence[str],
                 calibration_query: np.ndarray | None) -> str:
    h = hashlib.sha256()
    for trav in traverses:
        h.update(np.ascontiguousarray(trav, np.uint8).tobytes())
    h.update("\0".join(names).encode())
    if calibration_query is not None:
        h.update(np.ascontiguousarray(calibration_query, np.uint8).tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------
# One network: stage, then switch
# --------------------------------------------------------------------------

class _Stage:
    """``extend.yaml`` of one network: what has been staged for which extension."""

    def __init__(self, store: ModelStore, base_places: int, fingerprint: str) -> None:
        self.store, self.path = store, store.path / STAGE_FILE
        self.data: dict = {"base_places": base_places, "fingerprint": fingerprint, "parts": {}}
        try:
            old = yaml.safe_load(self.path.read_text())
        except (OSError, yaml.YAMLError):
            old = None
        if isinstance(old, dict) and old.get("base_places") == base_places \
                and old.get("fingerprint") == fingerprint and isinstance(old.get("parts"), dict):
            self.data["parts"] = {n: e for n, e in old["parts"].items() if store.staged_ok(n, e)}

    @staticmethod
    def read_base(store: ModelStore) -> int | None:
        try:
            data = yaml.safe_load((store.path / STAGE_FILE).read_text())
            return int(data["base_places"])
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
            return None

    def has(self, part: str) -> bool:
        return part in self.data["parts"]

    def put(self, part: str, arrays: dict, tag: str) -> None:
        self.data["parts"][part] = self.store.stage_part(part, arrays, tag)
        atomic_write_text(self.path, yaml.safe_dump(self.data, sort_keys=False))

    def arrays(self, part: str) -> dict:
        return self.store.read_staged(part, self.data["parts"][part])

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def _stage_network(store: ModelStore, traverses: Sequence[np.ndarray], names: Sequence[str],
                   poses: np.ndarray | None, calibration_query: np.ndarray | None,
                   runner: Runner, progress: ProgressFn, t_sweep: Sequence[int],
                   thumbnails: np.ndarray | None = None) -> tuple[_Stage, dict]:
    """Train and record everything new of one network into unlisted files; returns the
    stage and the manifest fields the switch sets."""
    meta = store.meta
    net = load_network(store)
    config: NetworkConfig = net.config
    n_old, n_new = net.n_places, len(names)
    n_total = n_old + n_new
    tag = f"x{n_total}"
    stage = _Stage(store, n_old, _fingerprint(traverses, names, calibration_query))
    new_regions = extension_regions(n_old, n_new, config.places_per_module, config.shuffle, config.seed)
    first = net.n_modules
    n_modules = first + len(new_regions)
    epochs = int(meta.get("training", {}).get("epochs", config.epochs))
    started = time.perf_counter()

    # 1. New modules, each staged as soon as it is trained (resumable).
    jobs = {first + k: (r, [t[r - n_old] for t in traverses]) for k, r in enumerate(new_regions)}
    per = epochs * len(traverses)
    todo = {m: job for m, job in jobs.items() if not stage.has(f"module_{m:04d}")}
    tally = Tally(sum(len(r) for r, _ in jobs.values()) * per, progress,
                  done=sum(len(r) for m, (r, _) in jobs.items() if m not in todo) * per)

    def save(module: int, results: list[ModuleResult]) -> None:
        r = results[-1]
        stage.put(f"module_{module:04d}", {
            "weights": r.weights, "theta": r.theta, "assignments": r.assignments.astype(np.int32),
            "epochs": np.array(r.epochs, np.int64)}, tag)

    train_modules(runner, config, net.delays, todo, epochs, (), save, tally, n_modules)
    train_seconds = time.perf_counter() - started

    # 2. Hyperactivity as if recorded over all places at once.
    record_start = time.perf_counter()
    old_pixels = store.read_part(REFERENCE_PIXELS, {"pixels": ((n_old, config.n_inputs), "uint8")})["pixels"]
    all_pixels = np.concatenate([old_pixels, np.asarray(traverses[0], np.uint8)])
    new_parts = [stage.arrays(f"module_{m:04d}") for m in sorted(jobs)]
    w_new = np.stack([p["weights"] for p in new_parts])
    th_new = np.stack([p["theta"] for p in new_parts])
    a_new = np.stack([p["assignments"] for p in new_parts])
    active = np.concatenate([
        net.active_images + record_activity(runner, config, net.delays, net.weights, net.theta,
                                            all_pixels[n_old:], first_place=n_old, progress=progress),
        record_activity(runner, config, net.delays, w_new, th_new, all_pixels, progress=progress)])
    record_seconds = time.perf_counter() - record_start

    regions = list(net.regions) + new_regions
    full = replace(net, n_places=n_total, regions=regions, weights=np.concatenate([net.weights, w_new]),
                   theta=np.concatenate([net.theta, th_new]),
                   assignments=np.concatenate([net.assignments, a_new]), active_images=active)
    stats = None
    if store.has_part("reference_stats"):
        # The zscore readout's sums over the whole reference, as training on all places gives;
        # calibration below scores with them (the old ones cover the old places only).
        # Recorded on a copy of the activity: `active` is what step 2 recorded, and is staged.
        stats = record_reference(replace(full, active_images=active.copy()),
                                 full.config.input_rates(all_pixels), progress)
        full.reference_stats = stats

    # 3. Calibration again, on the calibration modules with their new activity.
    fields: dict[str, Any] = {}
    threshold = int(meta.get("hyperactive_threshold", 0))
    if calibration_query is not None:
        cal = dict(meta["calibration"])
        mods = full.module_split("calibration")
        cal_net = replace(full, regions=[regions[m] for m in mods], weights=full.weights[mods],
                          theta=full.theta[mods], assignments=full.assignments[mods],
                          active_images=active[mods],
                          reference_stats=None if stats is None else stats.leading_modules(len(mods)))
        rows = [{"epochs": epochs, **row}
                for row in calibrate(runner, cal_net, calibration_query[: int(cal["places"])], t_sweep)]
        best = best_row(rows)
        threshold = int(best["threshold"])
        cal.update(threshold=threshold, recall_at_1=best["recall_at_1"], table=rows,
                   recalibrated_places=n_total)
        fields["calibration"] = cal
        profile = Profile.from_dict(meta.get("profile"))
        if profile.preselect and profile.threshold_at_k and (meta.get("preselect") or {}).get(
                "method") == "calibration_query":
            # As training chose them: T at the K pre-selection runs, both again with the new activity.
            threshold, k, k_table, choice = choose_threshold_at_k(
                cal_net, calibration_query[: int(cal["places"])], t_sweep)
            fields.update(preselect={"k": k, "method": "calibration_query", "table": k_table},
                          preselect_k=k, threshold_choice=choice)

    # 4. The parts that change, staged too.
    stored_net = store.read_part("network")
    stage.put("network", {
        "delays": stored_net["delays"],
        "region_places": np.concatenate([stored_net["region_places"], *new_regions]).astype(np.int64),
        "region_lengths": np.concatenate([stored_net["region_lengths"],
                                          [len(r) for r in new_regions]]).astype(np.int64),
        "n_calibration_modules": stored_net["n_calibration_modules"]}, tag)
    stage.put(REFERENCE_PIXELS, {"pixels": all_pixels}, tag)
    stage.put("hyperactivity", {"active_images": active.astype(np.int32)}, tag)
    if stats is not None:
        stage.put("reference_stats", stats.arrays(), tag)
    if thumbnails is not None and store.has_part(THUMBNAILS_PART):
        old_thumbs = load_thumbnails(store)
        if old_thumbs.shape[1:] == thumbnails.shape[1:]:
            stage.put(THUMBNAILS_PART, {"images": np.concatenate([old_thumbs, thumbnails])}, tag)

    places = dict(meta["places"])
    places["count"] = n_total
    places["names"] = list(places.get("names") or []) + list(names)
    if poses is not None:
        places["poses"] = list(places["poses"]) + np.asarray(poses, float).tolist()
    training = dict(meta.get("training", {}))
    training["extensions"] = list(training.get("extensions", [])) + [{
        "places": n_new, "modules": len(new_regions), "seconds": round(train_seconds, 2),
        "record_seconds": round(record_seconds, 2), **runner.describe()}]
    fields.update(places=places, hyperactive_threshold=threshold, training=training)
    return stage, fields


def _switch(stage: _Stage, fields: dict) -> None:
    stage.store.commit(stage.data["parts"], **fields)


# --------------------------------------------------------------------------
# A model directory (one network or an ensemble)
# --------------------------------------------------------------------------

def extend_model(model: str | Path, traverses: Sequence[np.ndarray], names: Sequence[str], *,
                 poses: np.ndarray | None = None, pose_frame: str | None = None,
                 out: str | Path | None = None, calibration_query: np.ndarray | None = None,
                 given: dict[str, Any] | None = None, runner: Runner | None = None,
                 workers: int = 2, progress: ProgressFn = _quiet,
                 t_sweep: Sequence[int] = DEFAULT_T_SWEEP, thumbnails: np.ndarray | None = None) -> Path:
    """Append places ``names`` (preprocessed ``traverses``, one per reference traverse of the
    model) to ``model`` -- in place, or into a new directory ``out`` leaving ``model`` as it
    is. Returns the extended model's directory."""
    from vprsnn_ros.model.ensemble import member_dirs

    model = Path(model)
    given = given or {}
    sources = [ModelStore.open(d) for d in member_dirs(model)]
    # A member switched by an interrupted run already holds the new places.
    for store in sources:
        if not _already_switched(store, names):
            check_extension(store, traverses, names, poses, pose_frame, given, calibration_query)
    target = model
    if out is not None and Path(out).resolve() != model.resolve():
        target = Path(out)
        model = _prepare_copy(model, target)
    stores = [ModelStore.open(d) for d in member_dirs(model)]
    done = [_already_switched(s, names) for s in stores]
    counts = {int(s.meta["places"]["count"]) - (len(names) if d else 0) for s, d in zip(stores, done)}
    if len(counts) != 1:
        raise ModelError(f"cannot extend {target}: its members hold different numbers of places")
    own = runner is None
    runner = runner or LocalRunner(workers)
    try:
        staged = [None if d else _stage_network(s, traverses, names, poses, calibration_query, runner,
                                                 progress, t_sweep, thumbnails)
                  for s, d in zip(stores, done)]
    finally:
        if own:
            runner.close()
    for item in staged:  # every member is staged before the first switch
        if item is not None:
            _switch(*item)
    for store in stores:
        (store.path / STAGE_FILE).unlink(missing_ok=True)
    if model != target:
        (model / _COPIED).unlink()
        if target.exists():
            target.rmdir()  # an empty directory, checked by _prepare_copy
        os.replace(model, target)
    return target


def _already_switched(store: ModelStore, names: Sequence[str]) -> bool:
    base = _Stage.read_base(store)
    have = list(store.meta["places"].get("names") or [])
    return base is not None and have == have[:base] + list(names) and len(have) == base + len(names)


def _staging_dir(target: Path) -> Path:
    return target.parent / f".{target.name}.extending"


_COPIED = ".copied"


def _prepare_copy(model: Path, target: Path) -> Path:
    """Copy ``model`` into the staging directory of ``target`` (kept across interrupted runs)."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ModelError(f"cannot extend into {target}: it exists and is not empty; choose a new --out")
    staging = _staging_dir(target)
    if (staging / _COPIED).exists():
        return staging
    if staging.exists():
        shutil.rmtree(staging)
    if not (model / MANIFEST).exists() and not (model / "ensemble.yaml").exists():
        raise ModelError(f"no model at {model} ({MANIFEST} or ensemble.yaml not found)")
    shutil.copytree(model, staging, ignore=shutil.ignore_patterns(STAGE_FILE, ".*"))
    (staging / _COPIED).write_text("")
    return staging
