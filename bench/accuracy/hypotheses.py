"""Issue 7, item 3: every accuracy hypothesis as one row, chosen on calibration, reported on test.

Nordland summer -> winter, dark places out, the first ``--places`` places; the
first ``--calibration`` places are the calibration split (their own modules),
the rest the test split, each model trained with that split so that no module
mixes the two (``train_network(..., calibration_places=N)``) and each split
scored with its own modules and places only, as ``vprsnn evaluate --split test``
does. All variants are the
shuffled-region network (journal version, seed ``--seed``, 60 epochs) with one
change each:

* query noise (3a), no retraining: input rate gain at inference, repeated
  presentations, regular spike trains at inference; regular trains in training
  too (retrained);
* sharper templates (3b), retrained: inhibition, theta increment, learning
  rates and the shape of their fall (linear, exponential, step), weight
  normalisation total, epochs, places per module, photometric augmentation (as
  extra traverses in every epoch, and across epochs: one version per epoch in
  turn), gamma before patch normalisation (the gamma is
  chosen by SAD R@1 on the calibration split);
* diverse ensembles (3e): z-scored score matrices of several variants summed,
  against seed-only ensembles of the same size.

Each row: R@1 single frame and with sequences of ``--sequence-length``
(diagonal), calibration and test, for the tuned readout (zscore) with T chosen
on the reference alone (``T=auto``, what ``vprsnn train`` does without a
calibration query) and with T chosen on the calibration queries (``T=cal``),
plus training seconds and query milliseconds. A variant "wins" only on
calibration R@1; test is reported, never used.

    python -m bench.accuracy.hypotheses --work /tmp/hyp              # trains what is missing (~4 min each)
    python -m bench.accuracy.hypotheses --work /tmp/hyp --train-only --variants base inhibition_x2

Models are cached in ``--work/<variant>``; the table goes to
``--work/hypotheses.json`` and ``hypotheses.md``.

Issue 16, item 4 (the within-module gap): the ``w16_*`` variants are ``tuned``'s
training (regular spike trains) on the CLI's default contiguous regions, each with one
profile switch (imprinted initial weights, spatial jitter, growing inhibition,
soft-bound STDP, patch size, shuffled regions), and ``MODEL + query_inhibition_F``
reads a model with weaker inhibition at query time (``--query-inhibition``,
``--query-inhibition-on``; no retraining). Every SNN row also records R@1 given the
true place's module (``within_module``, :func:`vprsnn_ros.eval.loss.where_the_loss_is`)
and how often the true module is ranked first; for these variants SAD is scored at the
variant's patch size and region layout, and ``--work/within.md`` holds their table::

    python -m bench.accuracy.hypotheses --work /tmp/hyp16 --variants w16_base w16_imprint ...

``hypotheses.json`` also keeps every variant's full rows (``snn_rows``: mean and
zscore readouts x T = 0 / auto / cal, with SeqSLAM and contrast-only sequences).

This is the third generation of the 300-place study, which replaced
``bench/nordland_accuracy.py`` (one network on all 300 places, T picked on the test
queries) and ``bench/ablation.py`` (the same split; contiguous and shuffled regions x
mean and zscore readouts x T choices, and SAD: :func:`snn_rows` and :func:`sad_rows`
come from it; its shuffled model is the ``base`` variant here).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from bench.common import have_nordland, nordland_places, r1
from vprsnn_ros.eval.baseline import sad_scores
from vprsnn_ros.eval.loss import place_modules, where_the_loss_is
from vprsnn_ros.io import dataset
from vprsnn_ros.io.preprocess import patch_normalise, to_uint8
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.snn.coding import rates_hz
from vprsnn_ros.snn.network import DEFAULT_T_SWEEP, ModularSNN, NetworkConfig
from vprsnn_ros.snn.params import NetworkParams
from vprsnn_ros.snn.profiles import FAITHFUL
from vprsnn_ros.snn.readout import READOUTS
from vprsnn_ros.snn.sequence import match_sequences, seqslam_scores
from vprsnn_ros.train.training import choose_threshold_without_queries, record_reference, train_network

GAMMAS = (0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.25, 1.5, 2.0)

# name -> changes. "config": NetworkConfig fields, "params": NetworkParams fields,
# "profile": Profile switches used in training (and kept for queries), "data": how the
# training traverses are made ("gamma": preprocess with the calibration-chosen gamma,
# "augment": the reference at several gammas, one traverse each).
TRAIN_VARIANTS: dict[str, dict] = {
    "base": {},
    "gamma_preprocessing": {"data": "gamma"},
    # Three traverses at 20 epochs: as many presentations as the base's 60 epochs.
    "augment_gamma_3x20": {"data": "augment", "config": {"epochs": 20}},
    "inhibition_x2": {"params": {"w_ie": 34.0}},
    "theta_plus_x4": {"params": {"theta_plus": 0.2}},
    "places_per_module_10": {"config": {"places_per_module": 10}},
    "learning_rates_x2": {"params": {"nu_pre": 2e-4, "nu_post": 2e-2}},
    "weight_sum_104": {"params": {"weight_sum": 104.0}},
    "epochs_30": {"config": {"epochs": 30}},
    "seed_1": {"config": {"seed": 1}},
    "regular_trains": {"profile": {"spike_trains": "regular"}},
    "learning_rate_decay_to_0.1": {"params": {"nu_final_fraction": 0.1}},
    "neurons_800": {"config": {"n_neurons": 800}},
    # Other shapes of the same fall of the learning rates (module_training.learning_rate_scale).
    "learning_rate_exponential_to_0.1": {"params": {"nu_final_fraction": 0.1},
                                         "config": {"nu_schedule": "exponential"}},
    "learning_rate_step_to_0.1": {"params": {"nu_final_fraction": 0.1}, "config": {"nu_schedule": "step"}},
    # Augmentation across epochs: a new gamma version of the reference in every epoch (60
    # gammas from 0.6 to 1.6, in a seeded random order), one traverse per epoch
    # (traverse_order 'cycle'). Cycling through the 3 versions above instead would be the
    # same presentations as augment_gamma_3x20 (tested in test_input_coding.py).
    "augment_gamma_per_epoch_60": {"data": "augment_per_epoch", "config": {"traverse_order": "cycle"}},
    "regular_step_to_0.1": {"profile": {"spike_trains": "regular"}, "params": {"nu_final_fraction": 0.1},
                            "config": {"nu_schedule": "step"}},
    # Contrast x0.7 brightness +20, as is, contrast x1.3 brightness -20 (then 8-bit rounding).
    "augment_contrast_brightness_3x20": {"data": "contrast", "config": {"epochs": 20}},
    # The calibration winners together, and on a second seed (seed-to-seed spread is ~0.05).
    "regular_seed_1": {"profile": {"spike_trains": "regular"}, "config": {"seed": 1}},
    "regular_gamma": {"profile": {"spike_trains": "regular"}, "data": "gamma"},
    "regular_gamma_seed_1": {"profile": {"spike_trains": "regular"}, "data": "gamma", "config": {"seed": 1}},
}
# Issue 16, item 4 (the within-module gap): tuned's training (regular spike trains) with the
# CLI's default contiguous regions, then one profile switch each (docs/guides/profiles.md).
WITHIN16_BASE = {"profile": {"spike_trains": "regular"}, "config": {"shuffle": False}}
WITHIN16: dict[str, dict] = {
    "w16_base": {},
    # (a) imprinted initial weights (pure, and half imprint half random), then STDP.
    "w16_imprint": {"profile": {"imprint": 1.0}},
    "w16_imprint_0.5": {"profile": {"imprint": 0.5}},
    # (b) spatial jitter: each training presentation shifted by up to 1 or 2 pixels.
    "w16_jitter_1": {"profile": {"jitter": 1}},
    "w16_jitter_2": {"profile": {"jitter": 2}},
    # (c) inhibition growing over the epochs: 0.25 w_ie -> w_ie, and w_ie -> 2 w_ie (queried at 2 w_ie).
    "w16_inhibition_grow": {"profile": {"inhibition_start": 0.25}},
    "w16_inhibition_grow_to_x2": {"profile": {"inhibition_start": 0.5}, "params": {"w_ie": 34.0}},
    # (d) weight-dependent (soft-bound) STDP.
    "w16_soft_bound": {"profile": {"soft_bound": 1.0}},
    # Learned weights stay below about 0.18 (w_max 1): the same with w_max 0.25, so that the
    # weight dependence bites (and the hard bound at 0.25 rarely does).
    "w16_soft_bound_wmax_0.25": {"profile": {"soft_bound": 1.0}, "params": {"w_max": 0.25}},
    # (e) the patch-normalisation window (7 is the spec's).
    "w16_patch_5": {"profile": {"patch": 5}},
    "w16_patch_9": {"profile": {"patch": 9}},
    # (f) the region layout.
    "w16_shuffled": {"profile": {"shuffle": True}},
    # The leading rows again on seed 1 (seed-to-seed spread of the base is ~0.05 on 100 queries).
    "w16_base_seed_1": {"config": {"seed": 1}},
    "w16_imprint_seed_1": {"profile": {"imprint": 1.0}, "config": {"seed": 1}},
    "w16_inhibition_grow_seed_1": {"profile": {"inhibition_start": 0.25}, "config": {"seed": 1}},
    "w16_soft_bound_seed_1": {"profile": {"soft_bound": 1.0}, "config": {"seed": 1}},
    "w16_patch_9_seed_1": {"profile": {"patch": 9}, "config": {"seed": 1}},
}
TRAIN_VARIANTS.update({name: {"profile": {**WITHIN16_BASE["profile"], **v.get("profile", {})},
                              "config": {**WITHIN16_BASE["config"], **v.get("config", {})},
                              **{k: x for k, x in v.items() if k not in ("profile", "config")}}
                       for name, v in WITHIN16.items()})
AUGMENT_GAMMAS = (0.6, 1.0, 1.6)
AUGMENTED = ("augment", "augment_per_epoch", "contrast")
AUGMENT_CONTRAST = ((0.7, 20.0), (1.0, 0.0), (1.3, -20.0))

# Inference-only variants of the base model (profile switches; no retraining).
QUERY_VARIANTS: dict[str, dict] = {
    "query_rate_gain_1.5": {"query_rate_gain": 1.5},
    "query_rate_gain_2": {"query_rate_gain": 2.0},
    "query_presentations_2": {"query_presentations": 2},
    "query_presentations_4": {"query_presentations": 4},
    "regular_query_trains": {"spike_trains": "regular_query"},
}

# The query switches that won on the base model, on the retrained winners (seed 0 and 1).
COMBINED: dict[str, tuple[str, dict]] = {
    f"{model} + query_rate_gain_2": (model, {"query_rate_gain": 2.0})
    for model in ("seed_1", "regular_trains", "regular_seed_1", "regular_gamma", "regular_gamma_seed_1")}

# (g) queries (and the reference recordings) with weaker inhibition, on issue-16 models (no
# retraining): "MODEL + query_inhibition_F" for every F of --query-inhibition and MODEL of
# --query-inhibition-on; the factor is chosen on calibration.
QUERY_INHIBITION = (0.5, 0.25, 0.1)


def query16(models, factors) -> dict[str, tuple[str, dict]]:
    return {f"{model} + query_inhibition_{f:g}": (model, {"query_inhibition": float(f)})
            for model in models for f in factors}

ENSEMBLES = {
    "seeds_0_1": ("base", "seed_1"),
    "diverse_2": ("base", "augment_gamma_3x20"),
    "regular_gamma_seeds_0_1": ("regular_gamma", "regular_gamma_seed_1"),
}


def matched(S: np.ndarray, length: int) -> dict[str, float]:
    """R@1 single frame, diagonal and SeqSLAM sequences of ``length``."""
    return {"single": r1(S), f"diagonal{length}": r1(match_sequences(S, length, "diagonal")),
            f"seqslam{length}": r1(match_sequences(S, length, "seqslam")),
            # SeqSLAM's two parts apart: contrast normalisation with v = 1 only.
            f"contrast_v1_{length}": r1(seqslam_scores(S, length, velocities=(1.0,)))}


def within(S: np.ndarray, net_or_regions, places: np.ndarray) -> dict:
    """``where_the_loss_is`` of a split's scores (query k = the split's k-th place): true module
    ranked first and R@1 given the true module."""
    regions = net_or_regions.regions if isinstance(net_or_regions, ModularSNN) else net_or_regions
    column_module = place_modules(regions, int(max(int(np.max(r)) for r in regions)) + 1)[places]
    out = where_the_loss_is(S, np.arange(len(places)), column_module)
    return {"true_module_first": round(out["true_module_first"], 4),
            "within_module": round(out["recall_at_1_given_module"], 4)}


def split_queries(net: ModularSNN, Q: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Modules, places and query pixels of a split (query k of the split = its k-th place)."""
    mods = net.module_split(split)
    places = net.split_places(split)
    return mods, places, Q[places]


