"""Where tasks run: threads of this process (the default) or a Dask cluster (:mod:`.cluster`).

A runner submits the pure functions of :mod:`vprsnn_ros.parallel.tasks` and hands back
futures with ``result()``; :meth:`Runner.as_completed` yields them as they
finish, so the caller can save each trained module at once. Only the calling
process touches the model directory.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import as_completed as _as_completed
from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, ContextManager, Iterable, Iterator, Protocol


class Runner(Protocol):
    """What :func:`vprsnn_ros.train.training.train_network` and extension need from an executor."""

    #: True when tasks run in this process: they may then take callbacks (per-epoch progress).
    in_process: bool
    #: How many tasks run at once (for splitting work into blocks).
    width: int
    def submit(self, fn: Callable[..., Any], *args: Any, parallel: bool = True, **kwargs: Any) -> Any: ...

    def share(self, value: Any) -> Any: ...

    def epoch_events(self, callback: Callable[[int, int], None]
                     ) -> ContextManager[Callable[[int], Callable[[int], None]]]: ...

    def as_completed(self, futures: Iterable[Any]) -> Iterator[Any]: ...

    def cancel(self, futures: Iterable[Any]) -> None: ...

    def describe(self) -> dict: ...

    def close(self) -> None: ...


class LocalRunner:
    """Threads of this process. ``parallel=False`` tasks (inference, which Numba already
    spreads over the cores) run one at a time; training tasks run ``workers`` at once."""

    in_process = True

    def __init__(self, workers: int = 2) -> None:
        self.width = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vprsnn_train")
        self._serial = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vprsnn_infer")

    def submit(self, fn: Callable[..., Any], *args: Any, parallel: bool = True, **kwargs: Any) -> Future:
        return (self._pool if parallel else self._serial).submit(fn, *args, **kwargs)

    def share(self, value: Any) -> Any:
        return value

    @contextmanager
    def epoch_events(self, callback: Callable[[int, int], None]
                     ) -> Iterator[Callable[[int], Callable[[int], None]]]:
        """``hook(module)`` -> the ``on_epoch`` of that module's task, calling
        ``callback(module, epoch)`` (here: directly, in the task's thread)."""
        yield lambda module: partial(callback, module)

    def as_completed(self, futures: Iterable[Future]) -> Iterator[Future]:
        return _as_completed(list(futures))

    def cancel(self, futures: Iterable[Future]) -> None:
        for f in futures:
            f.cancel()

    def describe(self) -> dict:
        return {"workers": self.width}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._serial.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "LocalRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_runner(cluster: str | None = None, workers: int = 2, timeout: float = 10.0) -> Any:
    """A :class:`LocalRunner` of ``workers`` threads, or with ``cluster`` a Dask runner
    (:mod:`vprsnn_ros.parallel.cluster`, imported only then). Use it as a context manager."""
    if cluster:
        from vprsnn_ros.parallel.cluster import DaskRunner

        return DaskRunner.connect(cluster, timeout)
    return LocalRunner(workers)
