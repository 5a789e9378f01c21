"""Training one module: STDP over its places, then neuron assignment (spec sections 3-4).

Plain functions on plain arrays, so that they run alike in a thread of this
process or as a task on a Dask worker (:mod:`vprsnn_ros.parallel.tasks`). A module's
random streams depend only on (seed, module), so where it runs does not change
the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from vprsnn_ros.snn.kernels.common import NEVER, stream_seed
from vprsnn_ros.snn.kernels.scalar import NeuronState, simulate, train_presentations
from vprsnn_ros.snn.network import (
    DelayLayout,
    NetworkConfig,
    assign_neurons,
    imprinted_weights,
    initial_weights,
)
from vprsnn_ros.snn.params import P_NU_POST, P_NU_PRE, P_W_IE, steps


@dataclass
class ModuleResult:
    """Arrays of one trained module at one epoch count."""

    epochs: int
    weights: np.ndarray
    theta: np.ndarray
    assignments: np.ndarray


def learning_rate_scale(schedule: str, final_fraction: float, epoch: int, epochs: int) -> float:
    """Factor on nu_pre and nu_post in ``epoch`` (1-based) of ``epochs``.

    With x = (epoch - 1) / (epochs - 1) going from 0 to 1 and f = ``final_fraction``:
    'linear' 1 + (f - 1) x; 'exponential' f ** x (the same end points, a fall that
    slows down); 'step' 1 for the first half of the epochs, f for the second.
    f = 1 is the published constant rate whatever the schedule.
    """
    if final_fraction == 1.0:
        return 1.0
    if schedule == "exponential":
        return float(final_fraction ** ((epoch - 1) / max(1, epochs - 1)))
    if schedule == "step":
        return 1.0 if epoch <= epochs // 2 else final_fraction
    return 1.0 + (final_fraction - 1.0) * (epoch - 1) / max(1, epochs - 1)


def inhibition_scale(start_fraction: float, epoch: int, epochs: int) -> float:
    """Factor on w_ie in ``epoch`` (1-based) of ``epochs``: from ``start_fraction`` in the first
    epoch linearly to 1 in the last (growing inhibition; 1.0 = constant, as published)."""
    if start_fraction == 1.0 or epochs <= 1:
        return 1.0
    return start_fraction + (1.0 - start_fraction) * (epoch - 1) / (epochs - 1)


def jittered(pixels: np.ndarray, config: NetworkConfig, rng: np.random.Generator) -> np.ndarray:
    """``pixels`` (K, n_in) with each image shifted by its own random (dy, dx) in
    [-config.jitter, config.jitter]^2, the edge rows and columns repeated."""
    j, h, w = config.jitter, config.image_height, config.image_width
    shifts = rng.integers(-j, j + 1, size=(len(pixels), 2))
    padded = np.pad(np.asarray(pixels).reshape(-1, h, w), ((0, 0), (j, j), (j, j)), mode="edge")
    return np.stack([padded[k, j - dy:j - dy + h, j - dx:j - dx + w].reshape(-1)
                     for k, (dy, dx) in enumerate(shifts)])


def fresh_state(config: NetworkConfig) -> NeuronState:
    """The state of an untrained module before its initial rest (kernel argument ``state``)."""
    p, n = config.params, config.n_neurons
    return NeuronState(
        v_e=np.full(n, p.v_rest_e + p.v_init_offset), ge_e=np.zeros(n), gi_e=np.zeros(n),
        theta=np.full(n, p.theta_init), timer=np.zeros(n),
        last_e=np.full(n, NEVER, np.int64), post1=np.zeros(n), post2=np.zeros(n),
        v_i=np.full(n, p.v_rest_i + p.v_init_offset), ge_i=np.zeros(n),
        last_i=np.full(n, NEVER, np.int64),
        last_emit=np.full(config.n_inputs, NEVER, np.int64),
    )


def _fresh_state(config: NetworkConfig) -> dict[str, np.ndarray]:
    """:func:`fresh_state` as a dict by field name (``NeuronState(**d)`` turns it back)."""
    return fresh_state(config)._asdict()


def train_module(config: NetworkConfig, layout: DelayLayout, module: int, region: np.ndarray,
                 traverses: Sequence[np.ndarray], epochs: int,
                 checkpoints: Sequence[int] = (),
                 on_epoch: Callable[[int], None] | None = None) -> list[ModuleResult]:
    """:func:`train_module_on_pixels` with the region's images taken from whole traverses."""
    return train_module_on_pixels(config, layout, module, region,
                                  [trav[region] for trav in traverses], epochs, checkpoints, on_epoch)


