"""Bags through the CLI: write a bag from a folder, train and evaluate from bags."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from vprsnn_ros.io.synthetic import write_route
from vprsnn_ros.model.network_io import load_network

TRAIN = ["--neurons", "20", "--places-per-module", "5", "--epochs", "3", "--workers", "1"]


def vprsnn(*args, cwd):
    return subprocess.run([sys.executable, "-m", "vprsnn_ros.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def route(tmp_path_factory):
    work = tmp_path_factory.mktemp("bagroute")
    ref, query = write_route(work / "route", 10, seed=4)
    return work, ref, query


@pytest.mark.parametrize("storage,compressed", [("mcap", False), ("sqlite3", True)])
def test_training_from_a_bag_equals_training_from_its_folder(route, storage, compressed):
    work, ref, query = route
    tag = f"{storage}{'_c' if compressed else ''}"
    bag = work / f"ref_{tag}"
    r = vprsnn("bag", "from-folder", ref, "--out", bag, "--storage", storage, "--rate", 5,
               *(["--compressed"] if compressed else []), cwd=work)
    assert r.returncode == 0, r.stderr
    info = vprsnn("bag", "info", bag, cwd=work)
    assert info.returncode == 0 and "/camera/image_raw" in info.stdout and " 10 " in info.stdout
    assert vprsnn("train", "--reference", ref, "--out", work / f"m_folder_{tag}", *TRAIN, cwd=work).returncode == 0
    r = vprsnn("train", "--reference", bag, "--out", work / f"m_bag_{tag}", *TRAIN, cwd=work)
    assert r.returncode == 0, r.stderr
    a, b = load_network(work / f"m_folder_{tag}"), load_network(work / f"m_bag_{tag}")
    assert np.array_equal(a.weights, b.weights) and np.array_equal(a.assignments, b.assignments)
    qbag = work / f"query_{tag}"
    assert vprsnn("bag", "from-folder", query, "--out", qbag, "--storage", storage, cwd=work).returncode == 0
    for q, name in ((query, "folder"), (qbag, "bag")):
        r = vprsnn("evaluate", "--model", work / f"m_bag_{tag}", "--query", q,
                   "--report", work / f"rep_{tag}_{name}", cwd=work)
        assert r.returncode == 0, r.stderr
    folder_report = json.loads((work / f"rep_{tag}_folder" / "report.json").read_text())
    bag_report = json.loads((work / f"rep_{tag}_bag" / "report.json").read_text())
    assert folder_report["recall"] == bag_report["recall"]


def test_bad_bag_and_options_end_with_one_error_line(route, tmp_path):
    work, ref, _ = route
    bag = tmp_path / "ref"
    assert vprsnn("bag", "from-folder", ref, "--out", bag, cwd=tmp_path).returncode == 0
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    cases = [
        ("train", "--reference", bag, "--out", tmp_path / "m1", *TRAIN),
        ("train", "--reference", ref, "--out", tmp_path / "m2", "--every-seconds", "1", *TRAIN),
        ("bag", "from-folder", ref, "--out", bag),
        ("bag", "info", tmp_path / "nothing.mcap"),
    ]
    for args in cases:
        r = vprsnn(*args, cwd=tmp_path)
        lines = [line for line in r.stderr.splitlines() if line.strip() and "%|" not in line]
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr and lines[-1].startswith("vprsnn: error:"), r.stderr
    assert not (tmp_path / "m1").exists() and not (tmp_path / "m2").exists()
