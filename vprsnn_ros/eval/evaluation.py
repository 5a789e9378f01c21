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
from vprsnn_ros.eval.metrics import evaluate_scores, pr_curves
from vprsnn_ros.eval.plots import save_pr_curve, save_similarity_matrix
from vprsnn_ros.localizer import max_spikes_per_neuron, score_confidence
from vprsnn_ros.snn.coding import rates_hz
from vprsnn_ros.snn.network import ModularSNN, lane_spike_counts
from vprsnn_ros.snn.preselect import ModuleRanker, effective_k
from vprsnn_ros.snn.readout import bounded_confidence, check_readout
from vprsnn_ros.snn.sequence import check_matcher, match_sequences


def query_scores(members: Sequence[ModularSNN], pixels: np.ndarray, modules: np.ndarray,
                 threshold: int | None = None, batch: int = 32,
                 progress: Callable[[int, int], None] | None = None,
                 preselect_k: int | None = None, readout: str | None = None) -> np.ndarray:
    """Ensemble-summed scores (Q, n_places) of preprocessed queries, query q using stream id q.

    ``preselect_k``: each member runs only its K best ``modules`` per query
    (template pre-selection, :mod:`preselect`); None = the member's calibrated
    K, 0 = all ``modules``. ``readout``: see :meth:`ModularSNN.scores`.
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
            total[start:stop] += net.scores(c, modules=m, threshold=threshold, readout=readout)
        if progress is not None:
            progress(stop, len(pixels))
    return total


def evaluate(members: Sequence[ModularSNN], pixels: np.ndarray, gt: np.ndarray | None = None, *,
             split: str = "auto", tolerance: int = 0, sequence_length: int = 1,
             threshold: int | None = None, preselect_k: int | None = None,
             progress: Callable[[int, int], None] | None = None, readout: str | None = None,
             sequence_matcher: str = "diagonal",
             scorer: Callable[..., np.ndarray] | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Score every query and compute the metrics.

    ``split``: 'test' evaluates the test places with the test modules only (the
    published protocol, when the model has a calibration split), 'all' every
    place with every module; 'auto' = 'test' when a calibration split exists.
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
    S_all = (scorer or query_scores)(members, pixels, modules, threshold, progress=progress,
                                     preselect_k=preselect_k, readout=readout)
    seconds = time.perf_counter() - started
    S = S_all[:, places]
    column = np.full(net.n_places, -1)
    column[places] = np.arange(len(places))
    gt_local = np.where(gt >= 0, column[np.maximum(gt, 0)], -1)
    if sequence_length > 1 or sequence_matcher != "diagonal":
        S = match_sequences(S, sequence_length, sequence_matcher)
    max_score = max_spikes_per_neuron(net.config) * sequence_length * len(members)
    native = readout == "mean" and sequence_matcher == "diagonal"
    confidence = report_confidence(S, {"confidence_max_score": max_score, "confidence_scale": None if native
                                       else sequence_length * len(members)})
    report = evaluate_scores(S, gt_local, confidence=confidence, tolerance=tolerance)
    # Modules each member ran per query (= all of the split without pre-selection).
    report_k = [int(effective_k(m, preselect_k, len(modules))) for m in members]
    report.update({
        "profile": net.profile.to_dict(), "readout": readout, "sequence_matcher": sequence_matcher,
        "confidence_scale": None if native else sequence_length * len(members),
        "split": split, "places": int(len(places)), "modules": int(len(modules)),
        "ensemble": len(members), "sequence_length": sequence_length,
        "hyperactive_threshold": int(net.hyperactive_threshold if threshold is None else threshold),
        "preselect_k": report_k,
        "confidence": "s1 / (max_spikes * L * K)" if native else "1 / (1 + exp(-s1 / (L * K)))",
        "confidence_max_score": max_score,
        "timing": {"seconds": round(seconds, 3),
                   "queries_per_second": round(len(pixels) / seconds, 3) if seconds > 0 else None,
                   "modules_per_query": int(sum(report_k))},
    })
    if net.reference_pixels is not None:
        report["baseline"] = baseline_report(pixels, net.reference_pixels, gt_local, places=places,
                                             sequence_length=sequence_length,
                                             sequence_matcher=sequence_matcher, tolerance=tolerance)
    else:
        report["baseline"] = None
        report["baseline_note"] = "the model stores no reference pixels (trained before they were kept)"
    return report, S, gt_local


def report_confidence(S: np.ndarray, report: dict) -> np.ndarray:
    """Per-query confidence as the report defines it (bounded for z-scores and SeqSLAM)."""
    scale = report.get("confidence_scale")
    if scale:
        return bounded_confidence(S, scale)
    return score_confidence(S, report["confidence_max_score"])


def write_report(out_dir: str | Path, report: dict, S: np.ndarray, gt: np.ndarray,
                 title: str = "") -> None:
    """report.json, pr_curve.png and similarity.png in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    curves = pr_curves(S, gt, confidence=report_confidence(S, report))
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
    return "\n".join(lines)


def replay_extras(model_dir: str | Path, images: Sequence[np.ndarray], answered: Sequence[int], *,
                  sequence_length: int = 1, sequence_matcher: str = "diagonal") -> dict:
    """What the replay report adds from the model: profile, confidence scale and the SAD baseline.

    ``images``: every frame the player publishes, in order (raw, as in the
    bag); ``answered``: the frames the localizer answered (frame k = place k).
    The baseline runs its sequence matcher over all frames, then keeps the
    answered ones, as the network's report does.
    """
    from vprsnn_ros.io.preprocess import preprocess_batch
    from vprsnn_ros.model.ensemble import member_dirs
    from vprsnn_ros.model.store import ModelStore
    from vprsnn_ros.snn.network import NetworkConfig
    from vprsnn_ros.snn.profiles import Profile

    check_matcher(sequence_matcher)
    members = member_dirs(model_dir)
    store = ModelStore.open(members[0])
    meta = store.meta
    profile = Profile.from_dict(meta.get("profile"))
    native = profile.readout == "mean" and sequence_matcher == "diagonal"
    out: dict = {"profile": profile.to_dict(), "readout": profile.readout,
                 "sequence_matcher": sequence_matcher,
                 "confidence_scale": None if native else sequence_length * len(members)}
    if not store.has_part("reference_pixels"):
        out["baseline"] = None
        out["baseline_note"] = "the model stores no reference pixels (trained before they were kept)"
        return out
    config = NetworkConfig.from_dict(meta["config"])
    reference = store.read_part("reference_pixels", {"pixels": ((None, config.n_inputs), "uint8")})["pixels"]
    answered = np.asarray(answered, dtype=np.int64)
    if len(images) > len(reference):
        raise DataError(f"the replay has {len(images)} frames but the model only {len(reference)} places")
    pixels = preprocess_batch(images, config.image_size, config.patch)
    base = baseline_report(pixels, reference, answered, rows=answered, sequence_length=sequence_length,
                           sequence_matcher=sequence_matcher)
    out["baseline"] = base
    return out
