"""Whether the Numba kernels a localizer runs are already compiled in Numba's on-disk cache (no ROS import).

On a cold cache (the first start after an install or an update of the package)
the localizer's warm-up compiles the inference kernels, which takes about
20-30 s in which a node would otherwise print nothing; the node logs a line
first when :func:`uncached_kernels` names any.

The check asks each cached kernel (``@njit(cache=True)``) of the engine's
module for its cache index, where Numba itself looks (``NUMBA_CACHE_DIR``, the
package's ``__pycache__``, or the user-wide cache), and whether that index is
fresh for the source file as it is now. It uses Numba's cache internals; if they
change, the kernels are reported as uncached (a needless line, never a missing one).
"""

from __future__ import annotations

import importlib

LANES = "vprsnn_ros.snn.kernels.lanes"      # the full network, in groups of 8 modules
MODULES = "vprsnn_ros.snn.kernels.modules"  # a few pre-selected modules per frame
COMPILE_NOTE = "about 20-30 s"               # measured: 22-24 s on 2 cores for the lane engine


def engine_module(localizer) -> str:
    """The kernel module the localizer's frames run in (as :func:`vprsnn_ros.snn.engine.spike_counts`
    chooses: the module engine when every network runs fewer than its ``MAX_MODULES``
    pre-selected modules)."""
    from vprsnn_ros.snn.kernels import modules

    few = all(k < min(modules.MAX_MODULES, net.n_modules)
              for k, net in zip(localizer.preselect, localizer.members))
    return MODULES if few else LANES


def _is_cached(dispatcher) -> bool:
    try:
        return bool(dispatcher._cache._cache_file._load_index())
    except Exception:  # noqa: BLE001 - Numba internals changed, or an unreadable index: say uncached
        return False


def uncached_kernels(module_name: str) -> list[str]:
    """Names of the cached Numba kernels defined in ``module_name`` that have no fresh entry in
    Numba's cache (all of them on a cold cache; [] when warm)."""
    from numba.core.registry import CPUDispatcher

    module = importlib.import_module(module_name)
    missing = []
    for name, obj in sorted(vars(module).items()):
        if not isinstance(obj, CPUDispatcher) or getattr(obj.py_func, "__module__", None) != module_name:
            continue
        if type(obj._cache).__name__ == "NullCache" or obj.targetoptions.get("inline") == "always":
            continue  # not cached on its own: no cache=True, or always inlined into its callers
        if not _is_cached(obj):
            missing.append(name)
    return missing
