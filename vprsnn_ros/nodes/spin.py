"""Spinning a long-running node until its context is shut down, without a spurious crash.

rclpy's default SIGINT handler shuts the context down from the signal-handling
thread. The executor notices on its next wait and raises
``ExternalShutdownException``, except when the shutdown lands while it is
building that wait set: ``rcl_wait_set_init`` then fails and ``spin()``
raises ``RCLError`` ("the given context is not valid"; ros2/rclpy#1166, seen
here on 2 of 30 shutdowns from a thread, and once in CI as a node that exited
1 on Ctrl-C). Once the context is down both mean the same: stop.
"""

from __future__ import annotations

from rclpy.context import Context
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy


def spin_until_shutdown(executor: Executor, context: Context) -> None:
    """``executor.spin()`` until ``context`` is shut down; a real RCL failure still raises."""
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
    except _rclpy.RCLError:
        if context.ok():  # not the shutdown race: a genuine failure
            raise
