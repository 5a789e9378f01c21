"""``spin_until_shutdown``: a context shut down from another thread (rclpy's SIGINT handler)
ends the spin quietly, whichever exception the executor raised; a real RCL failure still raises."""

from __future__ import annotations

import threading

import pytest

try:  # optional: the `ros` marker skips the test (fails it in CI) without rclpy
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

    from vprsnn_ros.nodes.spin import spin_until_shutdown
except ImportError:
    pass

pytestmark = pytest.mark.ros


def test_a_shutdown_from_another_thread_always_ends_the_spin_quietly(ros_domain):
    # The race (shutdown while the executor builds its wait set) hit 2 of 30 raw spins here;
    # 40 shutdowns at staggered times, each must end spin_until_shutdown without an exception.
    for trial in range(40):
        context = rclpy.Context()
        rclpy.init(context=context, domain_id=ros_domain)
        node = rclpy.create_node("spin_shutdown_test", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        node.create_timer(0.0001, lambda: None)  # keeps the executor rebuilding its wait set
        timer = threading.Timer(0.02 + 0.001 * trial, context.try_shutdown)
        timer.start()
        try:
            spin_until_shutdown(executor, context)
        finally:
            timer.join()
            executor.shutdown()
            node.destroy_node()
        assert not context.ok()


class _FailingExecutor:
    def spin(self) -> None:
        raise _rclpy.RCLError("failed to initialize wait set: something else")


class _Context:
    def __init__(self, ok: bool) -> None:
        self._ok = ok

    def ok(self) -> bool:
        return self._ok


def test_an_rcl_error_while_the_context_is_up_is_not_swallowed():
    with pytest.raises(_rclpy.RCLError):
        spin_until_shutdown(_FailingExecutor(), _Context(ok=True))
    spin_until_shutdown(_FailingExecutor(), _Context(ok=False))  # after a shutdown: a stop
