"""Offline evaluation of a model on a query traverse (spec sections 5, 7 and 8)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .atomic import atomic_write_text
from .errors import ConfigError, DataError
from .localizer import max_spikes_per_neuron, score_confidence
from .metrics import evaluate_scores, pr_curves
from .network import ModularSNN, lane_spike_counts
from .preselect import ModuleRanker, effective_k
from .plots import save_pr_curve, save_similarity_matrix
from .preprocess import rates_hz
from .sequence import sequence_scores


def query_scores(members: Sequence[ModularSNN], pixels: np.ndarray, modules: np.ndarray,
                 threshold: int | None = None, batch: int = 32,
                 progress: Callable[[int, int], None] | None = None,
                 preselect_k: int | None = None) -> np.ndarray:
    """Ensemble-summed scores (Q, n_places) of preprocessed queries, query q using stream id q.

    ``preselect_k``: each member runs only its K best ``modules`` per query
    (template pre-selection, :mod:`preselect`); None = the member's calibrated
    K, 0 = all ``modules``.
    """
    rates = rates_hz(pixels).astype(np.float64)
    total = np.zeros((len(pixels), members[0].n_places))
    ks = [effective_k(net, preselect_k, len(modules)) for net in members]
    rankers = [ModuleRanker(net, modules, net.hyperactive_threshold if threshold is None else threshold)
               if k < len(modules) else None for net, k in zip(members, ks)]
    for start in range(0, len(pixels), batch):
        stop = min(start + batch, len(pixels))
        ids = np.arange(start, stop)
        chosen = [modules if r is None else r.top_modules(pixels[start:stop], k)
                  for r, k in zip(rankers, ks)]
        counts = lane_spike_counts(members, rates[start:stop], ids, chosen)
        for net, c, m in zip(members, counts, chosen):
            total[start:stop] += net.scores(c, modules=m, threshold=threshold)
        if progress is not None:
            progress(stop, len(pixels))
    return total


def evaluate(members: Sequence[ModularSNN], pixels: np.ndarray, gt: np.ndarray | None = None, *,
             split: str = "auto", tolerance: int = 0, sequence_length: int = 1,
             threshold: int | None = None, preselect_k: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Score every query and compute the metrics.

    ``split``: 'test' evaluates the test places with the test modules only (the
    published protocol, when the model has a calibration split), 'all' every
    place with every module; 'auto' = 'test' when a calibration split exists.
    Query q's true place is ``gt[q]`` (default q; -1 = no true place).
    Returns (report, S, gt) with S (Q', P') and gt restricted to the split.
    """
    net = members[0]
    if sequence_length < 1:
        raise ConfigError("sequence length must be >= 1")
    if sequence_length > len(pixels):
        raise ConfigError(f"sequence length {sequence_length} exceeds the {len(pixels)} queries")
    if split == "auto":
        split = "test" if net.n_calibration_modules > 0 else "all"
    if split not in ("test", "all"):
        raise ConfigError(f"split must be auto, test or all, not {split!r}")
    if gt is None:
        if len(pixels) != net.n_places:
            raise DataError(f"the model has {net.n_places} places but the query has {len(pixels)} "
                            f"images; give a ground-truth CSV")
        gt = np.arange(len(pixels))
    modules = net.module_split(split)
    places = net.split_places(split)
    if split == "test":
        keep = np.isin(gt, places) | (gt < 0)
        pixels, gt = pixels[keep], gt[keep]
    started = time.perf_counter()
    S_all = query_scores(members, pixels, modules, threshold, progress=progress,
                         preselect_k=preselect_k)
    seconds = time.perf_counter() - started
    S = S_all[:, places]
    column = np.full(net.n_places, -1)
    column[places] = np.arange(len(places))
    gt_local = np.where(gt >= 0, column[np.maximum(gt, 0)], -1)
    if sequence_length > 1:
        S = sequence_scores(S, sequence_length)
    max_score = max_spikes_per_neuron(net.config) * sequence_length * len(members)
    confidence = score_confidence(S, max_score)
    report = evaluate_scores(S, gt_local, confidence=confidence, tolerance=tolerance)
    # Modules each member ran per query (= all of the split without pre-selection).
    report_k = [int(effective_k(m, preselect_k, len(modules))) for m in members]
    report.update({
        "split": split, "places": int(len(places)), "modules": int(len(modules)),
        "ensemble": len(members), "sequence_length": sequence_length,
        "hyperactive_threshold": int(net.hyperactive_threshold if threshold is None else threshold),
        "preselect_k": report_k,
        "confidence": "s1 / (max_spikes * L * K)",
        "confidence_max_score": max_score,
        "timing": {"seconds": round(seconds, 3),
                   "queries_per_second": round(len(pixels) / seconds, 3) if seconds > 0 else None,
                   "modules_per_query": int(sum(report_k))},
    })
    return report, S, gt_local


def write_report(out_dir: str | Path, report: dict, S: np.ndarray, gt: np.ndarray,
                 title: str = "") -> None:
    """report.json, pr_curve.png and similarity.png in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    curves = pr_curves(S, gt, confidence=score_confidence(S, report["confidence_max_score"]))
    save_pr_curve(out / "pr_curve.png", {name: (c[0], c[1]) for name, c in curves.items()}, title=title)
    save_similarity_matrix(out / "similarity.png", S, gt=gt, title=title)


def format_report(report: dict) -> str:
    """The Recall@N table and PR-AUC, for the terminal."""
    lines = [f"queries {report['queries']}   places {report['places']}   modules {report['modules']}"
             f" x {report['ensemble']}   sequence length {report['sequence_length']}   "
             f"T {report['hyperactive_threshold']}   "
             f"modules run per query {'+'.join(str(k) for k in report.get('preselect_k', []))}",
             "   N  " + "  ".join(f"{int(n):>6d}" for n in report["recall"]),
             "R@N   " + "  ".join(f"{v:6.3f}" for v in report["recall"].values())]
    if "recall_tolerance" in report:
        lines.append("R@N+- " + "  ".join(f"{v:6.3f}" for v in report["recall_tolerance"].values()))
    lines.append(f"PR-AUC {report['pr_auc']:.3f} (distance rule {report['pr_auc_distance']:.3f})   "
                 f"recall@100%P {report['recall_at_100_precision']:.3f}   "
                 f"{report['timing']['queries_per_second']} queries/s")
    return "\n".join(lines)
