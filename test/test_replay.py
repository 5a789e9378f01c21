"""Replay evaluation: bag -> player -> localizer node -> evaluator, against the offline path."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from vprsnn_ros.eval.evaluation import evaluate
from vprsnn_ros.eval.replay import replay_evaluate
from vprsnn_ros.io.bags import write_bag_from_folder
from vprsnn_ros.io.sources import load_traverse
from vprsnn_ros.io.synthetic import write_route
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.train.training import train_network

pytestmark = [pytest.mark.ros, pytest.mark.slow]  # the player, the localizer and the evaluator over DDS

N = 12


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = tmp_path_factory.mktemp("replay")
    ref, query = write_route(work / "route", N, seed=8)
    reference = load_traverse(ref, (28, 28), 7)
    cfg = NetworkConfig(n_neurons=30, places_per_module=4, epochs=8, assign_presentations=16)
    train_network(cfg, [reference.pixels], reference.names, work / "model", workers=1)
    bag = write_bag_from_folder(query, work / "query_bag", rate_hz=10.0, start_time_ns=10**18)
    return work, bag


@pytest.mark.parametrize("length", [1, 3])
def test_lockstep_replay_matches_offline_evaluation(setup, ros_domain, length):
    work, bag = setup
    out = work / f"lockstep_{length}"
    report = replay_evaluate(work / "model", bag, out, mode="lockstep", sequence_length=length, timeout=300)
    with (out / "frames.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == N and report["frames_played"] == N and report["frames_dropped"] == 0
    query = load_traverse(bag, (28, 28), 7)
    offline, S, _ = evaluate([load_network(work / "model")], query.pixels, split="all",
                             sequence_length=length)
    defined = np.isfinite(S).any(axis=1)
    expected = np.where(defined, np.argmax(S, axis=1), -1)
    assert [int(r["place_id"]) for r in rows] == expected.tolist()
    assert report["recall"] == offline["recall"]
    assert report["pr_auc"] == pytest.approx(offline["pr_auc"])
    for name in ("report.json", "frames.csv", "summary.md", "pr_curve.png", "similarity.png", "route.png"):
        assert (out / name).exists(), name
    assert set(report["latency_ms"]) == {"p50", "p95", "p99"}


def test_realtime_replay_reports_drops_and_latency(setup, ros_domain):
    work, bag = setup
    out = work / "realtime"
    report = replay_evaluate(work / "model", bag, out, mode="realtime", rate_factor=2.0, timeout=300)
    saved = json.loads((out / "report.json").read_text())
    assert saved["frames_played"] == N
    assert saved["frames_answered"] + saved["frames_dropped"] == N
    assert saved["latency_ms"]["p50"] is not None and saved["latency_ms"]["p99"] >= saved["latency_ms"]["p50"]
    assert report == saved