def train_module_on_pixels(config: NetworkConfig, layout: DelayLayout, module: int,
                           region: np.ndarray, region_pixels: Sequence[np.ndarray], epochs: int,
                           checkpoints: Sequence[int] = (),
                           on_epoch: Callable[[int], None] | None = None) -> list[ModuleResult]:
    """Train one module on its places; returns its state at each checkpoint and at ``epochs``.

    The training sequence is every place of the region in traverse 1, then in
    traverse 2, ..., repeated every epoch (spec section 3); with
    ``config.traverse_order == 'cycle'``, epoch e presents only traverse
    (e - 1) mod K of the K given. Each presentation is
    350 ms of input and 150 ms of rest after one initial 500 ms rest, with the
    state carried over. Neurons are assigned from the spike counts of the last
    ``assign_presentations`` presentations before each checkpoint.
    """
    p = config.params
    packed = config.packed(learning=True)
    # Imprinted initial weights (profile switch ``imprint``): from the first traverse's images.
    weights = imprinted_weights(config, module, region_pixels[0]) if config.imprint > 0 \
        else initial_weights(config, module)
    state = fresh_state(config)
    rng = np.array([stream_seed(config.seed, 1 + module, 0)], dtype=np.uint64)
    # region_pixels[k]: the region's places (in region order) in traverse k.
    if config.traverse_order == "cycle":
        epoch_pixels = [np.asarray(t) for t in region_pixels]
        presented = np.asarray(region)
    else:
        epoch_pixels = [np.concatenate(region_pixels)]
        presented = np.tile(region, len(region_pixels))
    epoch_rates = [config.input_rates(t) for t in epoch_pixels]
    # Spatial jitter (profile switch ``jitter``): a new shift per presentation, seeded by module.
    jitter_rng = np.random.default_rng([config.seed, 4, module]) if config.jitter > 0 else None
    n_present, n_rest = steps(p.present_ms, config.dt), steps(p.rest_ms, config.dt)
    keep = config.assign_presentations
    history = np.zeros((0, config.n_neurons), np.int32)
    history_places = np.zeros(0, np.int64)

    def run(rates_block: np.ndarray, n_pres: int, n_rst: int, t0: int,
            counts: np.ndarray) -> int:
        return train_presentations(packed, weights, layout.tgt, layout.off, layout.slot, rates_block,
                                   n_pres, n_rst, p.weight_sum, state, t0, rng, counts)

    # The initial rest: no input, no normalisation needed (it does not change W).
    t0 = simulate(packed, weights, layout.tgt, layout.off, layout.slot, np.zeros(config.n_inputs), 0,
                  steps(p.initial_rest_ms, config.dt), True, state, 0, rng, np.zeros(config.n_neurons, np.int64))
    results = []
    wanted = sorted({e for e in checkpoints if 0 < e < epochs} | {epochs})
    for epoch in range(1, epochs + 1):
        if p.nu_final_fraction != 1.0:
            scale = learning_rate_scale(config.nu_schedule, p.nu_final_fraction, epoch, epochs)
            packed[P_NU_PRE], packed[P_NU_POST] = p.nu_pre * scale, p.nu_post * scale
        if p.w_ie_start_fraction != 1.0:
            packed[P_W_IE] = p.w_ie * inhibition_scale(p.w_ie_start_fraction, epoch, epochs)
        if jitter_rng is not None:
            rates = config.input_rates(jittered(epoch_pixels[(epoch - 1) % len(epoch_pixels)], config,
                                                jitter_rng))
        else:
            rates = epoch_rates[(epoch - 1) % len(epoch_rates)]
        counts = np.zeros((len(rates), config.n_neurons), np.int32)
        t0 = run(rates, n_present, n_rest, t0, counts)
        history = np.concatenate([history, counts])[-keep:]
        history_places = np.concatenate([history_places, presented])[-keep:]
        if epoch in wanted:
            results.append(ModuleResult(
                epochs=epoch, weights=weights.copy(), theta=state.theta.copy(),
                assignments=assign_neurons(history, history_places, region)))
        if on_epoch is not None:
            on_epoch(epoch)
    return results
