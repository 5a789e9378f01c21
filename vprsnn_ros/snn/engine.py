"""Frozen spike counts of trained modules: which kernel runs, and the buffers it reuses.

Every query starts from rest, so a module's counts for a query depend only on
the module, the query's input rates and its random stream (seed, query id), not
on which other modules or queries run beside it. That is what lets the three
kernels below be swapped freely; they give the same counts to the bit (tested):

* the **module engine** (:mod:`vprsnn_ros.snn.kernels.modules`) when every
  network runs fewer than ``MAX_MODULES`` pre-selected modules per query: one
  module per job, no empty lanes;
* the **lane engine** (:mod:`vprsnn_ros.snn.kernels.lanes`) otherwise: modules
  in groups of 8 on one shared input train per query;
* the **scalar** kernel (:func:`vprsnn_ros.snn.kernels.scalar.infer_from_rest`,
  ``engine="scalar"``): each module on its own input train, as separate Brian2
  runs of the reference code would be; about 10x slower.

A :class:`Workspace` holds what the kernels read besides the trained arrays
(delays by target neuron, interleaved weights, scratch buffers), laid out once
and reused query after query. The trained network itself holds none of it.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from numba import get_num_threads

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.snn.kernels import lanes, scalar
from vprsnn_ros.snn.kernels import modules as module_kernels
from vprsnn_ros.snn.layout import DelayLayout
from vprsnn_ros.snn.params import steps

# Below this many modules per query (every network), the module engine runs them.
MAX_MODULES = module_kernels.MAX_MODULES
# Repeated query presentations run on streams this far apart (reference streams are 1 << 40).
REPEAT_STREAM = 1 << 50


class Workspace:
    """Laid-out arrays and scratch buffers for the kernels, reused from call to call.

    Per network (by identity, kept alive here): the delay slots by target
    neuron and, for the full network, the weights interleaved for the lane
    engine. Shared by all networks: the lane and module engines' scratch
    buffers, sized for Numba's current thread count. Not thread-safe: one
    workspace per thread that scores (a :class:`~vprsnn_ros.snn.inference.Scorer`
    owns one).
    """

    def __init__(self) -> None:
        self._nets: dict[int, dict] = {}
        self._scratch: dict[tuple, tuple[np.ndarray, ...]] = {}

    def _entry(self, net) -> dict:
        entry = self._nets.get(id(net))
        if entry is None or entry["net"] is not net:
            entry = self._nets[id(net)] = {"net": net}
        return entry

    def slot_t(self, net) -> np.ndarray:
        """Delay slots of ``net`` by target neuron (N, n_in)."""
        entry = self._entry(net)
        if "slot_t" not in entry:
            cfg = net.config
            entry["slot_t"] = DelayLayout.build(net.delays, cfg.dt, cfg.params.delay_max).slot_t
        return entry["slot_t"]

    def interleaved(self, net) -> np.ndarray:
        """All of ``net``'s weights interleaved for the lane engine (built on first use)."""
        entry = self._entry(net)
        if "interleaved" not in entry:
            entry["interleaved"] = lanes.interleave(net.weights)
        return entry["interleaved"]

    def scratch(self, kind: str, n_present: int, slot_t: np.ndarray) -> tuple[np.ndarray, ...]:
        """The ``'lanes'`` or ``'modules'`` engine's scratch buffers for this thread count."""
        key = (kind, n_present, slot_t.shape, int(slot_t.max()), get_num_threads())
        if key not in self._scratch:
            make = lanes.scratch if kind == "lanes" else module_kernels.scratch
            self._scratch[key] = tuple(make(n_present, slot_t, get_num_threads()))
        return self._scratch[key]


