"""Launch-file helpers: a process that fails stops the whole launch, and says why.

Imported only by the files in ``launch/`` (it needs the ``launch`` package of a
ROS 2 install); nothing else in vprsnn_ros depends on it.
"""

from __future__ import annotations

from launch.actions import LogInfo, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit, OnProcessIO

__all__ = ["exit_reason", "stop_launch_on_exit"]

# Exit statuses of the vprsnn executables (vprsnn_ros/nodes/job.py, localizer_node.py).
_MEANING = {2: "bad parameters or input", 130: "interrupted"}


def exit_reason(returncode: int, last_error: str) -> str:
    """'exit code 2 (bad parameters or input): <its last error line>'."""
    if returncode < 0:
        what = f"killed by signal {-returncode}"
    else:
        what = f"exit code {returncode}" + (f" ({_MEANING[returncode]})" if returncode in _MEANING else "")
    return f"{what}: {last_error}" if last_error else what


def stop_launch_on_exit(process, *, also_on_success: bool = False) -> list:
    """Event handlers that shut the launch down at once when ``process`` exits with an error.

    The log line names the process, its exit status and its last error line
    on stderr (where the vprsnn executables print their one error line). With
    ``also_on_success`` a clean exit ends the launch too (a job that is done).
    """
    last_error = {"line": ""}

    def remember(event) -> None:
        # The last line that reports an error: "vprsnn NAME: error: ..." or an [ERROR] log line.
        for line in event.text.decode(errors="replace").splitlines():
            if "error" in line.lower():
                last_error["line"] = line.strip()

    def on_exit(event, context):
        if context.is_shutdown:  # stopped by the launch itself: not a failure
            return None
        if event.returncode == 0:
            if not also_on_success:
                return None
            return [Shutdown(reason=f"{event.process_name} finished")]
        reason = f"{event.process_name} failed, {exit_reason(event.returncode, last_error['line'])}"
        return [LogInfo(msg=f"[vprsnn] {reason}; shutting the launch down"), Shutdown(reason=reason)]

    return [RegisterEventHandler(OnProcessIO(target_action=process, on_stderr=remember)),
            RegisterEventHandler(OnProcessExit(target_action=process, on_exit=on_exit))]
