"""The replay evaluation stores the SAD baseline and the profile beside the node's results."""
from __future__ import annotations

import pytest

from vprsnn_ros.eval.evaluation import evaluate
from vprsnn_ros.eval.replay import replay_evaluate
from vprsnn_ros.io.bags import write_bag_from_folder
from vprsnn_ros.io.sources import load_traverse
from vprsnn_ros.io.synthetic import write_route
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.snn.profiles import TUNED
from vprsnn_ros.train.training import train_network

pytestmark = [pytest.mark.ros, pytest.mark.slow]  # the player, the localizer and the evaluator over DDS

N = 8


def test_replay_report_has_the_offline_baseline_and_profile(tmp_path, ros_domain):
    ref, query = write_route(tmp_path / "route", N, seed=4)
    reference = load_traverse(ref, (28, 28), 7)
    cfg = NetworkConfig(n_neurons=20, places_per_module=4, epochs=4, assign_presentations=8)
    train_network(cfg, [reference.pixels], reference.names, tmp_path / "model", workers=1, profile=TUNED)
    bag = write_bag_from_folder(query, tmp_path / "query_bag", rate_hz=10.0, start_time_ns=10**18)
    report = replay_evaluate(tmp_path / "model", bag, tmp_path / "out", mode="lockstep",
                             sequence_length=2, timeout=300)
    offline, _, _ = evaluate([load_network(tmp_path / "model")], load_traverse(bag, (28, 28), 7).pixels,
                             split="all", sequence_length=2)
    assert report["frames_dropped"] == 0
    assert report["profile"] == offline["profile"] == TUNED.to_dict()
    assert report["baseline"]["recall"] == offline["baseline"]["recall"]
    assert report["baseline"]["pr_auc"] == pytest.approx(offline["baseline"]["pr_auc"])
    # The node runs the model's zscore readout: same ranking as offline.
    assert report["recall"] == offline["recall"]
    assert report["pr_auc"] == pytest.approx(offline["pr_auc"])
