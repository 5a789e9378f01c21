"""Launch-file helpers: a process that fails stops the whole launch, says why, and makes
``ros2 launch`` exit non-zero.

Imported only by the files in ``launch/`` (it needs the ``launch`` package of a
ROS 2 install); nothing else in vprsnn_ros depends on it. The decisions (which
exit is a failure, which output line gives the reason) are the plain functions of
:mod:`vprsnn_ros.nodes.launch_logic`, tested without ``launch``.
"""

from __future__ import annotations

import launch.logging
from launch.actions import OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit, OnProcessIO

from vprsnn_ros.nodes.launch_logic import ErrorLines, exit_outcome, exit_reason, failure_message

__all__ = ["LaunchFailed", "exit_reason", "stop_launch_on_exit"]


class LaunchFailed(RuntimeError):
    """Raised inside the launch when a process failed: ``ros2 launch`` then exits 1.

    (A ``Shutdown`` action alone ends the launch with exit status 0.)
    """


def stop_launch_on_exit(process, *, also_on_success: bool = False) -> list:
    """Event handlers that shut the launch down at once when ``process`` exits with an error.

    The ERROR log line names the process, its exit status and the reason its
    last error line gave on stderr (where the vprsnn executables print their one
    error line), without that line's log prefix. Then the launch shuts down and
    fails. With ``also_on_success`` a clean exit ends the launch too (a job that is
    done), with exit status 0.
    """
    errors = ErrorLines()

    def on_exit(event, context):
        outcome = exit_outcome(event.returncode, is_shutdown=context.is_shutdown,
                               also_on_success=also_on_success)
        if outcome == "ignore":
            return None
        if outcome == "finish":
            return [Shutdown(reason=f"{event.process_name} finished")]
        reason = failure_message(event.process_name, event.returncode, errors.last)

        def log(_context):
            launch.logging.get_logger("vprsnn").error(f"{reason}; shutting the launch down")

        def fail(_context):
            raise LaunchFailed(reason)

        return [OpaqueFunction(function=log), Shutdown(reason=reason), OpaqueFunction(function=fail)]

    return [RegisterEventHandler(OnProcessIO(target_action=process, on_stderr=lambda event: errors.feed(event.text))),
            RegisterEventHandler(OnProcessExit(target_action=process, on_exit=on_exit))]
