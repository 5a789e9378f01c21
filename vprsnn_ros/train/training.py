"""Training a modular network: STDP per module, assignment, hyperactivity, calibration.

Spec sections 3-6. :func:`train_network` is the one entry point used by the CLI
and the trainer node. It writes every module to the model directory as soon as
it is trained, so that an interrupted run resumes where it stopped. The work
itself is done by the pure tasks of :mod:`vprsnn_ros.parallel.tasks`, in threads of this
process or on a Dask cluster (a :mod:`runner <vprsnn_ros.parallel.runner>`); the model
is the same either way.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from vprsnn_ros.errors import ConfigError, DataError, ModelError
from vprsnn_ros.model.network_io import (
    load_network,
    network_meta,
    save_module,
    save_network_part,
    save_reference_parts,
    save_thumbnails,
)
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.parallel.runner import LocalRunner, Runner
from vprsnn_ros.parallel.tasks import REFERENCE_STREAM, activity_task, spike_count_task, train_module_task
from vprsnn_ros.snn.kernels.lanes import GROUP as LANES

# Re-exported: callers (tests, benches) import these from here.
from vprsnn_ros.snn.module_training import ModuleResult, _fresh_state, train_module  # noqa: F401
from vprsnn_ros.snn.network import DEFAULT_T_SWEEP, ModularSNN, NetworkConfig, make_delays, make_regions
from vprsnn_ros.snn.preselect import calibrate_k
from vprsnn_ros.snn.profiles import FAITHFUL, Profile
from vprsnn_ros.snn.readout import ReferenceStats
from vprsnn_ros.train.calibration import (  # noqa: F401 - choose_threshold_without_queries: API
    best_row,
    calibration_rows,
    choose_k_without_queries,
    choose_threshold_at_k,
    choose_threshold_without_queries,
    threshold_choice,
)

# progress(done, total, message): done/total count training presentations.
ProgressFn = Callable[[int, int, str], None]

REFERENCE_PIXELS = "reference_pixels"


def _quiet(done: int, total: int, message: str) -> None:
    pass


class _Cancelled(Exception):
    """Raised inside an in-process task to stop it at the next epoch."""


# --------------------------------------------------------------------------
# Fan-out helpers (shared with extension)
# --------------------------------------------------------------------------

class Tally:
    """Thread-safe (done, total) counter that reports to a progress callback."""

    def __init__(self, total: int, progress: ProgressFn, done: int = 0) -> None:
        self.total, self.done, self._progress = total, done, progress
        self._lock = threading.Lock()

    def add(self, amount: int, message: str) -> None:
        with self._lock:
            self.done += amount
            self._progress(self.done, self.total, message)


def train_modules(runner: Runner, config: NetworkConfig, delays: np.ndarray,
                  jobs: dict[int, tuple[np.ndarray, list[np.ndarray]]], epochs: int,
                  checkpoints: Sequence[int], on_result: Callable[[int, list[ModuleResult]], None],
                  tally: Tally, n_modules: int) -> None:
    """Train the modules of ``jobs`` ({module: (region, region pixels per traverse)}).

    ``on_result(module, results)`` runs in this thread as each module finishes
    (it saves the module). Progress advances at every epoch, in process and on
    a cluster alike (a task run again after its worker was lost does not count twice).
    """
    stop = threading.Event()
    lock = threading.Lock()
    sizes = {m: len(region) * len(pixels) for m, (region, pixels) in jobs.items()}
    reported = {m: 0 for m in jobs}

    def advance(module: int, epoch: int) -> None:
        if stop.is_set() and runner.in_process:
            raise _Cancelled  # stops an in-process task at its next epoch
        with lock:
            new = epoch - reported[module]
            if new <= 0:
                return
            reported[module] = epoch
        tally.add(sizes[module] * new, f"module {module + 1}/{n_modules} epoch {epoch}")

    with runner.epoch_events(advance) as hook:
        futures = {runner.submit(train_module_task, config, delays, m, region, pixels, epochs,
                                 tuple(checkpoints), on_epoch=hook(m)): m
                   for m, (region, pixels) in jobs.items()}
        try:
            for future in runner.as_completed(futures):
                m = futures[future]
                results = future.result()
                advance(m, epochs)  # epoch events may arrive late, or not at all
                on_result(m, results)
        except BaseException:
            stop.set()
            runner.cancel(futures)
            raise


def _blocks(n: int, size: int) -> list[tuple[int, int]]:
    return [(k, min(k + size, n)) for k in range(0, n, size)]


def _module_chunks(runner: Runner, n_modules: int) -> list[tuple[int, int]]:
    # In-process inference already uses every core (Numba); on a cluster, one
    # lane group of modules per task spreads them over the workers.
    return [(0, n_modules)] if runner.in_process else _blocks(n_modules, LANES)


def record_activity(runner: Runner, config: NetworkConfig, delays: np.ndarray,
                    weights: np.ndarray, theta: np.ndarray, pixels: np.ndarray,
                    first_place: int = 0, progress: ProgressFn = _quiet) -> np.ndarray:
    """Number of the reference images ``pixels`` (places first_place, ...) each neuron of the
    modules (``weights`` (M, n_in, N)) fires in, frozen: (M, N) int32 (spec section 6, steps 1-2)."""
    n_mod, n = theta.shape
    active = np.zeros((n_mod, n), np.int32)
    if len(pixels) == 0 or n_mod == 0:
        return active
    image_block = 64 if runner.in_process else 256
    shared_delays = runner.share(delays)
    chunks = _module_chunks(runner, n_mod)
    # A window of module chunks at a time: each chunk's weights are sent to the
    # cluster once (10 MB per 8 full-size modules) and dropped when its tasks are
    # done, so memory does not grow with the size of the map.
    window = len(chunks) if runner.in_process else max(2, 2 * runner.width)
    tally = Tally(len(pixels) * n_mod, progress)
    for first in range(0, len(chunks), window):
        futures = {}
        for lo, hi in chunks[first:first + window]:
            w, th = runner.share(weights[lo:hi]), runner.share(theta[lo:hi])
            for a, b in _blocks(len(pixels), image_block):
                futures[runner.submit(activity_task, config, shared_delays, w, th, pixels[a:b],
                                      first_place + a, parallel=False)] = (lo, hi, b - a)
        try:
            for future in runner.as_completed(futures):
                lo, hi, size = futures[future]
                active[lo:hi] += future.result()
                tally.add(size * (hi - lo), "recording hyperactivity")
        except BaseException:
            runner.cancel(futures)
            raise
    return active


def spike_counts(runner: Runner, config: NetworkConfig, delays: np.ndarray, weights: np.ndarray,
                 theta: np.ndarray, pixels: np.ndarray, query_ids: np.ndarray,
                 block: int = 64) -> np.ndarray:
    """Frozen spike counts (Q, M, N) of the modules for the images, in query blocks."""
    shared = [runner.share(a) for a in (delays, weights, theta)]
    futures = [runner.submit(spike_count_task, config, *shared, pixels[a:b], query_ids[a:b],
                             parallel=False) for a, b in _blocks(len(pixels), block)]
    try:
        parts = [f.result() for f in futures]
    except BaseException:
        runner.cancel(futures)
        raise
    return np.concatenate(parts) if parts else np.zeros((0,) + theta.shape, np.int32)


def _record_in_process(net: ModularSNN, reference_rates: np.ndarray, batch: int = 64,
                       progress: ProgressFn = _quiet,
                       on_counts: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
    """:func:`record_activity` in this process, handing each batch's spike counts (B, M, N) to
    ``on_counts`` (to gather the reference statistics of the zscore readout in the same pass)."""
    active = np.zeros((net.n_modules, net.config.n_neurons), np.int32)
    n = len(reference_rates)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        counts = net.spike_counts(reference_rates[start:stop], np.arange(start, stop) + REFERENCE_STREAM)
        active += (counts > 0).sum(axis=0, dtype=np.int32)
        if on_counts is not None:
            on_counts(counts)
        progress(stop, n, "recording hyperactivity")
    return active


def record_reference(net: ModularSNN, reference_rates: np.ndarray,
                     progress: ProgressFn = _quiet) -> ReferenceStats:
    """Record hyperactivity into ``net.active_images`` and return the reference statistics, in one pass."""
    stats = ReferenceStats(assignments=net.assignments, n_places=net.n_places)
    net.active_images[:] = _record_in_process(net, reference_rates, progress=progress, on_counts=stats.add)
    net.reference_stats = stats
    return stats


def calibrate(runner: Runner, net: ModularSNN, query_pixels: np.ndarray,
              sweep: Sequence[int] = DEFAULT_T_SWEEP) -> list[dict]:
    """:func:`calibration_rows` for a network whose calibration modules have their activity."""
    mods = net.module_split("calibration")
    places = net.split_places("calibration")
    if len(query_pixels) != len(places):
        raise DataError(f"calibration needs {len(places)} query images, got {len(query_pixels)}")
    counts = spike_counts(runner, net.config, net.delays, net.weights[mods], net.theta[mods],
                          query_pixels, np.arange(len(query_pixels)))
    return calibration_rows(net, counts, sweep)


def check_regions(regions: Sequence[np.ndarray], n_places: int, calibration_places: int) -> int:
    """Validate given regions (a partition of the places, none straddling the calibration
    split, calibration regions first); returns the number of calibration modules."""
    flat = np.concatenate([np.asarray(r, np.int64) for r in regions]) if len(regions) else np.zeros(0)
    if any(len(r) == 0 for r in regions) or not np.array_equal(np.sort(flat), np.arange(n_places)):
        raise ConfigError(f"regions must split the {n_places} places into non-empty, disjoint parts")
    is_cal = [bool(np.max(r) < calibration_places) for r in regions]
    if any(np.min(r) < calibration_places <= np.max(r) for r in regions):
        raise ConfigError("a region straddles the calibration split")
    n_cal = sum(is_cal)
    if any(is_cal[n_cal:]):
        raise ConfigError("calibration regions must come first")
    return n_cal


# --------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------

def train_network(config: NetworkConfig, traverses: Sequence[np.ndarray], place_names: Sequence[str],
                  out_dir: str | Path, *, calibration_places: int = 0,
                  calibration_query: np.ndarray | None = None,
                  epoch_checkpoints: Sequence[int] = (),
                  t_sweep: Sequence[int] = DEFAULT_T_SWEEP, workers: int = 2,
                  resume: bool = False, progress: ProgressFn = _quiet,
                  place_poses: np.ndarray | None = None,
                  pose_frame: str | None = None, thumbnails: np.ndarray | None = None,
                  profile: Profile = FAITHFUL, runner: Runner | None = None,
                  regions: Sequence[np.ndarray] | None = None) -> ModularSNN:
    """Train, record hyperactivity, calibrate and save a modular network.

    ``traverses``: preprocessed reference traverses, each (n_places, n_inputs)
    uint8, place i of every traverse being the same place. With
    ``calibration_places`` > 0 and a ``calibration_query`` (the query images of
    those first places), T is chosen by R@1 on that split, and so is the epoch
    count among ``epoch_checkpoints`` (the calibration modules are trained first
    and the test modules then get the chosen count). Without a calibration query
    T is 0, or, with the profile switch ``auto_threshold``, chosen on the
    reference itself; ``model.yaml`` records the profile and how T was chosen
    (``threshold_choice``). ``runner``: where the tasks run (default:
    ``workers`` threads of this process). ``regions``: the places of each
    module, instead of :func:`make_regions` (how an extended map is reproduced
    in one go). Returns the trained network.
    """
    profile = profile.validate()
    config = profile.configure(config.validate())
    n_places = len(place_names)
    for k, trav in enumerate(traverses):
        if trav.shape != (n_places, config.n_inputs):
            raise DataError(f"reference traverse {k + 1} has shape {trav.shape}, "
                            f"expected ({n_places}, {config.n_inputs})")
    if workers < 1:
        raise ConfigError("workers must be >= 1")
    if calibration_query is not None and calibration_places <= 0:
        raise ConfigError("a calibration query needs calibration_places > 0")
    if regions is None:
        regions = make_regions(n_places, config.places_per_module, config.shuffle, config.seed,
                               calibration_places)
        n_cal = sum(1 for r in regions if r[0] < calibration_places) if calibration_places else 0
    else:
        regions = [np.asarray(r, np.int64) for r in regions]
        n_cal = check_regions(regions, n_places, calibration_places)
    if runner is None:
        with LocalRunner(workers) as local:
            return _train(config, traverses, place_names, out_dir, regions, n_cal, calibration_places,
                          calibration_query, epoch_checkpoints, t_sweep, resume, progress,
                          place_poses, pose_frame, thumbnails, profile, local)
    return _train(config, traverses, place_names, out_dir, regions, n_cal, calibration_places,
                  calibration_query, epoch_checkpoints, t_sweep, resume, progress, place_poses,
                  pose_frame, thumbnails, profile, runner)


def _train(config, traverses, place_names, out_dir, regions, n_cal, calibration_places,
           calibration_query, epoch_checkpoints, t_sweep, resume, progress, place_poses,
           pose_frame, thumbnails, profile: Profile, runner: Runner) -> ModularSNN:
    delays = make_delays(config)
    meta = network_meta(config, place_names, place_poses, pose_frame)
    store = ModelStore.create(out_dir, meta, resume=resume)
    if store.meta.get("places") != meta["places"]:
        raise ModelError(f"cannot resume model {out_dir}: it was trained on other places")
    if store.has_part("network"):
        stored = store.read_part("network")
        if not np.array_equal(stored["region_places"], np.concatenate(regions)) or not np.array_equal(
                stored["region_lengths"], [len(r) for r in regions]):
            raise ModelError(f"cannot resume model {out_dir}: it was trained with other regions")
    save_network_part(store, delays, regions, n_cal)
    if thumbnails is not None:  # optional: (n_places, h, w) uint8 for debug views
        save_thumbnails(store, thumbnails)
    if not store.has_part(REFERENCE_PIXELS):
        # What extension needs to record the activity of new modules over the old places.
        store.write_part(REFERENCE_PIXELS, {"pixels": np.ascontiguousarray(traverses[0], np.uint8)})
    per_module = config.epochs * len(traverses)
    tally = Tally(sum(len(r) for r in regions) * per_module, progress)

    def jobs(modules: Sequence[int]) -> dict[int, tuple[np.ndarray, list[np.ndarray]]]:
        return {m: (regions[m], [t[regions[m]] for t in traverses]) for m in modules}

    def save(module: int, results: list[ModuleResult]) -> None:
        save_module(store, module, results[-1])

    def train_missing(modules: Sequence[int], epochs: int) -> None:
        todo = [m for m in modules if not store.has_part(f"module_{m:04d}")]
        resumed = sum(len(regions[m]) * per_module for m in modules if m not in todo)
        if resumed:  # a fresh model says nothing about resuming
            tally.add(resumed, "resumed")
        train_modules(runner, config, delays, jobs(todo), epochs, (), save, tally, len(regions))

    started = time.perf_counter()
    cal_modules = list(range(n_cal))
    test_modules = list(range(n_cal, len(regions)))
    calibrate_now = calibration_query is not None and n_cal > 0
    meta = store.meta
    chosen_epochs = config.epochs
    table: list[dict] = []
    if calibrate_now and "calibration" not in meta:
        checkpoints = sorted({e for e in epoch_checkpoints if 0 < e <= config.epochs} | {config.epochs})
        cal_results: dict[int, list[ModuleResult]] = {}
        train_modules(runner, config, delays, jobs(cal_modules), config.epochs, checkpoints,
                      cal_results.__setitem__, tally, len(regions))
        for epochs in checkpoints:
            for m in cal_modules:
                save_module(store, m, next(r for r in cal_results[m] if r.epochs == epochs))
            net = load_network(store, require_complete=False, modules=cal_modules)
            _record(runner, net, delays, traverses[0], profile)
            net.readout = profile.readout  # T is calibrated for the readout the model will run with
            for row in calibrate(runner, net, calibration_query, t_sweep):
                table.append({"epochs": epochs, **row})
        best = best_row(table)
        chosen_epochs = best["epochs"]
        for m in cal_modules:
            save_module(store, m, next(r for r in cal_results[m] if r.epochs == chosen_epochs))
        store.update_meta(calibration={
            "threshold": best["threshold"], "epochs": chosen_epochs,
            "recall_at_1": best["recall_at_1"], "places": calibration_places,
            "modules": n_cal, "table": table})
    elif "calibration" in meta:
        chosen_epochs = int(meta["calibration"]["epochs"])
    else:
        train_missing(cal_modules, config.epochs)
    train_missing(test_modules, chosen_epochs)
    train_seconds = time.perf_counter() - started
    net = load_network(store, require_complete=False)
    record_start = time.perf_counter()
    reference_rates = config.input_rates(traverses[0])
    stats = _record(runner, net, delays, traverses[0], profile, progress)
    store.write_part("hyperactivity", {"active_images": net.active_images})
    save_reference_parts(store, stats, traverses[0])
    threshold, choice = threshold_choice(net, store.meta, calibrate_now, profile, reference_rates,
                                          t_sweep, progress)
    net.hyperactive_threshold = threshold
    net.profile, net.readout = profile, profile.readout
    net.reference_pixels = np.asarray(traverses[0], np.uint8)
    if profile.preselect:
        if calibrate_now and profile.threshold_at_k:
            threshold, net.preselect_k, k_table, choice = choose_threshold_at_k(net, calibration_query, t_sweep)
            net.hyperactive_threshold = threshold
            store.update_meta(preselect={"k": net.preselect_k, "method": "calibration_query", "table": k_table})
        elif calibrate_now:
            net.preselect_k, k_table = calibrate_k(
                net, calibration_query, net.split_places("calibration"), net.module_split("calibration"),
                threshold)
            store.update_meta(preselect={"k": net.preselect_k, "method": "calibration_query", "table": k_table})
        else:
            net.preselect_k, record = choose_k_without_queries(net, traverses[0], threshold, progress)
            store.update_meta(preselect={"k": net.preselect_k, **record})
    store.update_meta(
        profile=profile.to_dict(), threshold_choice=choice, preselect_k=net.preselect_k,
        hyperactive_threshold=threshold,
        training={"seconds": round(train_seconds, 2),
                  "record_seconds": round(time.perf_counter() - record_start, 2),
                  **runner.describe(), "traverses": len(traverses), "epochs": chosen_epochs},
        complete=True)
    return net


def _record(runner: Runner, net: ModularSNN, delays: np.ndarray, reference: np.ndarray,
            profile: Profile, progress: ProgressFn = _quiet) -> ReferenceStats:
    """Record ``net.active_images`` over the reference; also its statistics where they can be had.

    In this process the zscore readout's reference statistics come from the
    same pass. On a cluster the tasks return only the activity, so the
    statistics are gathered here in a second pass (every model keeps them, so
    that any model can be read out with z-scores).
    """
    rates = net.config.input_rates(reference)
    if runner.in_process:
        return record_reference(net, rates, progress)
    net.active_images[:] = record_activity(runner, net.config, delays, net.weights, net.theta,
                                           reference, progress=progress)
    stats = ReferenceStats(assignments=net.assignments, n_places=net.n_places)
    _record_in_process(net, rates, on_counts=stats.add)
    net.reference_stats = stats
    return stats


__all__ = ["REFERENCE_STREAM", "ModuleResult", "Tally", "_fresh_state", "calibrate", "calibration_rows",
           "check_regions", "record_activity", "record_reference", "spike_counts", "train_module", "train_modules",
           "train_network"]
