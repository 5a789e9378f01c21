"""Training a modular network: STDP per module, assignment, hyperactivity, calibration.

Spec sections 3-6. :func:`train_network` is the one entry point used by the CLI
and the trainer node. It writes every module to the model directory as soon as
it is trained, so that an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import kernels
from .errors import ConfigError, DataError, ModelError
from .metrics import recall_at_n
from .model_io import (load_network, network_meta, save_module, save_network_part,
                       save_reference_parts, save_thumbnails)
from .model_store import ModelStore
from .network import (DEFAULT_T_SWEEP, DelayLayout, ModularSNN, NetworkConfig, assign_neurons,
                      initial_weights, make_delays, make_regions)
from .params import pack, steps
from .preprocess import rates_hz
from .preselect import calibrate_k
from .profiles import FAITHFUL, Profile
from .readout import ReferenceStats

# progress(done, total, message): done/total count training presentations.
ProgressFn = Callable[[int, int, str], None]


def _quiet(done: int, total: int, message: str) -> None:
    pass


@dataclass
class ModuleResult:
    """Arrays of one trained module at one epoch count."""

    epochs: int
    weights: np.ndarray
    theta: np.ndarray
    assignments: np.ndarray


def _fresh_state(config: NetworkConfig) -> dict[str, np.ndarray]:
    p, n = config.params, config.n_neurons
    return dict(
        v_e=np.full(n, p.v_rest_e + p.v_init_offset), ge_e=np.zeros(n), gi_e=np.zeros(n),
        theta=np.full(n, p.theta_init), timer=np.zeros(n),
        last_e=np.full(n, kernels.NEVER, np.int64), post1=np.zeros(n), post2=np.zeros(n),
        v_i=np.full(n, p.v_rest_i + p.v_init_offset), ge_i=np.zeros(n),
        last_i=np.full(n, kernels.NEVER, np.int64),
        last_emit=np.full(config.n_inputs, kernels.NEVER, np.int64),
    )


def train_module(config: NetworkConfig, layout: DelayLayout, module: int, region: np.ndarray,
                 traverses: Sequence[np.ndarray], epochs: int,
                 checkpoints: Sequence[int] = (),
                 on_epoch: Callable[[int], None] | None = None) -> list[ModuleResult]:
    """Train one module on its places; returns its state at each checkpoint and at ``epochs``.

    The training sequence is every place of the region in traverse 1, then in
    traverse 2, ..., repeated every epoch (spec section 3). Each presentation is
    350 ms of input and 150 ms of rest after one initial 500 ms rest, with the
    state carried over. Neurons are assigned from the spike counts of the last
    ``assign_presentations`` presentations before each checkpoint.
    """
    p = config.params
    packed = pack(p, config.dt)
    weights = initial_weights(config, module)
    state = _fresh_state(config)
    rng = np.array([kernels.stream_seed(config.seed, 1 + module, 0)], dtype=np.uint64)
    sequence = np.concatenate([trav[region] for trav in traverses]).astype(np.float64)
    rates = np.ascontiguousarray(rates_hz(sequence), dtype=np.float64)
    presented = np.tile(region, len(traverses))
    n_present, n_rest = steps(p.present_ms, config.dt), steps(p.rest_ms, config.dt)
    keep = config.assign_presentations
    history = np.zeros((0, config.n_neurons), np.int32)
    history_places = np.zeros(0, np.int64)

    def run(rates_block: np.ndarray, n_pres: int, n_rst: int, t0: int,
            counts: np.ndarray) -> int:
        return kernels.train_presentations(
            packed, weights, layout.tgt, layout.off, layout.slot, rates_block, n_pres, n_rst,
            p.weight_sum, state["v_e"], state["ge_e"], state["gi_e"], state["theta"],
            state["timer"], state["last_e"], state["post1"], state["post2"], state["v_i"],
            state["ge_i"], state["last_i"], state["last_emit"], t0, rng, counts)

    # The initial rest: no input, no normalisation needed (it does not change W).
    t0 = kernels.simulate(
        packed, weights, layout.tgt, layout.off, layout.slot, np.zeros(config.n_inputs), 0,
        steps(p.initial_rest_ms, config.dt), True, state["v_e"], state["ge_e"], state["gi_e"],
        state["theta"], state["timer"], state["last_e"], state["post1"], state["post2"],
        state["v_i"], state["ge_i"], state["last_i"], state["last_emit"], 0, rng,
        np.zeros(config.n_neurons, np.int64))
    results = []
    wanted = sorted({e for e in checkpoints if 0 < e < epochs} | {epochs})
    for epoch in range(1, epochs + 1):
        counts = np.zeros((len(rates), config.n_neurons), np.int32)
        t0 = run(rates, n_present, n_rest, t0, counts)
        history = np.concatenate([history, counts])[-keep:]
        history_places = np.concatenate([history_places, presented])[-keep:]
        if epoch in wanted:
            results.append(ModuleResult(
                epochs=epoch, weights=weights.copy(), theta=state["theta"].copy(),
                assignments=assign_neurons(history, history_places, region)))
        if on_epoch is not None:
            on_epoch(epoch)
    return results


def record_activity(net: ModularSNN, reference_rates: np.ndarray, batch: int = 64,
                    progress: ProgressFn = _quiet,
                    on_counts: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
    """Number of reference images each neuron fires in, frozen (spec section 6, step 1-2).

    ``on_counts`` receives each batch's spike counts (B, M, N), e.g. to gather
    the reference statistics of the zscore readout in the same pass.
    """
    active = np.zeros((net.n_modules, net.config.n_neurons), np.int32)
    n = len(reference_rates)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        counts = net.spike_counts(reference_rates[start:stop], np.arange(start, stop) + _REFERENCE_STREAM)
        active += (counts > 0).sum(axis=0, dtype=np.int32)
        if on_counts is not None:
            on_counts(counts)
        progress(stop, n, "recording hyperactivity")
    return active


# Query ids name random streams; reference recordings use ids far from query ids.
_REFERENCE_STREAM = 1 << 40
# The second presentation of the reference that chooses T without queries: yet other streams.
_SELF_TEST_STREAM = 2 << 40


def record_reference(net: ModularSNN, reference_rates: np.ndarray,
                     progress: ProgressFn = _quiet) -> ReferenceStats:
    """Record hyperactivity into ``net.active_images`` and return the reference statistics, in one pass."""
    stats = ReferenceStats(assignments=net.assignments, n_places=net.n_places)
    net.active_images[:] = record_activity(net, reference_rates, progress=progress, on_counts=stats.add)
    net.reference_stats = stats
    return stats


def choose_threshold_without_queries(net: ModularSNN, reference_rates: np.ndarray,
                                     sweep: Sequence[int] = DEFAULT_T_SWEEP,
                                     progress: ProgressFn = _quiet,
                                     readout: str = "mean") -> tuple[int, list[dict]]:
    """Pick T with no query image: R@1 of the network on a second presentation of its own reference.

    Each reference image is presented again with another Poisson stream (as a
    query would be) and must be recognised as its own place among all places.
    A hyperactive neuron votes for its place whatever the image, so masking the
    right ones raises this self-recognition; masking too many removes the
    neurons that carry the places. The T with the best R@1 wins, the smallest
    among equals (least removal), scored with ``readout`` (the one the model
    will run with). Returns (T, [{threshold, recall_at_1, masked}]).
    """
    n = len(reference_rates)
    counts = np.concatenate([
        net.spike_counts(reference_rates[s:s + 64], np.arange(s, min(s + 64, n)) + _SELF_TEST_STREAM)
        for s in range(0, n, 64)]) if n else np.zeros((0, net.n_modules, net.config.n_neurons))
    progress(n, n, "choosing T on the reference")
    rows = []
    for t in sweep:
        S = net.scores(counts, threshold=t, readout=readout)
        rows.append({"threshold": int(t), "recall_at_1": float(recall_at_n(S, ns=(1,))[1]),
                     "masked": net.n_masked(t)})
    best = max(rows, key=lambda r: (r["recall_at_1"], -r["threshold"]))
    return best["threshold"], rows


def calibration_table(net: ModularSNN, query_rates: np.ndarray,
                      sweep: Sequence[int] = DEFAULT_T_SWEEP) -> list[dict]:
    """R@1 of the calibration split for each hyperactivity threshold T.

    Calibration query k is the k-th place of the calibration split; only the
    calibration modules compete, as in the published protocol.
    """
    mods = net.module_split("calibration")
    places = net.split_places("calibration")
    if len(query_rates) != len(places):
        raise DataError(f"calibration needs {len(places)} query images, got {len(query_rates)}")
    counts = net.spike_counts(query_rates, np.arange(len(query_rates)), modules=mods)
    rows = []
    for t in sweep:
        S = net.scores(counts, modules=mods, threshold=t)[:, places]
        rows.append({"threshold": int(t), "recall_at_1": float(recall_at_n(S, ns=(1,))[1]),
                     "masked": net.n_masked(t)})
    return rows


def _best(rows: list[dict]) -> dict:
    # Highest R@1; among equals the smallest epochs, then the smallest T (least removal).
    return max(rows, key=lambda r: (r["recall_at_1"], -r.get("epochs", 0), -r["threshold"]))


def train_network(config: NetworkConfig, traverses: Sequence[np.ndarray], place_names: Sequence[str],
                  out_dir: str | Path, *, calibration_places: int = 0,
                  calibration_query: np.ndarray | None = None,
                  epoch_checkpoints: Sequence[int] = (),
                  t_sweep: Sequence[int] = DEFAULT_T_SWEEP, workers: int = 2,
                  resume: bool = False, progress: ProgressFn = _quiet,
                  place_poses: np.ndarray | None = None,
                  pose_frame: str | None = None, thumbnails: np.ndarray | None = None,
                  profile: Profile = FAITHFUL) -> ModularSNN:
    """Train, record hyperactivity, calibrate and save a modular network.

    ``traverses``: preprocessed reference traverses, each (n_places, n_inputs)
    uint8, place i of every traverse being the same place. With
    ``calibration_places`` > 0 and a ``calibration_query`` (the query images of
    those first places), T is chosen by R@1 on that split, and so is the epoch
    count among ``epoch_checkpoints`` (the calibration modules are trained first
    and the test modules then get the chosen count). Without a calibration query
    T is 0, or, with the profile switch ``auto_threshold``, chosen on the
    reference itself; ``model.yaml`` records the profile and how T was chosen
    (``threshold_choice``). Returns the trained network.
    """
    profile = profile.validate()
    config.validate()
    n_places = len(place_names)
    for k, trav in enumerate(traverses):
        if trav.shape != (n_places, config.n_inputs):
            raise DataError(f"reference traverse {k + 1} has shape {trav.shape}, "
                            f"expected ({n_places}, {config.n_inputs})")
    if workers < 1:
        raise ConfigError("workers must be >= 1")
    if calibration_query is not None and calibration_places <= 0:
        raise ConfigError("a calibration query needs calibration_places > 0")
    regions = make_regions(n_places, config.places_per_module, config.shuffle, config.seed,
                           calibration_places)
    n_cal = sum(1 for r in regions if r[0] < calibration_places) if calibration_places else 0
    delays = make_delays(config)
    layout = DelayLayout.build(delays, config.dt, config.params.delay_max)
    meta = network_meta(config, place_names, place_poses, pose_frame)
    store = ModelStore.create(out_dir, meta, resume=resume)
    if store.meta.get("places") != meta["places"]:
        raise ModelError(f"cannot resume model {out_dir}: it was trained on other places")
    save_network_part(store, delays, regions, n_cal)
    if thumbnails is not None:  # optional: (n_places, h, w) uint8 for debug views
        save_thumbnails(store, thumbnails)
    lock = threading.Lock()
    per_module = config.epochs * len(traverses)
    total = sum(len(r) for r in regions) * per_module
    done = [0]

    def advance(region: np.ndarray, module: int) -> Callable[[int], None]:
        def on_epoch(epoch: int) -> None:
            with lock:
                done[0] += len(region) * len(traverses)
                progress(done[0], total, f"module {module + 1}/{len(regions)} epoch {epoch}")
        return on_epoch

    def train_one(module: int, epochs: int, checkpoints: Sequence[int]) -> list[ModuleResult]:
        results = train_module(config, layout, module, regions[module], traverses, epochs,
                               checkpoints, advance(regions[module], module))
        if not checkpoints:
            with lock:
                save_module(store, module, results[-1])
        return results

    def train_all(modules: Sequence[int], epochs: int,
                  checkpoints: Sequence[int] = ()) -> dict[int, list[ModuleResult]]:
        todo = [m for m in modules if checkpoints or not store.has_part(f"module_{m:04d}")]
        with lock:
            done[0] += sum(len(regions[m]) * per_module for m in modules if m not in todo)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {m: pool.submit(train_one, m, epochs, checkpoints) for m in todo}
            return {m: f.result() for m, f in futures.items()}

    started = time.perf_counter()
    cal_modules = list(range(n_cal))
    test_modules = list(range(n_cal, len(regions)))
    calibrate = calibration_query is not None and n_cal > 0
    meta = store.meta
    chosen_epochs = config.epochs
    table: list[dict] = []
    if calibrate and "calibration" not in meta:
        checkpoints = sorted({e for e in epoch_checkpoints if 0 < e <= config.epochs} | {config.epochs})
        cal_results = train_all(cal_modules, config.epochs, checkpoints)
        for epochs in checkpoints:
            for m in cal_modules:
                save_module(store, m, next(r for r in cal_results[m] if r.epochs == epochs))
            net = load_network(store, require_complete=False, modules=cal_modules)
            record_reference(net, rates_hz(traverses[0]).astype(np.float64))
            net.readout = profile.readout  # T is calibrated for the readout the model will run with
            for row in calibration_table(net, rates_hz(calibration_query).astype(np.float64), t_sweep):
                table.append({"epochs": epochs, **row})
        best = _best(table)
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
        train_all(cal_modules, config.epochs)
    train_all(test_modules, chosen_epochs)
    train_seconds = time.perf_counter() - started
    net = load_network(store, require_complete=False)
    record_start = time.perf_counter()
    reference_rates = rates_hz(traverses[0]).astype(np.float64)
    stats = record_reference(net, reference_rates, progress=progress)
    store.write_part("hyperactivity", {"active_images": net.active_images})
    save_reference_parts(store, stats, traverses[0])
    threshold, choice = _threshold_choice(net, store.meta, calibrate, profile, reference_rates,
                                          t_sweep, progress)
    net.hyperactive_threshold = threshold
    net.profile, net.readout = profile, profile.readout
    net.reference_pixels = np.asarray(traverses[0], np.uint8)
    if calibrate and profile.preselect:
        net.preselect_k, k_table = calibrate_k(
            net, calibration_query, net.split_places("calibration"), net.module_split("calibration"),
            threshold)
        store.update_meta(preselect={"k": net.preselect_k, "table": k_table})
    store.update_meta(
        profile=profile.to_dict(), threshold_choice=choice, preselect_k=net.preselect_k,
        hyperactive_threshold=threshold,
        training={"seconds": round(train_seconds, 2),
                  "record_seconds": round(time.perf_counter() - record_start, 2),
                  "workers": workers, "traverses": len(traverses), "epochs": chosen_epochs},
        complete=True)
    return net


def _threshold_choice(net: ModularSNN, meta: dict, calibrated: bool, profile: Profile,
                      reference_rates: np.ndarray, sweep: Sequence[int],
                      progress: ProgressFn) -> tuple[int, dict]:
    """T and the record of why (``model.yaml`` key ``threshold_choice``)."""
    if calibrated:
        return int(meta["calibration"]["threshold"]), {
            "method": "calibration", "reason": "best R@1 on the calibration query"}
    if profile.auto_threshold:
        t, table = choose_threshold_without_queries(net, reference_rates, sweep, progress,
                                                    readout=profile.readout)
        best = next(r for r in table if r["threshold"] == t)
        return t, {"method": "reference_self_recognition",
                   "reason": f"best R@1 ({best['recall_at_1']:.3f}, {profile.readout} readout) recognising "
                             f"a second presentation of the reference traverse; no calibration query given",
                   "table": table}
    return 0, {"method": "none",
               "reason": "no calibration query and profile switch auto_threshold off: no masking"}
