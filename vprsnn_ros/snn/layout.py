"""Synaptic delays laid out for the kernels: quantised to steps, each input's targets sorted by delay."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.snn.params import delay_slots


@dataclass(frozen=True)
class DelayLayout:
    """Delays quantised to steps, with each input's targets sorted by delay.

    ``slot[i, j] = round(d_ij / dt)``; ``tgt[i, off[i, s]:off[i, s + 1]]`` are
    the neurons input i reaches ``s`` steps after it emits.
    """

    slot: np.ndarray  # (n_in, N) int16: delay of synapse (i, j) in steps
    tgt: np.ndarray   # (n_in, N) uint16: targets of input i, by increasing delay
    off: np.ndarray   # (n_in, n_slots + 1) int64: tgt[i, off[i,s]:off[i,s+1]] have delay s

    @classmethod
    def build(cls, delays_ms: np.ndarray, dt: float, delay_max: float) -> "DelayLayout":
        slot = delay_slots(delays_ms, dt)
        n_slots = int(round(delay_max / dt)) + 1
        if slot.shape[1] > np.iinfo(np.uint16).max:
            raise ConfigError("at most 65535 neurons per module")
        # Unsigned, so that Numba indexes with it without negative-index wraparound
        # checks: ~15 % of the training time (bench/perf/speed.py).
        tgt = np.argsort(slot, axis=1, kind="stable").astype(np.uint16)
        off = np.zeros((slot.shape[0], n_slots + 1), np.int64)
        for s in range(n_slots):
            off[:, s + 1] = (slot <= s).sum(axis=1)
        return cls(slot=slot, tgt=tgt, off=off)

    @property
    def slot_t(self) -> np.ndarray:
        """Delay slots by target neuron (N, n_in), as the lane and module kernels read them."""
        return np.ascontiguousarray(self.slot.T)
