"""Where the loss is: did a query fail at module selection, or inside the right module?

For a score matrix S (queries x places) and each query's true place, with
``module(p)`` the module that learned place p::

    true_module_first        = mean_q [ module(argmax_p S[q, p]) == module(true_q) ]
    recall_at_1_given_module = mean_q [ argmax_{p: module(p) = module(true_q)} S[q, p] == true_q ]

The first is the module-selection accuracy of whatever produced S (the SNN, or
the SAD baseline scored on the same places); the second is the accuracy left
once the right module is given. For the template pre-selection stage, the
first is measured on its module ranking directly (:func:`template_module_first`).
Queries without a true place, or with no finite score, are left out.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def place_modules(regions: Sequence[np.ndarray], n_places: int) -> np.ndarray:
    """Module id of every place (n_places,), -1 for a place no module learned."""
    out = np.full(n_places, -1, np.int64)
    for m, region in enumerate(regions):
        out[np.asarray(region, dtype=np.int64)] = m
    return out


def where_the_loss_is(S: np.ndarray, gt: np.ndarray, column_module: np.ndarray,
                      true_module_ran: np.ndarray | None = None) -> dict:
    """``true_module_first`` and ``recall_at_1_given_module`` of S (module docstring).

    ``gt[q]``: the column of query q's true place (-1: none); ``column_module``:
    the module of each column of S. ``true_module_ran[q]``: whether the SNN ran
    the true place's module for query q (pre-selection runs only some): the
    within-module R@1 is then measured on those queries only, since the others
    have no scores inside the true module, and ``true_module_run`` gives their share.
    """
    S = np.where(np.isfinite(S), np.asarray(S, dtype=np.float64), -np.inf)
    gt = np.asarray(gt, dtype=np.int64)
    keep = (gt >= 0) & np.isfinite(S).any(axis=1)
    if not keep.any():
        return {"queries": 0, "true_module_first": None, "recall_at_1_given_module": None}
    S, gt = S[keep], gt[keep]
    true_module = column_module[gt]
    best = np.argmax(S, axis=1)
    in_module = column_module[None, :] == true_module[:, None]
    within = np.argmax(np.where(in_module, S, -np.inf), axis=1) == gt
    out = {"queries": int(keep.sum()), "true_module_first": float(np.mean(column_module[best] == true_module))}
    if true_module_ran is None:
        out["recall_at_1_given_module"] = float(np.mean(within))
        return out
    ran = np.asarray(true_module_ran, dtype=bool)[keep]
    out["true_module_run"] = float(np.mean(ran))
    out["recall_at_1_given_module"] = float(np.mean(within[ran])) if ran.any() else None
    return out


def template_module_first(module_scores: np.ndarray, candidates: np.ndarray, true_modules: np.ndarray) -> dict:
    """How often the template pre-selection ranks the true place's module first.

    ``module_scores`` (Q, len(candidates)) from
    :meth:`vprsnn_ros.snn.preselect.ModuleRanker.module_scores`; ``true_modules``
    (Q,), -1 for queries without a true place.
    """
    keep = np.asarray(true_modules) >= 0
    if not keep.any():
        return {"queries": 0, "true_module_first": None}
    first = np.asarray(candidates)[np.argmax(module_scores[keep], axis=1)]
    return {"queries": int(keep.sum()), "true_module_first": float(np.mean(first == true_modules[keep]))}


def format_where_loss(where: dict) -> str:
    """One line for the terminal report."""
    def f(value) -> str:
        return "-" if value is None else f"{value:.3f}"
    snn, sad, tpl = where.get("snn") or {}, where.get("sad") or {}, where.get("templates") or {}
    line = (f"true place's module ranked first: SNN {f(snn.get('true_module_first'))}")
    if tpl:
        line += f", templates {f(tpl.get('true_module_first'))}"
    if sad:
        line += f", SAD {f(sad.get('true_module_first'))}"
    line += f"   R@1 given the true module: SNN {f(snn.get('recall_at_1_given_module'))}"
    if "true_module_run" in snn:
        line += f" (on the {f(snn['true_module_run'])} of queries whose true module ran)"
    if sad:
        line += f", SAD {f(sad.get('recall_at_1_given_module'))}"
        if "recall_at_1_given_module_where_snn_ran" in sad:
            line += f" (SAD on the same queries {f(sad['recall_at_1_given_module_where_snn_ran'])})"
    return line