def presentations(cfg, query_ids: np.ndarray, count: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``count(stream ids)`` summed over the ``query_presentations`` of each query.

    A profile switch (1 = the published single presentation); repetition r of
    query q runs on stream ``q + r * REPEAT_STREAM``.
    """
    counts = count(query_ids)
    for r in range(1, cfg.query_presentations):
        counts = counts + count(query_ids + r * REPEAT_STREAM)
    return counts


def spike_counts(nets: Sequence, rates_hz: np.ndarray, query_ids: np.ndarray,
                 modules: Sequence[np.ndarray | None], seeds: Sequence[int | None] | None = None,
                 workspace: Workspace | None = None) -> list[np.ndarray]:
    """Spike counts of several networks (an ensemble) on the same queries, in one pass.

    ``modules[e]``: None (every module), (K,) module ids for every query, or
    (Q, K) ids per query (pre-selection) of network e. All (network, query,
    module or group) jobs are shared out among the threads together. Returns
    one (Q, K_e, N) int32 array per network.
    """
    ws = workspace if workspace is not None else Workspace()
    first = nets[0]
    for net in nets[1:]:
        if net.config.with_(seed=first.config.seed, shuffle=first.config.shuffle) != first.config:
            raise ConfigError("networks run together must share everything but seed and regions")
    cfg = first.config
    rates = cfg.query_rates(rates_hz)
    seeds = [net.config.seed if s is None else s for net, s in
             zip(nets, seeds if seeds is not None else [None] * len(nets))]
    ids = np.asarray(query_ids, np.int64)
    n_present = steps(cfg.params.present_ms, cfg.dt)
    packed = cfg.packed(learning=False)
    slots = [ws.slot_t(net) for net in nets]
    if all(m is not None and np.shape(m)[-1] < MAX_MODULES for m in modules):
        # A few pre-selected modules per query: one module per job, no empty lanes.
        ks = [np.shape(m)[-1] for m in modules]
        chosen = np.full((len(nets), len(rates), max(ks)), -1, np.int64)  # -1: no module, counts 0
        for e, m in enumerate(modules):
            chosen[e, :, :ks[e]] = m
        buffers = ws.scratch("modules", n_present, slots[0])
        counts = presentations(cfg, ids, lambda stream_ids: module_kernels.infer_modules(
            packed, [n.weights for n in nets], [n.theta for n in nets], slots,
            seeds, rates, n_present, stream_ids, chosen, *buffers))
        return [counts[e, :, :k] for e, k in enumerate(ks)]
    inputs = [_lane_inputs(ws, net, m, len(rates)) for net, m in zip(nets, modules)]
    n_groups = max(groups.shape[1] for _, groups, _ in inputs)
    groups = np.full((len(nets), len(rates), n_groups, lanes.GROUP), -1, np.int64)
    for e, (_, g, _) in enumerate(inputs):
        groups[e, :, :g.shape[1]] = g
    buffers = ws.scratch("lanes", n_present, slots[0])
    counts = presentations(cfg, ids, lambda stream_ids: lanes.infer_members(
        packed, [n.weights for n in nets], [wl for wl, _, _ in inputs], [n.theta for n in nets],
        slots, seeds, rates, n_present, stream_ids, groups, *buffers))
    return [lanes.lane_counts(counts[e], k) for e, (_, _, k) in enumerate(inputs)]


def _lane_inputs(ws: Workspace, net, modules: np.ndarray | None, n_queries: int):
    """(interleaved weights, lane groups (Q, G, 8), K) of one network for the lane engine."""
    if modules is None:
        # The full network: fixed groups whose weights are interleaved once.
        interleaved, chosen = ws.interleaved(net), np.arange(net.n_modules)
    else:
        interleaved = lanes.no_interleave(net.config.n_inputs)
        chosen = np.asarray(modules, dtype=np.int64)
    groups = lanes.make_groups(np.broadcast_to(chosen, (n_queries, chosen.shape[-1])))
    return interleaved, groups, chosen.shape[-1]


def scalar_spike_counts(net, rates_hz: np.ndarray, query_ids: np.ndarray, modules: np.ndarray | None,
                        seed: int) -> np.ndarray:
    """Counts (Q, K, N) from the scalar kernel: each module on its own input train."""
    if modules is not None and np.ndim(modules) != 1:
        raise ConfigError("the scalar engine takes one module list for all queries")
    w = net.weights if modules is None else net.weights[modules]
    th = net.theta if modules is None else net.theta[modules]
    cfg = net.config
    lay = DelayLayout.build(net.delays, cfg.dt, cfg.params.delay_max)
    rates = cfg.query_rates(rates_hz)
    n_present = steps(cfg.params.present_ms, cfg.dt)
    packed = cfg.packed(learning=False)
    return presentations(cfg, np.asarray(query_ids, np.int64), lambda stream_ids: scalar.infer_from_rest(
        packed, w, th, lay.tgt, lay.off, lay.slot, rates, n_present, np.uint64(seed), stream_ids, False))
