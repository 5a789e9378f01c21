"""The units of work a runner executes: plain arrays in, plain arrays out.

Each task is a pure function of its arguments: it reads no file, writes
nothing, and keeps no state between calls, so a task that is lost with its
Dask worker can simply be run again, and its result is the same wherever and
however often it runs (every random stream is seeded by (seed, module) or
(seed, query id); spike counts are integers, so how queries and modules are
split into tasks does not change any sum).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from vprsnn_ros.snn.inference import Scorer
from vprsnn_ros.snn.module_training import ModuleResult, train_module_on_pixels
from vprsnn_ros.snn.network import DelayLayout, ModularSNN, NetworkConfig

# Reference images are recorded on random streams far from those of queries (ids 0, 1, ...).
REFERENCE_STREAM = 1 << 40


def train_module_task(config: NetworkConfig, delays: np.ndarray, module: int, region: np.ndarray,
                      region_pixels: Sequence[np.ndarray], epochs: int,
                      checkpoints: Sequence[int] = (),
                      on_epoch: Callable[[int], None] | None = None) -> list[ModuleResult]:
    """Train module ``module`` on the ``region_pixels`` (one (len(region), n_in) uint8 per traverse)."""
    layout = DelayLayout.build(delays, config.dt, config.params.delay_max)
    return train_module_on_pixels(config, layout, module, np.asarray(region), region_pixels, epochs,
                                  checkpoints, on_epoch)


def _counting_net(config: NetworkConfig, delays: np.ndarray, weights: np.ndarray,
                  theta: np.ndarray) -> ModularSNN:
    """A network that can only count spikes (no places): all inference needs."""
    m, n = theta.shape
    return ModularSNN(config=config, delays=delays, n_places=1, regions=[], n_calibration_modules=0,
                      weights=weights, theta=theta, assignments=np.full((m, n), -1, np.int32),
                      active_images=np.full((m, n), -1, np.int32))


def spike_count_task(config: NetworkConfig, delays: np.ndarray, weights: np.ndarray,
                     theta: np.ndarray, pixels: np.ndarray, query_ids: np.ndarray) -> np.ndarray:
    """Frozen spike counts (Q, M, N) of modules (``weights`` (M, n_in, N)) for preprocessed images."""
    net = _counting_net(config, delays, weights, theta)
    return net.spike_counts(config.input_rates(pixels), np.asarray(query_ids, np.int64))


def activity_task(config: NetworkConfig, delays: np.ndarray, weights: np.ndarray, theta: np.ndarray,
                  pixels: np.ndarray, first_place: int) -> np.ndarray:
    """Number of the reference images ``pixels`` (places first_place, first_place+1, ...)
    each neuron of the given modules fires in: (M, N) int32 (spec section 6, steps 1-2)."""
    ids = REFERENCE_STREAM + first_place + np.arange(len(pixels), dtype=np.int64)
    counts = spike_count_task(config, delays, weights, theta, pixels, ids)
    return (counts > 0).sum(axis=0, dtype=np.int32)


def scores_task(net: ModularSNN, pixels: np.ndarray, query_ids: np.ndarray, modules: np.ndarray,
                threshold: int | None, preselect_k: int | None = None,
                readout: str | None = None) -> np.ndarray:
    """Place scores (Q, n_places) of one network for a block of preprocessed queries.

    With pre-selection (``preselect_k``, None: the network's K) each query runs
    its K best ``modules``: the one scorer, :class:`vprsnn_ros.snn.inference.Scorer`.
    """
    # A scorer of its own: the network may be shared by several threads of a worker.
    scorer = Scorer([net], modules=modules, threshold=threshold, preselect_k=preselect_k, readout=readout)
    return scorer.scores(pixels, query_ids)