def snn_rows(name: str, net: ModularSNN, R: np.ndarray, Q: np.ndarray, length: int) -> list[dict]:
    """Rows of one model: readout (mean / zscore) x T choice (0 / auto / cal), both splits.

    ``T=0``: no masking; ``T=auto``: chosen on the reference traverse alone (profile
    switch ``auto_threshold``); ``T=cal``: best single-frame R@1 on the calibration
    queries (with that row's readout).
    """
    counts, timing = {}, {}
    for split in ("calibration", "test"):
        mods, places, pixels = split_queries(net, Q, split)
        started = time.perf_counter()
        # Stream ids 0..n-1 of the split's queries, as vprsnn evaluate numbers them.
        counts[split] = net.spike_counts(rates_hz(pixels).astype(np.float64), np.arange(len(pixels)),
                                         modules=mods)
        timing[split] = (time.perf_counter() - started) / len(pixels)
    auto = {}
    for readout in READOUTS:
        started = time.perf_counter()
        auto[readout] = choose_threshold_without_queries(net, rates_hz(R).astype(np.float64),
                                                         readout=readout)
        auto_seconds = time.perf_counter() - started

    def scores(split: str, t: int, readout: str) -> np.ndarray:
        mods, places, _ = split_queries(net, Q, split)
        return net.scores(counts[split], modules=mods, threshold=t, readout=readout)[:, places]

    rows = []
    for readout in READOUTS:
        cal_sweep = {t: r1(scores("calibration", t, readout)) for t in DEFAULT_T_SWEEP}
        t_cal = max(cal_sweep, key=lambda t: (cal_sweep[t], -t))
        t_auto, auto_table = auto[readout]
        for policy, t in (("T=0", 0), ("T=auto", t_auto), ("T=cal", t_cal)):
            row = {"system": f"SNN {name}", "readout": readout, "T": f"{policy} ({t})",
                   "masked": net.n_masked(t)}
            for split in ("calibration", "test"):
                S = scores(split, t, readout)
                row[split] = matched(S, length)
                row[split].update(within(S, net, net.split_places(split)))
            started = time.perf_counter()
            for _ in range(20):
                net.scores(counts["test"][:1], modules=net.module_split("test"), threshold=t, readout=readout)
            row["readout_ms_per_query"] = round((time.perf_counter() - started) / 20 * 1e3, 3)
            row["spikes_ms_per_query"] = round(timing["test"] * 1e3, 1)
            rows.append(row)
        rows[-1]["calibration_sweep"] = cal_sweep
        rows[-2]["auto_T_table"] = auto_table
    rows[0]["auto_T_seconds"] = round(auto_seconds, 1)
    return rows


