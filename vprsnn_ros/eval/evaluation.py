"""Offline evaluation of a model on a query traverse (spec sections 5, 7 and 8)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from vprsnn_ros.atomic import atomic_write_text
from vprsnn_ros.errors import ConfigError, DataError
from vprsnn_ros.eval.baseline import baseline_report
from vprsnn_ros.eval.loss import format_where_loss, place_modules, template_module_first, where_the_loss_is
from vprsnn_ros.eval.metrics import evaluate_scores, pr_curves
from vprsnn_ros.eval.plots import save_pr_curve, save_similarity_matrix
from vprsnn_ros.snn.confidence import ConfidenceRule
from vprsnn_ros.snn.inference import Scorer
from vprsnn_ros.snn.network import ModularSNN
from vprsnn_ros.snn.preselect import ModuleRanker, effective_k
from vprsnn_ros.snn.readout import check_readout
from vprsnn_ros.snn.sequence import check_matcher, match_sequences
from vprsnn_ros.snn.tracking import Tracker


def query_scores(members: Sequence[ModularSNN], pixels: np.ndarray, modules: np.ndarray,
                 threshold: int | None = None, batch: int = 32,
                 progress: Callable[[int, int], None] | None = None,
                 preselect_k: int | None = None, readout: str | None = None) -> np.ndarray:
    """Ensemble-summed scores (Q, n_places) of preprocessed queries, query q using stream id q.

    ``preselect_k``: each member runs only its K best ``modules`` per query
    (template pre-selection, :mod:`preselect`); None = the member's calibrated
    K, 0 = all ``modules``. ``readout``: see :meth:`ModularSNN.scores`.
    """
    scorer = Scorer(members, modules=modules, threshold=threshold, preselect_k=preselect_k, readout=readout)
    return scorer.scores_in_batches(pixels, batch=batch, progress=progress)


def evaluate(members: Sequence[ModularSNN], pixels: np.ndarray, gt: np.ndarray | None = None, *,
             split: str = "auto", tolerance: int = 0, sequence_length: int = 1,
             threshold: int | None = None, preselect_k: int | None = None,
             progress: Callable[[int, int], None] | None = None, readout: str | None = None,
             sequence_matcher: str = "diagonal",
             scorer: Callable[..., np.ndarray] | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Score every query and compute the metrics.

    ``split``: 'test' evaluates the test places with the test modules only (the
    published protocol, when the model has a calibration split), 'calibration'
    the calibration places with their own modules (where choices are made), 'all'
    every place with every module; 'auto' = 'test' when a calibration split exists.
    Query q's true place is ``gt[q]`` (default q; -1 = no true place).
    ``readout`` (default: the model's profile) and ``sequence_matcher``
    ('diagonal' or 'seqslam') select the profile switch and the matcher; the
    SAD baseline (report key ``baseline``) is scored on the same images,
    places and matcher when the model stores its reference pixels.
    ``scorer``: computes the scores instead of :func:`query_scores`, with its
    signature (e.g. on a Dask cluster, :func:`vprsnn_ros.parallel.cluster.cluster_query_scores`).
    Returns (report, S, gt) with S (Q', P') and gt restricted to the split.
    """
    net = members[0]
    readout = check_readout(net.readout if readout is None else readout)
    check_matcher(sequence_matcher)
    if sequence_length < 1:
        raise ConfigError("sequence length must be >= 1")
    if sequence_length > len(pixels):
        raise ConfigError(f"sequence length {sequence_length} exceeds the {len(pixels)} queries")
    if split == "auto":
        split = "test" if net.n_calibration_modules > 0 else "all"
    if split not in ("test", "calibration", "all"):
        raise ConfigError(f"split must be auto, test, calibration or all, not {split!r}")
    if split == "calibration" and net.n_calibration_modules == 0:
        raise ConfigError("the model has no calibration split (train with --calibration-places)")
    if gt is None:
        if len(pixels) != net.n_places:
            raise DataError(f"the model has {net.n_places} places but the query has {len(pixels)} "
                            f"images; give a ground-truth CSV")
        gt = np.arange(len(pixels))
    modules = net.module_split(split)
    places = net.split_places(split)
    if split != "all":
        keep = np.isin(gt, places) | (gt < 0)
        pixels, gt = pixels[keep], gt[keep]
    started = time.perf_counter()
    one = Scorer(members, modules=modules, threshold=threshold, preselect_k=preselect_k, readout=readout)
    one.keep_modules = True  # which modules each query ran: where the loss is, below
    tracker = Tracker(one, sequence_length, sequence_matcher, columns=places)
    if tracker.active:
        # Tracking: each frame's modules depend on the previous frames' sequence scores, so the
        # frames run in order, through the very path the node takes (in this process).
        S = np.zeros((len(pixels), len(places)))
        for q in range(len(pixels)):
            S[q] = tracker.step(pixels[q], q)
            if progress is not None and (q + 1 == len(pixels) or (q + 1) % 32 == 0):
                progress(q + 1, len(pixels))
        modules_run = float(np.mean(tracker.modules_run)) if tracker.modules_run else 0.0
    elif scorer is None:
        S_all = one.scores_in_batches(pixels, progress=progress)
    else:
        S_all = scorer(members, pixels, modules, threshold, progress=progress, preselect_k=preselect_k,
                       readout=readout)
    if not tracker.active:
        S = S_all[:, places]
        if sequence_length > 1 or sequence_matcher != "diagonal":
            S = match_sequences(S, sequence_length, sequence_matcher)
        modules_run = float(sum(one.k))
    seconds = time.perf_counter() - started
    column = np.full(net.n_places, -1)
    column[places] = np.arange(len(places))
    gt_local = np.where(gt >= 0, column[np.maximum(gt, 0)], -1)
    rule = ConfidenceRule.for_setup(net.config, readout, sequence_matcher, sequence_length, len(members))
    report = evaluate_scores(S, gt_local, confidence=rule(S), tolerance=tolerance)
    # Modules each member ran per query (= all of the split without pre-selection).
    report_k = [int(effective_k(m, preselect_k, len(modules))) for m in members]
    report.update({
        "profile": net.profile.to_dict(), "readout": readout, "sequence_matcher": sequence_matcher,
        "split": split, "places": int(len(places)), "modules": int(len(modules)),
        "ensemble": len(members), "sequence_length": sequence_length,
        "hyperactive_threshold": int(net.hyperactive_threshold if threshold is None else threshold),
        "preselect_k": report_k,
        **rule.report_fields(),
        "timing": {"seconds": round(seconds, 3),
                   "queries_per_second": round(len(pixels) / seconds, 3) if seconds > 0 else None,
                   "modules_per_query": round(modules_run, 3)},
        "tracking": bool(tracker.active),
    })
    column_module = place_modules(net.regions, net.n_places)[places]
    # Which modules each query ran: as scored here, or (a cluster scored them) as chosen here,
    # which is the same choice: without tracking it depends on the query alone.
    history = one.modules_history
    if len(history) != len(pixels):
        chosen = one.choose_modules(pixels)[0]
        history = np.broadcast_to(np.arange(net.n_modules) if chosen is None else chosen,
                                  (len(pixels), net.n_modules if chosen is None else np.shape(chosen)[-1]))
    true_module = np.where(gt >= 0, place_modules(net.regions, net.n_places)[np.maximum(gt, 0)], -1)
    ran = np.array([t in m for t, m in zip(true_module, history)])
    report["where_loss"] = {"snn": where_the_loss_is(S, gt_local, column_module, ran),
                            "templates": _templates_first(net, pixels, modules, gt, threshold)}
    if net.reference_pixels is not None:
        report["baseline"] = baseline_report(pixels, net.reference_pixels, gt_local, places=places,
                                             sequence_length=sequence_length,
                                             sequence_matcher=sequence_matcher, tolerance=tolerance,
                                             column_module=column_module,
                                             snn_ran=None if bool(np.all(ran)) else ran)
        report["where_loss"]["sad"] = report["baseline"].pop("where_loss")
    else:
        report["baseline"] = None
        report["baseline_note"] = "the model stores no reference pixels (trained before they were kept)"
    return report, S, gt_local


