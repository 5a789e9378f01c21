"""Running training and evaluation tasks on a Dask cluster (``--cluster``).

Only this module imports ``dask.distributed`` (the optional extra
``vprsnn_ros[cluster]``); the in-process path never does. The client -- the
``vprsnn`` command or the trainer node -- sends each task its arrays and gets
arrays back: workers read and write no file, so they need no shared disk, only
the same vprsnn_ros installed. The client alone writes the model directory,
one module at a time as each finishes, so ``--resume`` works across runs and
clusters. A task lost with its worker is run again by the scheduler; tasks
are pure (:mod:`vprsnn_ros.parallel.tasks`), so the result does not change.

Cluster specs:

* ``local`` or ``local:N`` -- a LocalCluster of N worker processes (default:
  one per core), one thread each, started and stopped with the command;
* ``tcp://HOST:PORT`` (or ``tls://``, ``ucx://``...) -- a running scheduler;
* a path -- a scheduler file written by ``dask scheduler --scheduler-file``
  (what dask-jobqueue and ``dask-mpi`` setups share).
"""

from __future__ import annotations

import logging
import os
import re
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from vprsnn_ros.errors import ClusterError, ConfigError

_LOCAL = re.compile(r"local(?::(\d+))?")
_ADDRESS = re.compile(r"[a-z][a-z0-9+.-]*://\S+")


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ConfigError("--cluster needs dask.distributed: pip install 'vprsnn_ros[cluster]'") from None
    return distributed


class DaskRunner:
    """Tasks on a Dask cluster; see :class:`vprsnn_ros.parallel.runner.Runner`."""

    in_process = False

    def __init__(self, client: Any, spec: str, local_cluster: Any = None) -> None:
        _quiet_dask_logs()  # again: loggers the client created while connecting
        self.client = client
        self.spec = spec
        self._local = local_cluster

    # ------------------------------------------------------------------ setup
    @classmethod
    def connect(cls, spec: str, timeout: float = 10.0) -> "DaskRunner":
        """Start or reach the cluster named by ``spec``; ConfigError with one line if that fails."""
        spec = spec.strip()
        distributed = _distributed()
        _quiet_dask_logs()
        local = _LOCAL.fullmatch(spec)
        if local:
            n = int(local.group(1)) if local.group(1) else (os.cpu_count() or 1)
            if n < 1:
                raise ConfigError(f"--cluster {spec}: the number of workers must be >= 1")
            try:
                cluster = distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                    silence_logs=logging.ERROR)
                client = distributed.Client(cluster, timeout=timeout)
            except Exception as exc:  # startup failures come as many types
                raise ConfigError(f"cannot start a local Dask cluster of {n} workers: {exc}") from None
            return cls(client, spec, cluster)
        if _ADDRESS.fullmatch(spec):
            kwargs: dict = {"address": spec}
            where = f"the Dask scheduler at {spec}"
        else:
            path = Path(spec)
            if not path.is_file():
                raise ConfigError(f"--cluster {spec!r} is neither local[:N], a scheduler address "
                                  f"(tcp://HOST:PORT) nor an existing scheduler file")
            kwargs = {"scheduler_file": str(path)}
            where = f"the Dask scheduler of {spec}"
        try:
            client = distributed.Client(timeout=timeout, **kwargs)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach {where} within {timeout:g} s "
                              f"({_first_line(exc)})") from None
        except ValueError as exc:  # a malformed address or scheduler file
            raise ConfigError(f"cannot use --cluster {spec}: {_first_line(exc)}") from None
        return cls(client, spec)

    # ------------------------------------------------------------------ tasks
    @property
    def width(self) -> int:
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def submit(self, fn: Callable[..., Any], *args: Any, parallel: bool = True, **kwargs: Any) -> Any:
        # Unique keys: a key equal to one a killed client left behind (still being
        # released by the scheduler) could wait on that stale task.
        return self.client.submit(fn, *args, pure=False, **kwargs)

    def share(self, value: Any) -> Any:
        """A future of ``value`` for several tasks to read, sent to the cluster once.

        Made by a task that returns it, not by scattering: the scheduler keeps the
        task, so if the worker holding the value is lost the value is made again
        (scattered data would be lost for good and fail every task that reads it).
        """
        with warnings.catch_warnings():
            # The value travels in the task on purpose (see above); dask warns from 10 MB.
            warnings.filterwarnings("ignore", message=".*[Ll]arge graph.*")
            return self.client.submit(_identity, value, pure=False)

    @contextmanager
    def epoch_events(self, callback: Callable[[int, int], None]
                     ) -> Iterator[Callable[[int], Callable[[int], None]]]:
        """Per-epoch progress from the workers: each task logs an event on a topic of
        its own run, and the client calls ``callback(module, epoch)`` as they arrive."""
        topic = f"vprsnn-epochs-{uuid.uuid4().hex}"
        self.client.subscribe_topic(topic, lambda event: callback(*event[1]))
        try:
            yield lambda module: EpochEvent(topic, module)
        finally:
            self.client.unsubscribe_topic(topic)

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]:
        return iter(_distributed().as_completed(list(futures)))

    def cancel(self, futures: Iterable[Any]) -> None:
        futures = list(futures)
        if futures:
            self.client.cancel(futures)

    def describe(self) -> dict:
        workers = self.client.scheduler_info().get("workers", {})
        return {"cluster": self.spec, "workers": len(workers)}

    def close(self) -> None:
        self.client.close()
        if self._local is not None:
            self._local.close()

    def __enter__(self) -> "DaskRunner":
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        lost = exc is not None and _cluster_lost(exc)
        try:
            self.close()
        except Exception:  # noqa: BLE001 - a lost cluster may not close cleanly; the error below says why
            if not lost:
                raise
        if lost:
            # One line instead of Dask's traceback; what was saved so far is kept for --resume.
            raise ClusterError(f"the Dask cluster {self.spec} was lost while work ran on it "
                               f"({type(exc).__name__}: {_first_line(exc) or 'no detail'}); what was finished "
                               f"is saved: run again with --resume") from None


