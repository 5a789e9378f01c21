"""Profile switch ``threshold_at_k`` (issue 16): with a calibration query and pre-selection,
T and K are chosen together, T at the K modules the network will run.

    T* = argmax_T R@1(T, K(T)),   K(T) = calibrate_k's rule at T,   K* = K(T*)

The tests recompute every (T, K(T)) row with :func:`calibrate_k` on the trained model and
check that training (and extension) recorded exactly that table and its best pair.
"""

from __future__ import annotations

import pytest
from conftest import N16, config16

from vprsnn_ros.eval.evaluation import evaluate
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.snn.network import DEFAULT_T_SWEEP
from vprsnn_ros.snn.preselect import calibrate_k
from vprsnn_ros.snn.profiles import FAITHFUL, TUNED
from vprsnn_ros.train.extend import extend_model
from vprsnn_ros.train.training import train_network

pytestmark = pytest.mark.slow

N_CAL = 8  # two calibration modules of 4 places: K is 1 or every module
# At the trained inhibition: with tuned's 0.25 the 40-neuron modules of these tiny networks
# fire alike on every image and T masks all or none, so the T table would be flat and the
# test could not tell a joint choice from any other.
PROFILE = TUNED.with_(query_inhibition=1.0)


def expected_rows(net, query_pixels) -> list[dict]:
    """(T, K(T), R@1) for every T of the sweep, each K table computed afresh by calibrate_k."""
    mods, places = net.module_split("calibration"), net.split_places("calibration")
    rows = []
    for t in DEFAULT_T_SWEEP:
        k, table = calibrate_k(net, query_pixels, places, mods, t)
        r1 = next(r["recall_at_1"] for r in table if r["k"] == (k or len(mods)))
        rows.append({"threshold": t, "k": k, "recall_at_1": r1})
    return rows


def best_pair(rows: list[dict]) -> tuple[int, int]:
    best = max(rows, key=lambda r: (r["recall_at_1"], -r["threshold"]))
    return best["threshold"], best["k"]


def train(route16, out, profile, places=N16):
    train_network(config16(), [route16.ref_pixels[:places]], [f"p{k:02d}" for k in range(places)], out,
                  workers=2, profile=profile, calibration_places=N_CAL,
                  calibration_query=route16.query_pixels[:N_CAL])
    return ModelStore.open(out).meta, load_network(out)


def test_the_switch_is_off_in_faithful_and_on_in_tuned():
    assert FAITHFUL.threshold_at_k is False and TUNED.threshold_at_k is True


def test_tuned_chooses_t_and_k_together_on_the_calibration_query(route16, tmp_path):
    meta, net = train(route16, tmp_path / "m", PROFILE)
    query = route16.query_pixels[:N_CAL]
    rows = expected_rows(net, query)
    assert len({r["recall_at_1"] for r in rows}) > 1, "a flat T table cannot test the choice"
    choice = meta["threshold_choice"]
    assert choice["method"] == "calibration_at_k"
    assert choice["table"] == rows
    t, k = best_pair(rows)
    assert (meta["hyperactive_threshold"], meta["preselect_k"]) == (t, k)
    assert (net.hyperactive_threshold, net.preselect_k) == (t, k)
    mods, places = net.module_split("calibration"), net.split_places("calibration")
    assert meta["preselect"]["table"] == calibrate_k(net, query, places, mods, t)[1]
    # Never worse on calibration than T chosen with every module and K chosen after it.
    every_module_t = meta["calibration"]["threshold"]
    assert max(r["recall_at_1"] for r in rows) >= next(r for r in rows if r["threshold"] == every_module_t)[
        "recall_at_1"]
    # The model answers the calibration queries as recorded: `evaluate --split calibration`.
    report, _, _ = evaluate([net], route16.query_pixels, split="calibration")
    assert report["recall"]["1"] == max(r["recall_at_1"] for r in rows)


def test_without_the_switch_t_is_chosen_with_every_module(route16, tmp_path):
    meta, net = train(route16, tmp_path / "m", PROFILE.with_(threshold_at_k=False))
    assert meta["threshold_choice"]["method"] == "calibration"
    assert meta["hyperactive_threshold"] == meta["calibration"]["threshold"] == net.hyperactive_threshold
    k, table = calibrate_k(net, route16.query_pixels[:N_CAL], net.split_places("calibration"),
                           net.module_split("calibration"), net.hyperactive_threshold)
    assert meta["preselect"]["table"] == table and net.preselect_k == k


def test_extension_chooses_t_and_k_together_again(route16, tmp_path):
    model = tmp_path / "m"
    train(route16, model, PROFILE, places=12)
    extend_model(model, [route16.ref_pixels[12:]], [f"p{k:02d}" for k in range(12, N16)],
                 calibration_query=route16.query_pixels[:N_CAL])
    meta, net = ModelStore.open(model).meta, load_network(model)
    assert net.n_places == N16
    choice = meta["threshold_choice"]
    assert choice["method"] == "calibration_at_k"
    assert [r["threshold"] for r in choice["table"]] == list(DEFAULT_T_SWEEP)
    assert (meta["hyperactive_threshold"], meta["preselect_k"]) == best_pair(choice["table"])
    assert (net.hyperactive_threshold, net.preselect_k) == best_pair(choice["table"])
    assert meta["calibration"]["recalibrated_places"] == N16


def test_info_says_t_was_chosen_with_k(route16, tmp_path, capsys):
    from vprsnn_ros.cli import main

    meta, _ = train(route16, tmp_path / "m", PROFILE)
    t, k = meta["hyperactive_threshold"], meta["preselect_k"]
    r1 = max(r["recall_at_1"] for r in meta["threshold_choice"]["table"])
    assert main(["info", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert (f"T          {t}, chosen with K on the calibration query: R@1 {r1:.3f} at K = {k or 'every module'} "
            f"on the {N_CAL} calibration places (2 modules)") in out
    assert f"with every module T = {meta['calibration']['threshold']}" in out
