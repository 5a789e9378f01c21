"""PNG plots of evaluation results.

Figures are built from ``matplotlib.figure.Figure`` with an explicit Agg canvas,
never through pyplot, so a caller's interactive backend and current figure are
left untouched.  Every file is written atomically (:func:`vprsnn_ros.atomic.atomic_write_bytes`),
so a reader never sees a half-written PNG, and with the usual file mode.
"""

from __future__ import annotations

import io
import math
import os
from typing import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vprsnn_ros.atomic import atomic_write_bytes
from vprsnn_ros.errors import ConfigError
from vprsnn_ros.eval.metrics import pr_auc

# Display resolution cap for the similarity matrix (per side, in matrix cells).
MAX_DISPLAY_CELLS = 1000


def _save_atomic(fig: Figure, path: str | os.PathLike) -> None:
    """The figure as a PNG, written atomically with the usual file mode (0o666 & ~umask)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


def save_pr_curve(
    path: str | os.PathLike,
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    title: str = "",
) -> None:
    """Plot one or more PR curves (recall on x, precision on y), AUC in the legend.

    ``curves`` maps a label to ``(precision, recall)`` (extra items, such as the
    thresholds returned by ``metrics.pr_curve``, are ignored).  AUC is
    :func:`vprsnn_ros.eval.metrics.pr_auc` (trapezoid rule over recall).
    """
    if not curves:
        raise ConfigError("save_pr_curve needs at least one curve")
    fig = Figure(figsize=(6, 5), dpi=100)
    ax = fig.add_subplot()
    for label, curve in curves.items():
        precision, recall = np.asarray(curve[0], float), np.asarray(curve[1], float)
        ax.plot(recall, precision, marker=".", markersize=3,
                label=f"{label} (AUC = {pr_auc(precision, recall):.3f})")
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.05)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _save_atomic(fig, path)


def _max_pool(S: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Max over ``fy x fx`` blocks, padding with -inf so no block is cut short.

    Max (not mean) keeps isolated strong matches visible after downsampling.
    """
    n_q, n_p = S.shape
    H, W = math.ceil(n_q / fy), math.ceil(n_p / fx)
    padded = np.full((H * fy, W * fx), -np.inf)
    padded[:n_q, :n_p] = S
    return padded.reshape(H, fy, W, fx).max(axis=(1, 3))


def save_similarity_matrix(
    path: str | os.PathLike,
    S: np.ndarray,
    gt: np.ndarray | None = None,
    title: str = "",
) -> None:
    """Image of a score matrix: queries on y, places on x, with a colour bar.

    -inf (and NaN) cells are drawn in the minimum colour.  Matrices larger than
    ``MAX_DISPLAY_CELLS`` per side are max-pooled for display; axes stay in
    original indices.  When ``gt`` is given, the true places ``(gt[q], q)`` with
    ``gt >= 0`` are overlaid.
    """
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or 0 in S.shape:
        raise ConfigError(f"score matrix must be 2-D and non-empty, got shape {S.shape}")
    n_q, n_p = S.shape
    S = np.where(np.isnan(S), -np.inf, S)
    fy = math.ceil(n_q / MAX_DISPLAY_CELLS)
    fx = math.ceil(n_p / MAX_DISPLAY_CELLS)
    img = _max_pool(S, fy, fx) if (fy > 1 or fx > 1) else S
    finite = np.isfinite(img)
    floor = img[finite].min() if finite.any() else 0.0
    img = np.where(finite, img, floor)
    # +inf would otherwise blow up the colour scale; clamp it to the finite max.
    if finite.any():
        img = np.minimum(img, img[finite].max())

    fig = Figure(figsize=(7, 6), dpi=100)
    ax = fig.add_subplot()
    im = ax.imshow(img, cmap="viridis", interpolation="nearest", aspect="auto",
                   extent=(-0.5, n_p - 0.5, n_q - 0.5, -0.5))
    fig.colorbar(im, ax=ax, label="score")
    if gt is not None:
        gt = np.asarray(gt).ravel()
        if gt.shape != (n_q,):
            raise ConfigError(f"gt must have shape ({n_q},), got {gt.shape}")
        q = np.flatnonzero(gt >= 0)
        # Hollow red rings: visible on every colour of the map, and the cell under them still shows.
        ax.plot(gt[q], q, linestyle="none", marker="o", markersize=2, markerfacecolor="none", alpha=0.7,
                markeredgecolor="red", markeredgewidth=0.8, label="ground truth")
        ax.legend(loc="upper right", fontsize="small")
        ax.set_xlim(-0.5, n_p - 0.5)
        ax.set_ylim(n_q - 0.5, -0.5)
    ax.set_xlabel("place")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _save_atomic(fig, path)


def save_recall_curve(
    path: str | os.PathLike,
    recall: Mapping[int | str, float],
    title: str = "",
) -> None:
    """Plot Recall@N against N; keys may be ints or their strings (JSON form)."""
    if not recall:
        raise ConfigError("save_recall_curve needs at least one Recall@N value")
    try:
        items = sorted((int(n), float(v)) for n, v in recall.items())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"recall must map N to a number: {exc}") from None
    ns, values = zip(*items)
    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.plot(ns, values, marker="o")
    ax.set_xlabel("N")
    ax.set_ylabel("Recall@N")
    ax.set_ylim(0.0, 1.05)
    ax.set_xticks(ns)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _save_atomic(fig, path)


def save_place_track(path: str | os.PathLike, true_places: np.ndarray, estimated: np.ndarray,
                     title: str = "") -> None:
    """Estimated vs true place along the route (frame order); -1 estimates are left out."""
    true_places = np.asarray(true_places)
    estimated = np.asarray(estimated)
    if true_places.shape != estimated.shape:
        raise ConfigError("true and estimated places must have the same shape")
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.add_subplot()
    frames = np.arange(len(true_places))
    ax.plot(frames, true_places, color="black", linewidth=1, label="true place")
    ok = estimated >= 0
    correct = ok & (estimated == true_places)
    ax.plot(frames[ok & ~correct], estimated[ok & ~correct], linestyle="none", marker=".",
            markersize=3, color="tab:red", label="estimate (wrong)")
    ax.plot(frames[correct], estimated[correct], linestyle="none", marker=".", markersize=3,
            color="tab:green", label="estimate (right)")
    ax.set_xlabel("frame")
    ax.set_ylabel("place")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    _save_atomic(fig, path)
