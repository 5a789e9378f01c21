"""The trainer node runs the same training as `vprsnn train`, with every option (issue 15, item 3)."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import yaml

from vprsnn_ros.cli import main as vprsnn
from vprsnn_ros.io.bags import write_bag_from_folder
from vprsnn_ros.io.synthetic import write_route
from vprsnn_ros.model.ensemble import load_model
from vprsnn_ros.model.store import ModelStore

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_node_with_calibration_ensemble_and_exclude_equals_the_cli(tmp_path, ros_domains):
    ref, query = write_route(tmp_path / "route", 14, seed=9)
    exclude = tmp_path / "exclude.csv"
    with exclude.open("w", newline="") as f:
        csv.writer(f).writerows([["filename"], [sorted(p.name for p in ref.iterdir())[5]]])
    query_bag = write_bag_from_folder(query, tmp_path / "query_bag", rate_hz=5.0)
    common = {"neurons": 12, "places_per_module": 3, "epochs": 4, "seed": 3, "ensemble": 2,
              "calibration_places": 6, "epoch_checkpoints": "2", "workers": 1}
    cli_out = tmp_path / "cli_model"
    argv = ["train", "--reference", str(ref), "--out", str(cli_out), "--exclude", str(exclude),
            "--calibration-query", str(query_bag)]
    for key, value in common.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    assert vprsnn(argv) == 0
    node_out = tmp_path / "node_model"
    params = {"reference": [str(ref)], "out": str(node_out), "exclude": str(exclude),
              "calibration_query": str(query_bag), "resume": False, **common}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    env = ros_domains.env(ros_domains.new())
    proc = subprocess.run([sys.executable, "-m", "vprsnn_ros.nodes.trainer_node", "--ros-args",
                           "--params-file", str(params_file)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "hyperactivity threshold T =" in proc.stderr + proc.stdout  # the node logs the choices
    cli_members, node_members = load_model(cli_out), load_model(node_out)
    assert [m.config.seed for m in node_members] == [3, 4]
    for a, b in zip(cli_members, node_members):
        assert a.n_places == b.n_places == 13  # one place excluded
        assert a.n_calibration_modules == b.n_calibration_modules == 2
        for name in ("weights", "theta", "assignments", "active_images"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert a.hyperactive_threshold == b.hyperactive_threshold
        assert a.preselect_k == b.preselect_k
    for seed in ("seed_3", "seed_4"):
        cli_meta, node_meta = ModelStore.open(cli_out / seed).meta, ModelStore.open(node_out / seed).meta
        assert cli_meta["threshold_choice"] == node_meta["threshold_choice"]
        assert cli_meta["calibration"] == node_meta["calibration"]
