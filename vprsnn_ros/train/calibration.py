"""Choosing what training cannot learn by STDP: the hyperactivity threshold T, the epoch count
and the pre-selection K, on calibration queries when given, else on the reference itself.

Without query images (profile switches ``auto_threshold`` and ``preselect``):

* **T**: the network must recognise a second, differently seeded presentation
  of its own reference traverse; the T with the best R@1 wins (the smallest among equals).
* **K**: the same self-recognition is too easy for the template stage (a
  reference image is its own template's best match), so the reference is first
  *perturbed* the way a change of appearance perturbs a query: each image is
  shifted by up to one pixel, its contrast bent by a random gamma and noise is
  added (:func:`perturb_reference`). K is then chosen by the rule used with
  calibration queries (:func:`vprsnn_ros.snn.preselect.calibrate_k`): the
  cheapest K whose R@1 is within 0.005 of every module's.

With calibration queries and the profile switch ``threshold_at_k``, T and K are chosen
together (:func:`choose_threshold_at_k`): T at the K modules pre-selection will run.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from vprsnn_ros.eval.metrics import recall_at_n
from vprsnn_ros.snn.network import DEFAULT_T_SWEEP, ModularSNN
from vprsnn_ros.snn.preselect import DEFAULT_K_SWEEP, ModuleRanker, calibrate_k, preselected_scores
from vprsnn_ros.snn.profiles import Profile

ProgressFn = Callable[[int, int, str], None]

# The second presentation of the reference that chooses T without queries: yet other streams.
_SELF_TEST_STREAM = 2 << 40


# Perturbed reference queries that choose K without queries: streams of their own.
_PERTURBED_STREAM = 3 << 40
# At most this many reference places are perturbed and recognised to choose K (evenly spaced).
K_QUERIES = 600
# The perturbation (pixels of the 0..255 preprocessed image): shifts, gamma range, noise std.
PERTURBATION = {"shift_pixels": 1, "gamma": [0.6, 1.6], "noise_std": 16.0}


def _quiet(done: int, total: int, message: str) -> None:
    pass


def choose_threshold_without_queries(net: ModularSNN, reference_rates: np.ndarray,
                                     sweep: Sequence[int] = DEFAULT_T_SWEEP,
                                     progress: ProgressFn = _quiet,
                                     readout: str = "mean") -> tuple[int, list[dict]]:
    """Pick T with no query image: R@1 of the network on a second presentation of its own reference.

    Each reference image is presented again with another Poisson stream (as a
    query would be) and must be recognised as its own place among all places.
    A hyperactive neuron votes for its place whatever the image, so masking the
    right ones raises this self-recognition; masking too many removes the
    neurons that carry the places. The T with the best R@1 wins, the smallest
    among equals (least removal), scored with ``readout`` (the one the model
    will run with). Returns (T, [{threshold, recall_at_1, masked}]).
    """
    n = len(reference_rates)
    counts = np.concatenate([
        net.spike_counts(reference_rates[s:s + 64], np.arange(s, min(s + 64, n)) + _SELF_TEST_STREAM)
        for s in range(0, n, 64)]) if n else np.zeros((0, net.n_modules, net.config.n_neurons))
    progress(n, n, "choosing T on the reference")
    rows = []
    for t in sweep:
        S = net.scores(counts, threshold=t, readout=readout)
        rows.append({"threshold": int(t), "recall_at_1": float(recall_at_n(S, ns=(1,))[1]),
                     "masked": net.n_masked(t)})
    best = max(rows, key=lambda r: (r["recall_at_1"], -r["threshold"]))
    return best["threshold"], rows


def calibration_rows(net: ModularSNN, counts: np.ndarray,
                     sweep: Sequence[int] = DEFAULT_T_SWEEP) -> list[dict]:
    """R@1 of the calibration split for each hyperactivity threshold T.

    ``counts`` (Q, M_cal, N): spike counts of the calibration modules for the
    calibration queries, query k being the k-th place of the calibration split;
    only the calibration modules compete, as in the published protocol.
    """
    mods = net.module_split("calibration")
    places = net.split_places("calibration")
    rows = []
    for t in sweep:
        S = net.scores(counts, modules=mods, threshold=t)[:, places]
        rows.append({"threshold": int(t), "recall_at_1": float(recall_at_n(S, ns=(1,))[1]),
                     "masked": net.n_masked(t)})
    return rows


def best_row(rows: list[dict]) -> dict:
    """Highest R@1; among equals the smallest epochs, then the smallest T (least removal)."""
    return max(rows, key=lambda r: (r["recall_at_1"], -r.get("epochs", 0), -r["threshold"]))


def threshold_choice(net: ModularSNN, meta: dict, calibrated: bool, profile: Profile,
                      reference_rates: np.ndarray, sweep: Sequence[int],
                      progress: ProgressFn) -> tuple[int, dict]:
    """T and the record of why (``model.yaml`` key ``threshold_choice``)."""
    if calibrated:
        return int(meta["calibration"]["threshold"]), {
            "method": "calibration", "reason": "best R@1 on the calibration query"}
    if profile.auto_threshold:
        t, table = choose_threshold_without_queries(net, reference_rates, sweep, progress,
                                                    readout=profile.readout)
        best = next(r for r in table if r["threshold"] == t)
        return t, {"method": "reference_self_recognition",
                   "reason": f"best R@1 ({best['recall_at_1']:.3f}, {profile.readout} readout) recognising "
                             f"a second presentation of the reference traverse; no calibration query given",
                   "table": table}
    return 0, {"method": "none",
               "reason": "no calibration query and profile switch auto_threshold off: no masking"}


def choose_threshold_at_k(net: ModularSNN, query_pixels: np.ndarray,
                          t_sweep: Sequence[int] = DEFAULT_T_SWEEP) -> tuple[int, int, list[dict], dict]:
    """T and K together on the calibration queries (profile switch ``threshold_at_k``).

    Masking hyperactive neurons helps most when every module competes, since a
    hyperactive neuron then wins queries in every module; with the few modules
    pre-selection runs it can cost more than it gains (3,300 Nordland places: the
    best T with every module is 20, and at K = 1 T = 0 is best, 0.247 against
    0.195). So for each T of the sweep K(T) is chosen by the rule of
    :func:`vprsnn_ros.snn.preselect.calibrate_k`, and

        T* = argmax_T R@1(T, K(T))   (the smallest T among equals),  K* = K(T*).

    ``query_pixels``: the calibration queries, query k showing the k-th calibration
    place. Returns (T*, K*, the K table at T*, the ``threshold_choice`` record with
    the table of (T, K(T), R@1)).
    """
    mods, places = net.module_split("calibration"), net.split_places("calibration")
    counts = net.spike_counts(net.config.input_rates(query_pixels), np.arange(len(query_pixels)), modules=mods)
    rows, k_tables = [], {}
    for t in t_sweep:
        k, k_tables[int(t)] = calibrate_k(net, query_pixels, places, mods, int(t), counts=counts)
        chosen = next(r for r in k_tables[int(t)] if r["k"] == (k or len(mods)))
        rows.append({"threshold": int(t), "k": int(k), "recall_at_1": chosen["recall_at_1"]})
    best = max(rows, key=lambda r: (r["recall_at_1"], -r["threshold"]))
    k_name = best["k"] or "every module"
    return best["threshold"], best["k"], k_tables[best["threshold"]], {
        "method": "calibration_at_k",
        "reason": f"best R@1 on the calibration query ({best['recall_at_1']:.3f}) at the K pre-selection "
                  f"will run (K = {k_name}), T and K chosen together",
        "table": rows}


def perturb_reference(pixels: np.ndarray, width: int, height: int, seed: int) -> np.ndarray:
    """The preprocessed reference images (n, width*height) uint8 as a changed appearance would give them.

    Per image, seeded by ``seed``: a shift of up to ``shift_pixels`` in x and y
    (edges repeated), ``u' = 255 (u / 255)^gamma`` with gamma uniform in the
    ``gamma`` range, then Gaussian noise of std ``noise_std``; clipped to 0..255.
    """
    rng = np.random.default_rng([seed, 7])
    s = PERTURBATION["shift_pixels"]
    lo, hi = PERTURBATION["gamma"]
    images = np.asarray(pixels, np.float64).reshape(-1, height, width)
    out = np.empty_like(images)
    padded = np.pad(images, ((0, 0), (s, s), (s, s)), mode="edge")
    for k in range(len(images)):
        dy, dx = rng.integers(-s, s + 1, size=2)
        out[k] = padded[k, s + dy:s + dy + height, s + dx:s + dx + width]
    gamma = rng.uniform(lo, hi, size=(len(images), 1, 1))
    out = 255.0 * (out / 255.0) ** gamma + rng.normal(0.0, PERTURBATION["noise_std"], size=out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(len(images), -1)


def choose_k_without_queries(net: ModularSNN, reference: np.ndarray, threshold: int,
                             progress: ProgressFn = _quiet,
                             sweep: Sequence[int] = DEFAULT_K_SWEEP) -> tuple[int, dict]:
    """K with no query image: recognition of perturbed reference images, as calibration would do it.

    Up to :data:`K_QUERIES` evenly spaced places are perturbed
    (:func:`perturb_reference`) and must be recognised among all places; for
    each K of the sweep (and every module) the SNN runs only each query's K
    best modules by template. The cheapest K whose R@1 is within 0.005 of
    every module's wins, as with calibration queries. Returns (K, the record
    for ``model.yaml``: method, perturbation, queries, table); K = 0 means
    every module.
    """
    cfg = net.config
    places = np.unique(np.linspace(0, net.n_places - 1, min(K_QUERIES, net.n_places)).round().astype(np.int64))
    queries = perturb_reference(np.asarray(reference)[places], cfg.image_width, cfg.image_height, cfg.seed)
    modules = np.arange(net.n_modules)
    counts = np.concatenate([
        net.spike_counts(cfg.input_rates(queries[a:a + 64]), _PERTURBED_STREAM + places[a:a + 64])
        for a in range(0, len(queries), 64)])
    progress(len(queries), len(queries), "choosing K on the perturbed reference")
    ranker = ModuleRanker(net, modules, threshold)
    order = np.argsort(-ranker.module_scores(queries), axis=1, kind="stable")
    ks = sorted({k for k in sweep if k < len(modules)} | {len(modules)})
    table = []
    for k in ks:
        S = preselected_scores(net, counts, order, k, modules, threshold)
        table.append({"k": int(k), "recall_at_1": float(np.mean(np.argmax(S, axis=1) == places)),
                      "groups": -(-int(k) // 8)})
    full = table[-1]["recall_at_1"]
    best = min((r for r in table if r["recall_at_1"] >= full - 0.005),
               key=lambda r: (r["groups"], -r["recall_at_1"], r["k"]))
    k = 0 if best["k"] == len(modules) else best["k"]
    return k, {"method": "reference_perturbed", "queries": int(len(places)), "perturbation": PERTURBATION,
               "table": table}