def sad_rows(R: np.ndarray, Q: np.ndarray, n_cal: int, length: int, regions=None) -> dict:
    """The SAD baseline on both splits (calibration = the first ``n_cal`` places); with a
    model's ``regions``, also R@1 given the true module of that layout."""
    row = {"system": "SAD", "readout": "-", "T": "-"}
    n = len(R)
    for split, places in (("calibration", np.arange(n_cal)), ("test", np.arange(n_cal, n))):
        started = time.perf_counter()
        S = sad_scores(Q[places], R[places])
        row["sad_ms_per_query"] = round((time.perf_counter() - started) / len(places) * 1e3, 3)
        row[split] = matched(S, length)
        if regions is not None:
            row[split].update(within(S, regions, places))
    return row


def load_gray(places: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names and 28 x 28 gray images (float, before patch normalisation) of reference and query."""
    ref, qry = nordland_places("summer", places), nordland_places("winter", places)

    def gray(paths) -> np.ndarray:
        out = []
        for p in paths:
            image = dataset.read_image(p)
            if image.ndim == 3:
                image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
            out.append(cv2.resize(image, (28, 28), interpolation=cv2.INTER_LINEAR).astype(np.float64))
        return np.stack(out)

    return ref.names, gray(ref.paths), gray(qry.paths)


def pixels(gray: np.ndarray, gamma: float = 1.0, patch: int = 7) -> np.ndarray:
    """Preprocessed uint8 pixels (N, 784); gamma is applied before patch normalisation."""
    # An 8-bit lookup table, as a camera driver or cv2.LUT would apply it.
    g = np.rint(255.0 * (gray / 255.0) ** gamma) if gamma != 1.0 else gray
    return np.stack([to_uint8(patch_normalise(img, patch)).reshape(-1) for img in g])


def variant_patch(name: str) -> int:
    """The patch-normalisation window a variant trains and queries with (profile switch ``patch``)."""
    return TRAIN_VARIANTS.get(name, {}).get("profile", {}).get("patch") or 7


def choose_gamma(R: np.ndarray, Q: np.ndarray, n_cal: int) -> tuple[float, dict]:
    table = {g: r1(sad_scores(pixels(Q[:n_cal], g), pixels(R[:n_cal], g))) for g in GAMMAS}
    return max(table, key=lambda g: (table[g], -abs(g - 1.0))), table


def train_variant(work: Path, name: str, names, gray_r, gamma: float, args) -> tuple[ModularSNN, float | None]:
    out = work / name
    if (out / "model.yaml").exists():
        return load_network(out), None
    v = TRAIN_VARIANTS[name]
    base = NetworkConfig(epochs=args.epochs, seed=args.seed, shuffle=True)
    params = NetworkParams(**{**base.params.to_dict(), **v.get("params", {})})
    cfg = base.with_(params=params, **v.get("config", {}))
    data = v.get("data")
    if data == "augment":
        traverses = [pixels(gray_r, g) for g in AUGMENT_GAMMAS]
    elif data == "augment_per_epoch":
        gammas = np.random.default_rng(args.seed).permutation(np.geomspace(0.6, 1.6, args.epochs))
        traverses = [pixels(gray_r, float(g)) for g in gammas]
    elif data == "contrast":
        traverses = [pixels(np.clip(np.rint(gray_r * c + b), 0, 255)) for c, b in AUGMENT_CONTRAST]
    else:
        traverses = [pixels(gray_r, gamma if data == "gamma" else 1.0, variant_patch(name))]
    profile = FAITHFUL.with_(**v.get("profile", {}))
    started = time.perf_counter()
    print(f"training {name} ...", flush=True)
    net = train_network(cfg, traverses, names, out, calibration_places=args.calibration,
                        workers=args.workers, profile=profile)
    seconds = round(time.perf_counter() - started, 1)
    (out / "train_seconds.txt").write_text(f"{seconds}\n")
    return net, seconds


def variant_pixels(name: str, gray_r, gray_q, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    g = gamma if TRAIN_VARIANTS.get(name, {}).get("data") == "gamma" else 1.0
    return pixels(gray_r, g, variant_patch(name)), pixels(gray_q, g, variant_patch(name))


def summarise(name: str, rows: list[dict], length: int, seconds) -> dict:
    """The zscore T=auto and T=cal rows of one variant (the tuned readout)."""
    out = {"variant": name, "train_seconds": seconds}
    for r in rows:
        if r["readout"] != "zscore":
            continue
        policy = r["T"].split(" ")[0]
        out[policy] = {"T": r["T"], "calibration": r["calibration"]["single"],
                       "calibration_seq": r["calibration"][f"diagonal{length}"],
                       "test": r["test"]["single"], "test_seq": r["test"][f"diagonal{length}"],
                       "calibration_within": r["calibration"].get("within_module"),
                       "test_within": r["test"].get("within_module"),
                       "query_ms": r["spikes_ms_per_query"]}
    return out


def format_within(rows: list[dict], sad: dict[str, dict], length: int) -> str:
    """Issue 16 table: R@1 and R@1 given the true module (within), calibration and test, with the
    SAD baseline of the same preprocessing and region layout beside each variant."""
    lines = ["| variant | T=auto: cal R@1 / within | test R@1 / within | T=cal: cal R@1 / within | "
             f"test R@1 / within | seq{length} cal / test (T=auto) | SAD cal R@1 / within | "
             f"SAD test R@1 / within | SAD seq{length} cal / test | train s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a, c, b = r["T=auto"], r["T=cal"], sad[r["variant"]]
        lines.append(
            f"| {r['variant']} | {a['calibration']:.3f} / {a['calibration_within']:.3f} {a['T']} | "
            f"{a['test']:.3f} / {a['test_within']:.3f} | {c['calibration']:.3f} / {c['calibration_within']:.3f} "
            f"{c['T']} | {c['test']:.3f} / {c['test_within']:.3f} | "
            f"{a['calibration_seq']:.3f} / {a['test_seq']:.3f} | "
            f"{b['calibration']['single']:.3f} / {b['calibration']['within_module']:.3f} | "
            f"{b['test']['single']:.3f} / {b['test']['within_module']:.3f} | "
            f"{b['calibration'][f'diagonal{length}']:.3f} / {b['test'][f'diagonal{length}']:.3f} | "
            f"{r['train_seconds'] or '-'} |")
    return "\n".join(lines)


def ensemble_row(name: str, members: list[tuple[ModularSNN, np.ndarray, np.ndarray]], length: int) -> dict:
    """Sum of the members' zscore score matrices (T=0), per split."""
    out = {"variant": f"ensemble {name}", "members": len(members)}
    for split in ("calibration", "test"):
        total = None
        for net, _, Q in members:
            mods, places = net.module_split(split), net.split_places(split)
            counts = net.spike_counts(rates_hz(Q[places]).astype(np.float64), np.arange(len(places)),
                                      modules=mods)
            S = net.scores(counts, modules=mods, threshold=0, readout="zscore")[:, places]
            total = S if total is None else total + S
        out[split] = r1(total)
        out[f"{split}_seq"] = r1(match_sequences(total, length, "diagonal"))
    return out


def format_rows(rows: list[dict]) -> str:
    lines = ["| variant | T=auto: cal / test R@1 (seq) | T=cal: cal / test R@1 (seq) | train s | query ms |",
             "|---|---|---|---|---|"]
    for r in rows:
        if "T=auto" not in r:
            lines.append(f"| {r['variant']} | {r['calibration']:.3f} / {r['test']:.3f} "
                         f"({r['calibration_seq']:.3f} / {r['test_seq']:.3f}), T=0 | | | |")
            continue
        a, c = r["T=auto"], r["T=cal"]
        lines.append(f"| {r['variant']} | {a['calibration']:.3f} / {a['test']:.3f} ({a['calibration_seq']:.3f} / "
                     f"{a['test_seq']:.3f}) {a['T']} | {c['calibration']:.3f} / {c['test']:.3f} "
                     f"({c['calibration_seq']:.3f} / {c['test_seq']:.3f}) {c['T']} | {r['train_seconds'] or '-'} "
                     f"| {a['query_ms']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--places", type=int, default=300)
    ap.add_argument("--calibration", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sequence-length", type=int, default=10)
    ap.add_argument("--variants", nargs="*", default=list(TRAIN_VARIANTS), choices=list(TRAIN_VARIANTS))
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--query-inhibition", type=float, nargs="*", default=list(QUERY_INHIBITION),
                    help="issue 16 (g): query-time inhibition factors to read the models of "
                         "--query-inhibition-on with")
    ap.add_argument("--query-inhibition-on", nargs="*", default=["w16_base"], choices=list(WITHIN16))
    ap.add_argument("--no-query-variants", action="store_true",
                    help="only the trained variants (and their ensembles): skip the inference-only rows")
    args = ap.parse_args()
    if not have_nordland():
        return 2
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    L = args.sequence_length
    names, gray_r, gray_q = load_gray(args.places)
    gamma, gamma_table = choose_gamma(gray_r, gray_q, args.calibration)
    print(f"gamma chosen on calibration SAD R@1: {gamma} ({gamma_table})", flush=True)
    nets = {}
    for name in args.variants:
        nets[name] = train_variant(work, name, names, gray_r, gamma, args)
    if args.train_only:
        return 0
    R1, Q1 = pixels(gray_r), pixels(gray_q)
    sad = [sad_rows(R1, Q1, args.calibration, L), sad_rows(*variant_pixels("gamma_preprocessing", gray_r, gray_q,
                                                                          gamma), args.calibration, L)]
    sad[1]["system"] = f"SAD gamma {gamma}"
    rows, full_rows, sad_within = [], {}, {}
    for name, (net, seconds) in nets.items():
        R, Q = variant_pixels(name, gray_r, gray_q, gamma)
        # A model trained before the statistics were kept, or on augmented traverses: training
        # recorded its first traverse, an augmented one; the reference is the plain images.
        if net.reference_stats is None or TRAIN_VARIANTS[name].get("data") in AUGMENTED:
            record_reference(net, rates_hz(R).astype(np.float64))
        if seconds is None and (work / name / "train_seconds.txt").exists():
            seconds = float((work / name / "train_seconds.txt").read_text())
        full_rows[name] = snn_rows(name, net, R, Q, L)
        rows.append(summarise(name, full_rows[name], L, seconds))
        print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
        if name in WITHIN16:
            sad_within[name] = sad_rows(R, Q, args.calibration, L, net.regions)
            print(format_within(rows[-1:], sad_within, L).splitlines()[-1], flush=True)
    query_rows = {name: ("base", switches) for name, switches in QUERY_VARIANTS.items()}
    readout_variants = {} if args.no_query_variants else {
        **query_rows, **COMBINED, **query16(args.query_inhibition_on, args.query_inhibition)}
    for name, (model, switches) in readout_variants.items():
        if model not in nets:
            continue
        net = nets[model][0]
        R, Q = variant_pixels(model, gray_r, gray_q, gamma)
        trained_config = net.config
        net.config = trained_config.with_(**switches)  # what Profile.configure sets
        record_reference(net, rates_hz(R).astype(np.float64))  # hyperactivity and stats as queries see them
        full_rows[name] = snn_rows(name, net, R, Q, L)
        rows.append(summarise(name, full_rows[name], L, None))
        print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
        if model in sad_within:
            sad_within[name] = sad_within[model]
            print(format_within(rows[-1:], sad_within, L).splitlines()[-1], flush=True)
        net.config = trained_config
        record_reference(net, rates_hz(R).astype(np.float64))
    for name, members in ENSEMBLES.items():
        if all(m in nets for m in members):
            rows.append(ensemble_row(name, [(nets[m][0], *variant_pixels(m, gray_r, gray_q, gamma))
                                            for m in members], L))
            print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
    # The tuned profile's input coding (regular trains, query gain 2) on two seeds, summed.
    if all(m in nets for m in ("regular_trains", "regular_seed_1")):
        members = [nets[m][0] for m in ("regular_trains", "regular_seed_1")]
        saved = [m.config for m in members]
        R1, Q1 = variant_pixels("base", gray_r, gray_q, gamma)
        for m in members:
            m.config = m.config.with_(query_rate_gain=2.0)
            record_reference(m, rates_hz(R1).astype(np.float64))
        rows.append(ensemble_row("regular seeds 0+1, query gain 2", [(m, R1, Q1) for m in members], L))
        print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
        for m, c in zip(members, saved):
            m.config = c
    sad_line = "; ".join(f"{s['system']}: cal {s['calibration']['single']:.3f} test {s['test']['single']:.3f} "
                         f"(seq {s['calibration'][f'diagonal{L}']:.3f} / {s['test'][f'diagonal{L}']:.3f})"
                         for s in sad)
    result = {"places": args.places, "calibration_places": args.calibration, "epochs": args.epochs,
              "seed": args.seed, "gamma": gamma, "gamma_table": gamma_table, "sad": sad, "rows": rows,
              "snn_rows": full_rows, "sad_within": sad_within}
    (work / "hypotheses.json").write_text(json.dumps(result, indent=1) + "\n")
    if sad_within:
        (work / "within.md").write_text(format_within([r for r in rows if r["variant"] in sad_within],
                                                      sad_within, L) + "\n")
        print(format_within([r for r in rows if r["variant"] in sad_within], sad_within, L))
    table = format_rows(rows)
    (work / "hypotheses.md").write_text(table + "\n\n" + sad_line + "\n")
    print(table)
    print(sad_line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
