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
from .network import ModularSNN
from .plots import save_pr_curve, save_similarity_matrix
from .preprocess import rates_hz
from .sequence import sequence_scores


def query_scores(members: Sequence[ModularSNN], pixels: np.ndarray, modules: np.ndarray,
                 threshold: int | None = None, batch: int = 32,
                 progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Ensemble-summed scores (Q, n_places) of preprocessed queries, query q using stream id q."""
    rates = rates_hz(pixels).astype(np.float64)
    total = np.zeros((len(pixels), members[0].n_places))
    for start in range(0, len(pixels), batch):
        stop = min(start + batch, len(pixels))
        ids = np.arange(start, stop)
        for net in members:
            counts = net.spike_counts(rates[start:stop], ids, modules=modules)
            total[start:stop] += net.scores(counts, modules=modules, threshold=threshold)
        if progress is not None:
            progress(stop, len(pixels))
    return total


def evaluate(members: Sequence[ModularSNN], pixels: np.ndarray, gt: np.ndarray | None = None, *,
             split: str = "auto", tolerance: int = 0, sequence_length: int = 1,
             threshold: int | None = None,
             progress: Callable[[int, int], None] | None = None,
             scorer: Callable[..., np.ndarray] | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Score every query and compute the metrics.

    ``split``: 'test' evaluates the test places with the test modules only (the
    published protocol, when the model has a calibration split), 'all' every
    place with every module; 'auto' = 'test' when a calibration split exists.
    Query q's true place is ``gt[q]`` (default q; -1 = no true place).
    ``scorer``: computes the scores instead of :func:`query_scores`, with its
    signature (e.g. on a Dask cluster, :func:`vprsnn_ros.cluster.cluster_query_scores`).
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
    S_all = (scorer or query_scores)(members, pixels, modules, threshold, progress=progress)
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
    report.update({
        "split": split, "places": int(len(places)), "modules": int(len(modules)),
        "ensemble": len(members), "sequence_length": sequence_length,
        "hyperactive_threshold": int(net.hyperactive_threshold if threshold is None else threshold),
        "confidence": "s1 / (max_spikes * L * K)",
        "confidence_max_score": max_score,
        "timing": {"seconds": round(seconds, 3),
                   "queries_per_second": round(len(pixels) / seconds, 3) if seconds > 0 else None,
                   "modules_per_query": int(len(modules)) * len(members)},
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
             f"T {report['hyperactive_threshold']}",
             "   N  " + "  ".join(f"{int(n):>6d}" for n in report["recall"]),
             "R@N   " + "  ".join(f"{v:6.3f}" for v in report["recall"].values())]
    if "recall_tolerance" in report:
        lines.append("R@N+- " + "  ".join(f"{v:6.3f}" for v in report["recall_tolerance"].values()))
    lines.append(f"PR-AUC {report['pr_auc']:.3f} (distance rule {report['pr_auc_distance']:.3f})   "
                 f"recall@100%P {report['recall_at_100_precision']:.3f}   "
                 f"{report['timing']['queries_per_second']} queries/s")
    return "\n".join(lines)
