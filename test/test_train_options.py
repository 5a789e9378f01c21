"""One set of training defaults: the CLI, the trainer node and config/train.yaml read TrainOptions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vprsnn_ros.cli import build_parser
from vprsnn_ros.errors import ConfigError
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.snn.profiles import DEFAULT_PROFILE
from vprsnn_ros.train.options import TrainOptions, from_node_values, node_default, option, option_fields

ROOT = Path(__file__).resolve().parents[1]


def test_network_defaults_are_network_configs():
    opts = TrainOptions(reference=["r"], out="o")
    assert opts.network_config() == NetworkConfig()
    assert opts.profile == DEFAULT_PROFILE


def test_cli_defaults_are_the_options_defaults():
    args = build_parser().parse_args(["train", "--reference", "r", "--out", "o"])
    for f in option_fields():
        if f.name not in ("reference", "out"):
            assert getattr(args, f.name) == f.default, f.name
    assert args.reference == ["r"] and args.out == "o"


def test_every_option_is_a_cli_option_and_a_node_parameter():
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    dests = {a.dest for a in train._actions} - {"help", "func"}
    assert dests == {f.name for f in option_fields()}


def test_config_train_yaml_agrees_with_the_node_defaults():
    params = yaml.safe_load((ROOT / "config" / "train.yaml").read_text())["/**"]["ros__parameters"]
    assert set(params) == {f.name for f in option_fields()} | {"wait_for_monitor"}
    for f in option_fields():
        if f.name in ("reference", "out"):  # examples of what a user fills in
            continue
        assert params[f.name] == node_default(f), f.name
        assert type(params[f.name]) is type(node_default(f)), f.name  # ROS parameters are typed


def test_node_values_map_back_to_the_cli_options():
    values = {f.name: node_default(f) for f in option_fields()}
    values.update(reference=["a", ""], out="m", limit=0, topic="", every_seconds=0.0)
    opts = from_node_values(values)
    assert opts.reference == ["a"] and opts.limit is None and opts.topic is None and opts.every_seconds is None
    assert opts.resume is True  # the node resumes by default; the CLI needs --resume
    assert TrainOptions().resume is False and option("resume").default is False


def test_epoch_checkpoints_are_checked():
    assert TrainOptions(epochs=10, epoch_checkpoints="2, 5").checkpoints() == [2, 5]
    with pytest.raises(ConfigError, match="comma-separated"):
        TrainOptions(epoch_checkpoints="abc").checkpoints()
    with pytest.raises(ConfigError, match=r"\[1, --epochs 10\]"):
        TrainOptions(epochs=10, epoch_checkpoints="11").checkpoints()
