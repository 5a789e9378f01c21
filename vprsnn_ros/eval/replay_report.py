"""What a replay report adds to the localizer's scores: the model's profile, the confidence rule,
the SAD baseline on the same frames, and the worst matches.

The evaluator node (:mod:`vprsnn_ros.nodes.evaluator`) collects the scores the
localizer node published for each frame of a bag; everything it then computes
is here, as plain functions that need no ROS graph.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from vprsnn_ros.atomic import atomic_write_bytes, atomic_write_text
from vprsnn_ros.errors import ConfigError, DataError
from vprsnn_ros.eval.baseline import baseline_report
from vprsnn_ros.eval.loss import place_modules, where_the_loss_is
from vprsnn_ros.eval.metrics import evaluate_scores, pr_curves
from vprsnn_ros.eval.views import match_view, matches_strip
from vprsnn_ros.io.preprocess import preprocess_batch
from vprsnn_ros.model.ensemble import member_dirs
from vprsnn_ros.model.network_io import load_regions, load_thumbnails
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.snn.confidence import ConfidenceRule
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.snn.profiles import Profile
from vprsnn_ros.snn.readout import check_readout
from vprsnn_ros.snn.sequence import check_matcher


def replay_extras(model_dir: str | Path, images: Sequence[np.ndarray], answered: Sequence[int], *,
                  sequence_length: int = 1, sequence_matcher: str = "diagonal",
                  readout: str | None = None, threshold: int | None = None,
                  preselect_k: int | None = None) -> dict:
    """Profile, readout, matcher, the confidence rule's fields and the SAD baseline of a replay.

    ``images``: every frame the player publishes, in order (raw, as in the
    bag); ``answered``: the frames the localizer answered (frame k = place k).
    ``readout``, ``threshold`` and ``preselect_k``: the localizer's overrides
    (None: the model's), recorded as :func:`vprsnn_ros.eval.evaluation.evaluate`
    records them (T, and the modules each member runs per frame). The
    baseline runs its sequence matcher over all frames, then keeps the
    answered ones, as the network's report does.
    """
    check_matcher(sequence_matcher)
    members = member_dirs(model_dir)
    store = ModelStore.open(members[0])
    meta = store.meta
    profile = Profile.from_dict(meta.get("profile"))
    readout = check_readout(profile.readout if readout is None else readout)
    config = NetworkConfig.from_dict(meta["config"])
    rule = ConfidenceRule.for_setup(config, readout, sequence_matcher, sequence_length, len(members))
    regions = load_regions(store)
    column_module = place_modules(regions, int(meta["places"]["count"]))
    ks = []
    for member in members:
        member_meta = ModelStore.open(member).meta
        k = int(member_meta.get("preselect_k", 0)) if preselect_k is None else int(preselect_k)
        ks.append(len(regions) if k <= 0 or k >= len(regions) else k)
    out: dict = {"profile": profile.to_dict(), "readout": readout, "sequence_matcher": sequence_matcher,
                 "hyperactive_threshold": int(meta.get("hyperactive_threshold", 0) if threshold is None
                                              else threshold),
                 "preselect_k": ks, **rule.report_fields(), "column_module": column_module}
    if not store.has_part("reference_pixels"):
        out["baseline"] = None
        out["baseline_note"] = "the model stores no reference pixels (trained before they were kept)"
        return out
    reference = store.read_part("reference_pixels", {"pixels": ((None, config.n_inputs), "uint8")})["pixels"]
    answered = np.asarray(answered, dtype=np.int64)
    if len(images) > len(reference):
        raise DataError(f"the replay has {len(images)} frames but the model only {len(reference)} places")
    pixels = preprocess_batch(images, config.image_size, config.patch)
    out["baseline"] = baseline_report(pixels, reference, answered, rows=answered, sequence_length=sequence_length,
                                      sequence_matcher=sequence_matcher, column_module=column_module)
    return out


def worst_match_rows(stamps: Sequence[int], scored: dict, rule: ConfidenceRule,
                     count: int = 8) -> list[tuple[int, float, int, int]]:
    """The answered frames furthest from their true place (frame k is place k), most confident
    first among equals: rows (error in places, confidence, frame, matched place).

    ``scored[stamp] = (arrival time, scores)``; the confidence is ``rule`` of
    the frame's scores, as in ``report.json`` and ``frames.csv``.
    """
    rows = []
    for k, stamp in enumerate(stamps):
        if stamp not in scored:
            continue
        scores = scored[stamp][1]
        if not np.isfinite(scores).any():
            continue
        best = int(np.argmax(np.where(np.isfinite(scores), scores, -np.inf)))
        rows.append((abs(best - k), float(rule(scores)), k, best))
    rows.sort(key=lambda r: (-r[0], -r[1], r[2]))
    return rows[:count]


def write_replay_report(out: Path, *, model: str, bag: str, names: Sequence[str], stamps: Sequence[int],
                        images: Sequence[np.ndarray], scored: dict, seen: dict, frames_played: int | None,
                        sequence_length: int = 1, sequence_matcher: str = "diagonal",
                        readout: str | None = None, threshold: int | None = None,
                        preselect_k: int | None = None) -> dict:
    """Write a replay's report from the localizer's stamped scores; returns ``report.json``'s content.

    ``scored[stamp] = (arrival time, scores)``, ``seen[stamp] = time the frame
    was seen on the image topic``. Writes ``report.json``, ``frames.csv``,
    ``summary.md``, ``pr_curve.png``, ``similarity.png``, ``route.png`` and
    ``worst_matches.png``; every confidence in them comes from one
    :class:`~vprsnn_ros.snn.confidence.ConfidenceRule`, the localizer's.
    """
    # matplotlib is slow to import: only when a report is written (a failing launch stops faster).
    from vprsnn_ros.eval.plots import save_place_track, save_pr_curve, save_similarity_matrix

    out = Path(out)
    answered = [k for k, s in enumerate(stamps) if s in scored]
    if not answered:
        raise ConfigError("the localizer answered no frame")
    S = np.stack([scored[stamps[k]][1] for k in answered])
    gt = np.asarray(answered)
    S = np.where(np.isfinite(S), S, -np.inf)
    extras = replay_extras(model, images, answered, sequence_length=sequence_length,
                           sequence_matcher=sequence_matcher, readout=readout, threshold=threshold,
                           preselect_k=preselect_k)
    rule = ConfidenceRule.from_report(extras)
    confidence = rule(S)
    report = evaluate_scores(S, gt, confidence=confidence)
    column_module = extras.pop("column_module")
    report.update(extras)
    report["where_loss"] = {"snn": where_the_loss_is(S, gt, column_module)}
    if report.get("baseline"):
        report["where_loss"]["sad"] = report["baseline"].pop("where_loss")
    latencies = np.array([scored[stamps[k]][0] - seen[stamps[k]] for k in answered if stamps[k] in seen]) * 1e3
    report.update({
        "bag": bag, "model": model, "sequence_length": int(sequence_length),
        "frames_played": int(frames_played or len(stamps)),
        "frames_answered": len(answered), "frames_dropped": len(stamps) - len(answered),
        "latency_ms": {p: round(float(np.percentile(latencies, q)), 3) if latencies.size else None
                       for p, q in (("p50", 50), ("p95", 95), ("p99", 99))},
    })
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["frame", "stamp_ns", "name", "place_id", "confidence"])
    best = np.where(np.isfinite(S).any(axis=1), np.argmax(S, axis=1), -1)
    for row, k in enumerate(answered):
        writer.writerow([k, stamps[k], names[k], int(best[row]), f"{confidence[row]:.6f}"])
    atomic_write_text(out / "frames.csv", rows.getvalue())
    curves = pr_curves(S, gt, confidence=confidence)
    save_pr_curve(out / "pr_curve.png", {n: (c[0], c[1]) for n, c in curves.items()}, title="replay")
    save_similarity_matrix(out / "similarity.png", S, gt=gt, title="replay")
    save_place_track(out / "route.png", gt, best, title="estimated vs true place")
    recall, lat = report["recall"], report["latency_ms"]
    atomic_write_text(out / "summary.md", "\n".join([
        f"# Replay of {Path(bag).name}", "",
        f"- frames played {report['frames_played']}, answered {report['frames_answered']}, "
        f"dropped {report['frames_dropped']}",
        f"- R@1 {recall['1']:.3f}, R@5 {recall['5']:.3f}, R@10 {recall['10']:.3f}, "
        f"PR-AUC {report['pr_auc']:.3f}, recall at 100 % precision {report['recall_at_100_precision']:.3f}",
        f"- latency ms p50 {lat['p50']}, p95 {lat['p95']}, p99 {lat['p99']}", ""]))
    write_worst_matches(out, images, worst_match_rows(stamps, scored, rule), model)
    return report


def write_worst_matches(out: Path, images: Sequence[np.ndarray], rows: Sequence[tuple[int, float, int, int]],
                        model: str) -> Path | None:
    """``worst_matches.png``: each row's frame beside its matched place's thumbnail, labelled with
    the place and the row's confidence (:func:`worst_match_rows`)."""
    if not rows:
        return None
    thumbnails = load_thumbnails(model)  # None for models trained without them
    views = [match_view(images[k], thumbnails[best] if thumbnails is not None else None, best, conf,
                        label=f"frame {k} (true {k})")
             for _error, conf, k, best in rows]
    ok, png = cv2.imencode(".png", matches_strip(views))
    if not ok:
        raise ConfigError("cannot encode the worst-matches strip")
    path = Path(out) / "worst_matches.png"
    atomic_write_bytes(path, png.tobytes())
    return path
