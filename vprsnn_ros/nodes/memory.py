"""Giving freed memory back to the system after a model is dropped (reload, cleanup).

A model's arrays are freed as soon as nothing holds them, but glibc's allocator
keeps much of what it freed for reuse and grows its threshold for returning
large blocks once one has been freed; the node's resident memory then stays at
its peak (two models, during a reload) for good. ``malloc_trim(0)`` hands the
free memory back. Elsewhere than glibc this only collects garbage.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache


@cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc
        return None


def release_freed_memory() -> bool:
    """Collect garbage and return free heap memory to the system; True if the allocator could."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
