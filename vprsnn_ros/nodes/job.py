"""Running a node that does one job and exits (trainer, bag player, evaluator)."""

from __future__ import annotations

import sys
from typing import Callable

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from ..errors import VprsnnError


def run_job(name: str, make_node: Callable[[], Node], job: Callable[[Node, SingleThreadedExecutor], object],
            args: list[str] | None = None) -> int:
    """Start rclpy, build the node, run ``job(node, executor)`` and shut down.

    Exit status: 0 done, 2 with one ``vprsnn NAME: error: ...`` line for a
    deliberate error (bad parameters or input), 130 on Ctrl-C. Python's own
    SIGINT handling is kept so that Ctrl-C interrupts a long job.
    """
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
