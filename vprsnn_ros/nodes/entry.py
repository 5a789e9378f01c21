"""The node executables (``localizer``, ``trainer``, ``bag_player``, ``evaluator``).

Each entry point imports its node module only once it runs, inside a guard: a
node stopped with Ctrl-C (SIGINT) while it is still importing rclpy, NumPy and
Numba -- as ``ros2 launch`` stops the siblings of a node that failed early --
exits quietly with status 130 instead of printing a ``KeyboardInterrupt``
traceback. This module imports nothing heavy.
"""

from __future__ import annotations

import importlib
import signal
import sys


def _run(module: str, name: str) -> int:
    # A SIGINT blocked or ignored by the parent must not stop Ctrl-C from reaching the import.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        main = importlib.import_module(module).main
    except KeyboardInterrupt:
        print(f"vprsnn {name}: interrupted while starting", file=sys.stderr)
        return 130
    return main()


def localizer() -> int:
    return _run("vprsnn_ros.nodes.localizer_node", "localizer")


def trainer() -> int:
    return _run("vprsnn_ros.nodes.trainer_node", "trainer")


def bag_player() -> int:
    return _run("vprsnn_ros.nodes.bag_player", "bag_player")


def evaluator() -> int:
    return _run("vprsnn_ros.nodes.evaluator", "evaluator")
