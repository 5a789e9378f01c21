"""``evaluator``: score a replayed bag from the localizer's outputs and write a report.

    evaluator --ros-args -p bag:=query.mcap -p model:=models/route -p report_dir:=reports/replay

It lists the frames the player will publish (same bag, topic and sampling),
records when each frame is seen on ``image`` and when the localizer's stamped
``~/scores`` for it arrives, and after the player's ``~/done`` writes the
report: the offline evaluation's metrics (frame k of the bag is place k),
``latency_ms`` (p50/p95/p99, frame seen -> scores received), ``frames_played``,
``frames_dropped``, per-frame CSV, a Markdown summary, the plots and
``worst_matches.png`` (the worst matches beside their places' thumbnails).
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Int32

from vprsnn_ros.atomic import atomic_write_bytes, atomic_write_text
from vprsnn_ros.errors import ConfigError
from vprsnn_ros.eval.evaluation import replay_extras, report_confidence
from vprsnn_ros.eval.metrics import evaluate_scores, pr_curves
from vprsnn_ros.eval.views import match_view, matches_strip
from vprsnn_ros.io.bags import read_bag_frames
from vprsnn_ros.localizer import max_spikes_per_neuron, score_confidence
from vprsnn_ros.model.ensemble import member_dirs
from vprsnn_ros.model.network_io import load_thumbnails
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.nodes.bag_player import LATCHED
from vprsnn_ros.nodes.job import run_job
from vprsnn_ros.snn.network import NetworkConfig


def stamp_ns(header) -> int:
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


class Evaluator(Node):

    def __init__(self) -> None:
        super().__init__("vprsnn_evaluator")
        d = ParameterDescriptor
        self.declare_parameter("bag", "", d(description="the bag being replayed"))
        self.declare_parameter("topic", "", d(description="its image topic ('' = the only one)"))
        self.declare_parameter("every", 1, d(description="sampling of the player"))
        self.declare_parameter("limit", 0, d(description="sampling of the player (0 = all)"))
        self.declare_parameter("model", "", d(description="the localizer's model (for the confidence scale)"))
        self.declare_parameter("sequence_length", 1, d(description="the localizer's sequence length"))
        self.declare_parameter("sequence_matcher", "diagonal",
                               d(description="the localizer's sequence matcher (diagonal or seqslam)"))
        self.declare_parameter("report_dir", "replay_report", d(description="where the report is written"))
        self.declare_parameter("scores_topic", "/vprsnn_localizer/scores", d(description="stamped scores"))
        self.declare_parameter("done_topic", "/vprsnn_bag_player/done", d(description="end of the replay"))
        self.declare_parameter("settle", 3.0, d(description="seconds to wait for answers after the end"))
        self.declare_parameter("timeout", 3600.0, d(description="give up after this many seconds"))
        self.seen: dict[int, float] = {}
        self.scored: dict[int, tuple[float, np.ndarray]] = {}
        self.done_count: int | None = None
        self.last_event = time.monotonic()
        # Deep queues: nothing the localizer answers may be lost on the way to the report.
        deep = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1000)
        self.image_sub = self.create_subscription(Image, "image", self._on_image, deep)
        # Transient local, like the localizer's ~/scores: scores answered before the localizer's
        # writer matched this reader are still delivered.
        self.scores_sub = self.create_subscription(Image, self.get_parameter("scores_topic").value,
                                                   self._on_scores, QoSProfile(
                                                       reliability=ReliabilityPolicy.RELIABLE,
                                                       history=HistoryPolicy.KEEP_LAST, depth=1000,
                                                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.create_subscription(Int32, self.get_parameter("done_topic").value, self._on_done, LATCHED)
        # Tells the player that nothing it publishes from now on can be missed here.
        self.ready_pub = self.create_publisher(Int32, "~/ready", LATCHED)
        self._ready_timer = self.create_timer(0.05, self._check_ready)

    def _check_ready(self) -> None:
        if self.scores_sub.get_publisher_count() > 0 and self.image_sub.get_publisher_count() > 0:
            self.ready_pub.publish(Int32(data=1))
            self._ready_timer.cancel()

    def _get(self, name: str):
        return self.get_parameter(name).value

    def _on_image(self, msg: Image) -> None:
        self.seen.setdefault(stamp_ns(msg.header), time.monotonic())
        self.last_event = time.monotonic()

    def _on_scores(self, msg: Image) -> None:
        scores = np.frombuffer(bytes(msg.data), dtype=np.float32).astype(np.float64)
        self.scored[stamp_ns(msg.header)] = (time.monotonic(), scores)
        self.last_event = time.monotonic()

    def _on_done(self, msg: Int32) -> None:
        self.done_count = int(msg.data)
        self.last_event = time.monotonic()

    def run(self, executor: SingleThreadedExecutor) -> dict:
        model = self._get("model")
        if not model:
            raise ConfigError("parameter 'model' is required")
        members = member_dirs(model)  # a missing model fails before the bag is read
        frames = read_bag_frames(self._get("bag"), topic=self._get("topic") or None, every=self._get("every"),
                                 limit=self._get("limit") or None)
        stamps = [int(s) for s in frames.stamps_ns]
        config = NetworkConfig.from_dict(ModelStore.open(members[0]).meta["config"])
        max_score = max_spikes_per_neuron(config) * int(self._get("sequence_length")) * len(members)
        started = time.monotonic()
        while time.monotonic() - started < float(self._get("timeout")):
            executor.spin_once(timeout_sec=0.05)
            if self.done_count is not None and time.monotonic() - self.last_event > float(self._get("settle")):
                break
        else:
            raise ConfigError("the replay did not finish before the timeout")
        self._images = frames.images
        report = self._report(frames.names, stamps, max_score)
        write_worst_matches(Path(self._get("report_dir")), frames.images, stamps, self.scored, model, max_score)
        return report

    def _report(self, names: list[str], stamps: list[int], max_score: float) -> dict:
        # matplotlib is slow to import: only when a report is written (a failing launch stops faster).
        from vprsnn_ros.eval.plots import save_place_track, save_pr_curve, save_similarity_matrix

        out = Path(self._get("report_dir"))
        out.mkdir(parents=True, exist_ok=True)
        answered = [k for k, s in enumerate(stamps) if s in self.scored]
        if not answered:
            raise ConfigError("the localizer answered no frame")
        S = np.stack([self.scored[stamps[k]][1] for k in answered])
        gt = np.asarray(answered)
        S = np.where(np.isfinite(S), S, -np.inf)
        # Profile, confidence scale and the SAD baseline on the same frames (evaluation.py).
        extras = replay_extras(self._get("model"), self._images, answered,
                               sequence_length=int(self._get("sequence_length")),
                               sequence_matcher=self._get("sequence_matcher"))
        confidence = report_confidence(S, {"confidence_max_score": max_score, **extras})
        report = evaluate_scores(S, gt, confidence=confidence)
        report.update(extras)
        latencies = np.array([self.scored[stamps[k]][0] - self.seen[stamps[k]]
                              for k in answered if stamps[k] in self.seen]) * 1e3
        report.update({
            "bag": self._get("bag"), "model": self._get("model"),
            "sequence_length": int(self._get("sequence_length")),
            "frames_played": int(self.done_count or len(stamps)),
            "frames_answered": len(answered), "frames_dropped": len(stamps) - len(answered),
            "latency_ms": {p: round(float(np.percentile(latencies, q)), 3) if latencies.size else None
                           for p, q in (("p50", 50), ("p95", 95), ("p99", 99))},
        })
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
        recall = report["recall"]
        lat = report["latency_ms"]
        atomic_write_text(out / "summary.md", "\n".join([
            f"# Replay of {Path(self._get('bag')).name}", "",
            f"- frames played {report['frames_played']}, answered {report['frames_answered']}, "
            f"dropped {report['frames_dropped']}",
            f"- R@1 {recall['1']:.3f}, R@5 {recall['5']:.3f}, R@10 {recall['10']:.3f}, "
            f"PR-AUC {report['pr_auc']:.3f}, recall at 100 % precision {report['recall_at_100_precision']:.3f}",
            f"- latency ms p50 {lat['p50']}, p95 {lat['p95']}, p99 {lat['p99']}", ""]))
        self.get_logger().info(f"report written to {out}: R@1 {recall['1']:.3f}, "
                               f"{report['frames_dropped']} dropped")
        return report


def write_worst_matches(out: Path, images, stamps: list[int], scored: dict, model: str, max_score: float,
                        count: int = 8) -> Path | None:
    """``worst_matches.png``: the answered frames furthest from their true place (frame k is
    place k), most confident first among equals, each beside its matched place's thumbnail."""
    rows = []
    for k, stamp in enumerate(stamps):
        if stamp not in scored:
            continue
        scores = scored[stamp][1]
        if not np.isfinite(scores).any():
            continue
        best = int(np.argmax(np.where(np.isfinite(scores), scores, -np.inf)))
        rows.append((abs(best - k), float(score_confidence(scores, max_score)), k, best))
    if not rows:
        return None
    rows.sort(key=lambda r: (-r[0], -r[1], r[2]))
    thumbnails = load_thumbnails(model)  # None for models trained without them
    views = [match_view(images[k], thumbnails[best] if thumbnails is not None else None, best, conf,
                        label=f"frame {k} (true {k})")
             for error, conf, k, best in rows[:count]]
    ok, png = cv2.imencode(".png", matches_strip(views))
    if not ok:
        raise ConfigError("cannot encode the worst-matches strip")
    path = out / "worst_matches.png"
    atomic_write_bytes(path, png.tobytes())
    return path


def main(args: list[str] | None = None) -> int:
    return run_job("evaluator", Evaluator, lambda node, executor: node.run(executor), args)


if __name__ == "__main__":
    sys.exit(main())