def _templates_first(net: ModularSNN, pixels: np.ndarray, modules: np.ndarray, gt: np.ndarray,
                     threshold: int | None) -> dict:
    """Module selection of the template pre-selection stage on the same queries (single frames)."""
    ranker = ModuleRanker(net, modules, threshold)
    true_modules = np.where(gt >= 0, place_modules(net.regions, net.n_places)[np.maximum(gt, 0)], -1)
    return template_module_first(ranker.module_scores(pixels), ranker.modules, true_modules)


def report_confidence(S: np.ndarray, report: dict) -> np.ndarray:
    """Per-query confidence as the report defines it (:meth:`ConfidenceRule.from_report`)."""
    return ConfidenceRule.from_report(report)(S)


def write_report(out_dir: str | Path, report: dict, S: np.ndarray, gt: np.ndarray,
                 title: str = "") -> None:
    """report.json, pr_curve.png and similarity.png in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    curves = pr_curves(S, gt, confidence=report_confidence(S, report))
    save_pr_curve(out / "pr_curve.png", {name: (c[0], c[1]) for name, c in curves.items()}, title=title)
    save_similarity_matrix(out / "similarity.png", S, gt=gt, title=title)


def _modules_run(report: dict) -> str:
    """'4+4' (modules each member runs per query), or with tracking the mean over the frames."""
    if report.get("tracking"):
        return f"{report['timing']['modules_per_query']} on average (tracking)"
    return "+".join(str(k) for k in report.get("preselect_k", []))


def format_report(report: dict) -> str:
    """The Recall@N table and PR-AUC, for the terminal."""
    lines = [f"queries {report['queries']}   places {report['places']}   modules {report['modules']}"
             f" x {report['ensemble']}   sequence length {report['sequence_length']}   "
             f"T {report['hyperactive_threshold']}   "
             f"modules run per query {_modules_run(report)}",
             "   N  " + "  ".join(f"{int(n):>6d}" for n in report["recall"]),
             "R@N   " + "  ".join(f"{v:6.3f}" for v in report["recall"].values())]
    if "recall_tolerance" in report:
        lines.append("R@N+- " + "  ".join(f"{v:6.3f}" for v in report["recall_tolerance"].values()))
    lines.append(f"PR-AUC {report['pr_auc']:.3f} (distance rule {report['pr_auc_distance']:.3f})   "
                 f"recall@100%P {report['recall_at_100_precision']:.3f}   "
                 f"{report['timing']['queries_per_second']} queries/s")
    if "profile" in report:
        lines[0] += f"   profile {report['profile']['name']} (readout {report['readout']}, " \
                    f"matcher {report['sequence_matcher']})"
    base = report.get("baseline")
    if base:
        lines.append("SAD   " + "  ".join(f"{v:6.3f}" for v in base["recall"].values())
                     + f"   PR-AUC {base['pr_auc']:.3f}   (baseline: sum of absolute differences, "
                     f"same images and matcher)")
    elif "baseline_note" in report:
        lines.append(f"SAD baseline: none ({report['baseline_note']})")
    if report.get("where_loss"):
        lines.append(format_where_loss(report["where_loss"]))
    return "\n".join(lines)
