"""The one scoring path: preprocessed frames in, ensemble-summed place scores out.

The localizer (one frame at a time), offline evaluation (batches of queries)
and the cluster's scoring task (a block of queries on a worker) all score with
a :class:`Scorer`. For each member network of an ensemble and each query::

    modules   = top K candidate modules by template NCC (pre-selection,
                :mod:`~vprsnn_ros.snn.preselect`), or every candidate module
    counts    = spike counts of those modules, the query from rest on its own
                random stream (seed, query id)          (:mod:`~vprsnn_ros.snn.engine`)
    scores_e  = the member's readout of the counts      (:meth:`ModularSNN.scores`)
    scores    = sum over members of scores_e

Each call runs on as many of Numba's threads as its jobs warrant
(:mod:`~vprsnn_ros.snn.threads`: one frame of a few modules runs on one thread).
The scorer holds all per-query state -- module rankers, laid-out weights and
scratch buffers (a :class:`~vprsnn_ros.snn.engine.Workspace`) -- so the trained
networks stay plain arrays that any number of scorers can share. A scorer is
not thread-safe; make one per thread.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from vprsnn_ros.errors import ConfigError
from vprsnn_ros.snn import engine
from vprsnn_ros.snn.network import ModularSNN
from vprsnn_ros.snn.preselect import ModuleRanker, effective_k
from vprsnn_ros.snn.readout import check_readout
from vprsnn_ros.snn.threads import numba_threads, threads_for


class Scorer:
    """Scores of an ensemble's places for preprocessed frames.

    ``modules``: the candidate modules (e.g. the test split), default every
    module. ``threshold``: the hyperactivity threshold T (None: each member's
    own). ``preselect_k``: modules run per query (None: each member's
    calibrated K; 0: every candidate). ``readout``: None = the model's.

    >>> scorer = Scorer(load_model("models/demo"))
    >>> S = scorer.scores(pixels, query_ids=np.arange(len(pixels)))   # (Q, n_places)
    """

    def __init__(self, members: Sequence[ModularSNN], *, modules: np.ndarray | None = None,
                 threshold: int | None = None, preselect_k: int | None = None,
                 readout: str | None = None) -> None:
        members = list(members)
        if not members:
            raise ConfigError("scoring needs at least one network")
        if threshold is not None and threshold < 0:
            raise ConfigError("hyperactive_threshold must be >= 0 (0 = no masking)")
        if preselect_k is not None and preselect_k < 0:
            raise ConfigError("preselect_k must be >= 0 (0 = every module)")
        first = members[0]
        self.members = members
        self.threshold = threshold
        self.readout = check_readout(first.readout if readout is None else readout)
        # None = every module: the full network, whose lane groups reuse interleaved weights.
        all_modules = modules is None or (len(modules) == first.n_modules
                                          and np.array_equal(modules, np.arange(first.n_modules)))
        self.modules = None if all_modules else np.asarray(modules, dtype=np.int64)
        n_candidates = first.n_modules if self.modules is None else len(self.modules)
        self.k = [effective_k(net, preselect_k, n_candidates) for net in members]
        self._rankers = [ModuleRanker(net, self.modules, threshold) if k < n_candidates else None
                         for net, k in zip(members, self.k)]
        self.workspace = engine.Workspace()
        # Per member, the (Q, K) modules each query of the last call ran.
        self.last_modules: list[np.ndarray] = []
        # With keep_modules: the first member's modules of every query scored so far, in order.
        self.keep_modules = False
        self.modules_history: list[np.ndarray] = []

    @property
    def n_places(self) -> int:
        return self.members[0].n_places

    @property
    def preselecting(self) -> bool:
        """Whether some member runs fewer modules than all its candidates."""
        return any(r is not None for r in self._rankers)

    def choose_modules(self, pixels: np.ndarray,
                       extra: Sequence[np.ndarray | None] | None = None) -> list[np.ndarray | None]:
        """Per member: (Q, K) pre-selected modules, or the candidates (None = all) for every query.

        ``extra[e]``: modules member e also runs (tracking: where the sequence
        hypotheses predict the next place); only for one query at a time. They
        follow the template's top K, in increasing order, without repeats.
        """
        chosen = [self.modules if ranker is None else ranker.top_modules(pixels, k)
                  for ranker, k in zip(self._rankers, self.k)]
        if extra is None:
            return chosen
        if len(pixels) != 1:
            raise ConfigError("extra modules are chosen for one query at a time")
        out = []
        for top, more in zip(chosen, extra):
            if top is None or more is None or len(more) == 0:
                out.append(top)
                continue
            more = np.asarray(more, dtype=np.int64)
            if self.modules is not None:
                more = more[np.isin(more, self.modules)]  # candidates only (e.g. the test split)
            add = np.setdiff1d(more, top[0])
            out.append(np.concatenate([top[0], add])[None] if len(add) else top)
        return out

    def spike_counts(self, pixels: np.ndarray, query_ids: Sequence[int] | np.ndarray,
                     modules: list[np.ndarray | None]) -> list[np.ndarray]:
        """Per member: spike counts (Q, K, N) of ``modules`` for preprocessed ``pixels`` (Q, n_in)."""
        rates = self.members[0].config.input_rates(pixels)
        per_query = sum(net.n_modules if m is None else np.shape(m)[-1] for net, m in zip(self.members, modules))
        with numba_threads(threads_for(len(pixels) * per_query)):
            return engine.spike_counts(self.members, rates, np.asarray(query_ids, np.int64), modules,
                                       workspace=self.workspace)

    def scores(self, pixels: np.ndarray, query_ids: Sequence[int] | np.ndarray,
               extra: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        """Ensemble-summed scores (Q, n_places) of preprocessed frames (Q, n_inputs) uint8.

        Query q runs on random stream ``query_ids[q]``. With pre-selection,
        places of modules that did not run score as the readout says
        (:meth:`ModularSNN.scores`). ``extra``: see :meth:`choose_modules`.
        """
        pixels = np.atleast_2d(pixels)
        chosen = self.choose_modules(pixels, extra)
        counts = self.spike_counts(pixels, query_ids, chosen)
        total = np.zeros((len(pixels), self.n_places))
        for net, c, m in zip(self.members, counts, chosen):
            total += net.scores(c, modules=m, threshold=self.threshold, readout=self.readout)
        self.last_modules = [np.broadcast_to(np.arange(net.n_modules) if m is None else m,
                                             (len(pixels), c.shape[1]))
                             for net, c, m in zip(self.members, counts, chosen)]
        if self.keep_modules:
            self.modules_history.extend(self.last_modules[0])
        return total

    def warm_up(self, pixels: np.ndarray) -> None:
        """Load every kernel and allocate every buffer a frame may need, on one preprocessed frame.

        Besides the usual path, a later frame may run more modules (tracking adds
        the sequence's) and so the other engine, on another thread count: doing
        it all now keeps compilation and allocation out of the stream (a frame
        is not late, and memory does not grow after start-up).
        """
        pixels = np.atleast_2d(pixels)[:1]
        self.scores(pixels, [0])
        rates = self.members[0].config.input_rates(pixels)
        for k in sorted({1, engine.MAX_MODULES}):
            modules = [np.arange(min(k, net.n_modules))[None] for net in self.members]
            for n in sorted({1, threads_for(1 << 20)}):
                with numba_threads(n):
                    engine.spike_counts(self.members, rates, np.zeros(1, np.int64), modules,
                                        workspace=self.workspace)

    def scores_in_batches(self, pixels: np.ndarray, batch: int = 32,
                          progress: Callable[[int, int], None] | None = None,
                          first_id: int = 0) -> np.ndarray:
        """:meth:`scores` of many queries, ``batch`` at a time; query q uses stream ``first_id + q``."""
        total = np.zeros((len(pixels), self.n_places))
        for start in range(0, len(pixels), batch):
            stop = min(start + batch, len(pixels))
            total[start:stop] = self.scores(pixels[start:stop], np.arange(first_id + start, first_id + stop))
            if progress is not None:
                progress(stop, len(pixels))
        return total
