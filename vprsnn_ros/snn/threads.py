"""How many of Numba's threads a call uses: the rule behind ``threads`` (node) and ``--threads`` (CLI).

A parallel kernel is only as fast as its slowest thread: every prange region
ends at a barrier. On a robot the cores are shared with other nodes, and a
thread that loses its core stalls the whole region (bench/perf/threads.py: a
single-frame query at 300 places took up to 35 ms with 2 threads and one busy
process, against 1.8-5.7 ms with 1 thread). So a call that has little work to
share runs on one thread, and only a call with many independent jobs (modules
or lane groups times queries) spreads over the threads::

    threads(jobs) = 1                     if jobs < MIN_JOBS_PER_THREAD * 2
                    min(limit, jobs // MIN_JOBS_PER_THREAD)   otherwise

``limit`` is the calling thread's Numba thread count (``numba.set_num_threads``:
what ``vprsnn --threads`` and the node's ``threads`` parameter set). Small
kernels, such as the template product of pre-selection, always run on one
thread.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from numba import config, get_num_threads, set_num_threads

# A thread gets at least this many independent jobs (module or lane-group simulations) per call.
MIN_JOBS_PER_THREAD = 4


def available() -> int:
    """The most threads Numba may run (its NUMBA_NUM_THREADS, normally the core count)."""
    return int(config.NUMBA_NUM_THREADS)


def set_limit(threads: int) -> int:
    """Let this thread's Numba calls use at most ``threads`` threads (0 = all); returns the count set."""
    n = available() if threads <= 0 else min(int(threads), available())
    set_num_threads(n)
    return n


def threads_for(jobs: int, limit: int = 0) -> int:
    """Threads for a call of ``jobs`` independent jobs, at most ``limit`` (0 = this thread's setting)."""
    cap = get_num_threads() if limit <= 0 else min(int(limit), available())
    if MIN_JOBS_PER_THREAD <= 0:  # every call on every thread (bench/perf/threads.py compares)
        return cap
    if jobs < 2 * MIN_JOBS_PER_THREAD:
        return 1
    return max(1, min(cap, jobs // MIN_JOBS_PER_THREAD))


@contextmanager
def numba_threads(n: int) -> Iterator[None]:
    """Run the body with ``n`` Numba threads in this thread, then restore the previous count."""
    before = get_num_threads()
    if n == before:
        yield
        return
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(before)