def _identity(value: Any) -> Any:
    return value


def _quiet_dask_logs() -> None:
    """Dask logs each failed connection attempt and worker restart at WARNING, and a lost
    scheduler as an ERROR with its traceback; the command reports a failure itself, in one
    line. Dask's logging configuration gives some of its loggers levels of their own
    (``distributed.client`` among them), so each is set, not only the parent."""
    names = [name for name in logging.root.manager.loggerDict if name.split(".")[0] == "distributed"]
    for name in ["distributed", *names]:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _cluster_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the scheduler or the connection to it is gone (not a task's own error)."""
    import concurrent.futures

    distributed = _distributed()
    lost = (concurrent.futures.CancelledError, distributed.comm.core.CommClosedError,
            distributed.client.TimeoutError)
    return isinstance(exc, lost) or type(exc).__name__ in ("FuturesCancelledError", "ClosedClientError")


class EpochEvent:
    """The ``on_epoch`` hook of a task on a Dask worker (picklable): one event per epoch."""

    def __init__(self, topic: str, module: int) -> None:
        self.topic, self.module = topic, module

    def __call__(self, epoch: int) -> None:
        from distributed import get_worker

        try:
            worker = get_worker()
        except ValueError:  # not on a worker (run by hand): nobody to tell
            return
        worker.log_event(self.topic, (self.module, epoch))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def cluster_query_scores(runner: DaskRunner, members: Sequence[Any], pixels: np.ndarray,
                         modules: np.ndarray, threshold: int | None = None, batch: int = 64,
                         progress: Callable[[int, int], None] | None = None,
                         preselect_k: int | None = None, readout: str | None = None) -> np.ndarray:
    """:func:`vprsnn_ros.eval.evaluation.query_scores` with one task per (member, query block).

    Each network is sent once to every worker; the member scores of a block are
    added in member order, as in process, so the result is the same.
    """
    from vprsnn_ros.parallel.tasks import scores_task

    nets = [runner.share(net) for net in members]
    blocks = [(a, min(a + batch, len(pixels))) for a in range(0, len(pixels), batch)]
    futures = {runner.submit(scores_task, net, pixels[a:b], np.arange(a, b), modules, threshold,
                             preselect_k, readout): k
               for k, (a, b) in enumerate(blocks) for net in nets}
    results: dict[int, list] = {k: [] for k in range(len(blocks))}
    order = {f: i for i, f in enumerate(futures)}
    total = np.zeros((len(pixels), members[0].n_places))
    done = 0
    try:
        for future in runner.as_completed(futures):
            k = futures[future]
            results[k].append((order[future], future.result()))
            if len(results[k]) == len(nets):
                a, b = blocks[k]
                for _, scores in sorted(results[k], key=lambda r: r[0]):
                    total[a:b] += scores
                results[k] = []
                done += b - a
                if progress is not None:
                    progress(done, len(pixels))
    except BaseException:
        runner.cancel(futures)
        raise
    return total
