"""Where the loss is (issue 16, item 5): module selection vs. the right place inside the true module."""

from __future__ import annotations

import numpy as np

from vprsnn_ros.eval.evaluation import evaluate, format_report
from vprsnn_ros.eval.loss import place_modules, template_module_first, where_the_loss_is
from vprsnn_ros.model.ensemble import load_model
from vprsnn_ros.snn.inference import Scorer
from vprsnn_ros.snn.preselect import ModuleRanker


def test_where_the_loss_is_by_hand():
    column_module = np.array([0, 0, 1, 1, 2, 2])
    S = np.array([
        [9, 1, 0, 0, 0, 0],        # true 0: module 0 first, right place in it
        [0, 1, 9, 0, 0, 0],        # true 1: module 1 first (wrong); within module 0: place 1 (right)
        [0, 0, 0, 0, 1, 9],        # true 4: module 2 first (right); within: place 5 (wrong)
        [0, 9, 0, 0, 0, 0],        # true 3: module 0 first (wrong); within module 1: tie 2 vs 3 -> 2 (wrong)
        [-np.inf] * 6,             # nothing finite: left out
        [1, 0, 0, 0, 0, 0],        # no true place: left out
    ], float)
    gt = np.array([0, 1, 4, 3, 2, -1])
    got = where_the_loss_is(S, gt, column_module)
    assert got == {"queries": 4, "true_module_first": 0.5, "recall_at_1_given_module": 0.5}
    assert where_the_loss_is(S, np.full(6, -1), column_module)["true_module_first"] is None
    # Within the true module only where it ran: queries 0 and 2 ran it (right, wrong), 1 and 3 did not.
    ran = where_the_loss_is(S, gt, column_module, np.array([True, False, True, False, True, True]))
    assert ran == {"queries": 4, "true_module_first": 0.5, "true_module_run": 0.5, "recall_at_1_given_module": 0.5}
    assert template_module_first(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([4, 7]), np.array([7, 7])) == {
        "queries": 2, "true_module_first": 0.5}


def test_one_module_means_module_selection_never_fails():
    rng = np.random.default_rng(0)
    S = rng.random((20, 8))
    gt = rng.integers(0, 8, 20)
    got = where_the_loss_is(S, gt, np.zeros(8, np.int64))
    assert got["true_module_first"] == 1.0
    assert got["recall_at_1_given_module"] == float(np.mean(np.argmax(S, axis=1) == gt))


def test_every_report_says_where_the_loss_is(model16_tuned, route16):
    members = load_model(model16_tuned)
    net = members[0]
    report, S, gt = evaluate(members, route16.query_pixels)
    where = report["where_loss"]
    column_module = place_modules(net.regions, net.n_places)
    # The within-module R@1 counts only the queries whose true module the SNN ran.
    ran_modules = Scorer(members).choose_modules(route16.query_pixels)[0]
    ran_modules = np.broadcast_to(np.arange(net.n_modules), (16, net.n_modules)) if ran_modules is None \
        else ran_modules
    ran = np.array([column_module[q] in ran_modules[q] for q in range(16)])
    assert where["snn"] == where_the_loss_is(S, gt, column_module, ran)
    assert where["snn"]["true_module_run"] == float(np.mean(ran))
    ranker = ModuleRanker(net)
    first = ranker.modules[np.argmax(ranker.module_scores(route16.query_pixels), axis=1)]
    assert where["templates"]["true_module_first"] == float(np.mean(first == column_module[np.arange(16)]))
    assert set(where["sad"]) - {"recall_at_1_given_module_where_snn_ran"} == {
        "queries", "true_module_first", "recall_at_1_given_module"}
    # Like for like: SAD within the true module on the queries whose true module the SNN ran.
    if not ran.all():
        assert "recall_at_1_given_module_where_snn_ran" in where["sad"]
    assert where["sad"]["queries"] == 16
    assert "R@1 given the true module: SNN" in format_report(report)
