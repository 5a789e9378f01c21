"""Running a node that does one job and exits (trainer, bag player, evaluator)."""

from __future__ import annotations

import signal
import sys
from typing import Callable

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from vprsnn_ros.errors import VprsnnError


def run_job(name: str, make_node: Callable[[], Node], job: Callable[[Node, SingleThreadedExecutor], object],
            args: list[str] | None = None) -> int:
    """Start rclpy, build the node, run ``job(node, executor)`` and shut down.

    Exit status: 0 done, 2 with one ``vprsnn NAME: error: ...`` line for a
    deliberate error (bad parameters or input), 130 on Ctrl-C. Python's own
    SIGINT handling is kept so that Ctrl-C interrupts a long job.
    """
    # Ctrl-C must reach the job whatever its parent did: a process inherits a blocked or
    # ignored SIGINT (seen on a fresh install: a player started by a test whose process had
    # SIGINT blocked waited on through its SIGINT), and launch and replay stop jobs with it.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    rclpy.init(args=sys.argv if args is None else args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        job(node, executor)
        return 0
    except KeyboardInterrupt:
        print(f"vprsnn {name}: interrupted", file=sys.stderr)
        return 130
    except VprsnnError as exc:
        print(f"vprsnn {name}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
