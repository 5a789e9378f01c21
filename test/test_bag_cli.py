"""Bags through the CLI: write a bag from a folder, train and evaluate from bags."""

from __future__ import annotations

import json
import shutil
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


@pytest.mark.slow
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


@pytest.fixture(scope="module")
def cut_bag_once(route):
    """A bag of the reference whose .mcap file lost its second half."""
    work, ref, _ = route
    bag = work / "cut"
    assert vprsnn("bag", "from-folder", ref, "--out", bag, cwd=work).returncode == 0
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    return bag


@pytest.fixture
def cut_bag(cut_bag_once, tmp_path):
    """The test's own copy of the cut bag: (bag folder, its .mcap file)."""
    bag = tmp_path / "ref"
    shutil.copytree(cut_bag_once, bag)
    return bag, next(bag.glob("*.mcap"))


BAD_BAG_CASES = {
    # the command, and what its one error line names
    "train-from-a-cut-bag": (lambda bag, mcap, ref, tmp: ("train", "--reference", bag, "--out", tmp / "m1", *TRAIN),
                             lambda bag, mcap: [str(bag), "truncated"]),
    "every-seconds-on-a-folder": (lambda bag, mcap, ref, tmp: ("train", "--reference", ref, "--out", tmp / "m2",
                                                               "--every-seconds", "1", *TRAIN),
                                  lambda bag, mcap: ["--every-seconds"]),
    "bag-over-an-existing-bag": (lambda bag, mcap, ref, tmp: ("bag", "from-folder", ref, "--out", bag),
                                 lambda bag, mcap: [str(bag)]),
    "info-of-a-missing-bag": (lambda bag, mcap, ref, tmp: ("bag", "info", tmp / "nothing.mcap"),
                              lambda bag, mcap: ["nothing.mcap"]),
}


@pytest.mark.parametrize("case", [
    # the fast subset (-m "not slow") runs two of them
    pytest.param(c, marks=() if c in ("train-from-a-cut-bag", "bag-over-an-existing-bag") else pytest.mark.slow)
    for c in BAD_BAG_CASES])
def test_bad_bag_and_options_end_with_one_error_line(route, tmp_path, cut_bag, bad_input, case):
    _, ref, _ = route
    bag, mcap = cut_bag
    command, words = BAD_BAG_CASES[case]
    bad_input.watch(tmp_path)  # no model, no new bag, the existing (cut) bag byte for byte
    bad_input(vprsnn(*command(bag, mcap, ref, tmp_path), cwd=tmp_path), *words(bag, mcap))
