"""What the launch files decide when one of their processes ends, without the ``launch`` package.

:mod:`vprsnn_ros.nodes.launch_support` wires these functions into ROS 2 launch
event handlers; here they are plain functions, so that they are unit-tested
wherever the package is (``launch`` comes only with a full ROS 2 install).

* :class:`ErrorLines` remembers the last line of a process's output that reports
  an error, reduced to the reason (:func:`error_reason` strips the launch, ROS
  log and CLI prefixes);
* :func:`exit_outcome` says whether an exit ends the launch, and as a failure;
* :func:`failure_message` is the one line that says which process failed and why.
"""

from __future__ import annotations

import re

__all__ = ["ErrorLines", "error_reason", "exit_outcome", "exit_reason", "failure_message", "is_error_line"]

# Exit statuses of the vprsnn executables (vprsnn_ros/nodes/job.py, localizer_node.py).
EXIT_MEANING = {2: "bad parameters or input", 130: "interrupted"}

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# "[localizer-1] ": the prefix ros2 launch puts before each line of a process's output.
_LAUNCH_PREFIX = re.compile(r"^\[[\w.\-/]+-\d+\]\s*")
# "[ERROR] [1712345678.123456789] [vprsnn_localizer]: ": rclpy's console log format.
_ROS_PREFIX = re.compile(r"^\[(?:DEBUG|INFO|WARN|WARNING|ERROR|FATAL)\]\s*(?:\[[^\]]*\]\s*)*?\[[^\]]*\]:\s*")
# "vprsnn trainer: error: ", "vprsnn: error: ": the one error line of a vprsnn job or the CLI.
_CLI_PREFIX = re.compile(r"^vprsnn(?: [\w\-]+)?: error:\s*")


def exit_reason(returncode: int, last_error: str) -> str:
    """'exit code 2 (bad parameters or input): <its last error line>'."""
    if returncode < 0:
        what = f"killed by signal {-returncode}"
    else:
        what = f"exit code {returncode}" + (f" ({EXIT_MEANING[returncode]})" if returncode in EXIT_MEANING else "")
    return f"{what}: {last_error}" if last_error else what


def is_error_line(line: str) -> bool:
    """A line that reports an error: ``vprsnn NAME: error: ...``, an [ERROR]/[FATAL] log line,
    or any line that says 'error'."""
    text = _ANSI.sub("", line)
    return "error" in text.lower() or "[FATAL]" in text


def error_reason(line: str) -> str:
    """The reason a log line gives, without the launch, ROS log or CLI prefix.

    '[localizer-1] [ERROR] [1712.5] [vprsnn_localizer]: configure failed: no model at m'
    -> 'configure failed: no model at m'.
    """
    text = _LAUNCH_PREFIX.sub("", _ANSI.sub("", line).strip())
    text = _ROS_PREFIX.sub("", text)
    return _CLI_PREFIX.sub("", text).strip()


class ErrorLines:
    """Remembers the last error line of a process's output, fed in chunks as they arrive
    (a chunk may end in the middle of a line)."""

    def __init__(self) -> None:
        self._last = ""
        self._partial = ""

    def feed(self, chunk: bytes | str) -> None:
        text = chunk.decode(errors="replace") if isinstance(chunk, bytes) else chunk
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._take(line)

    def _take(self, line: str) -> None:
        # splitlines(): the '\r' of progress bars also ends a line.
        for part in line.splitlines():
            if part.strip() and is_error_line(part):
                self._last = error_reason(part)

    @property
    def last(self) -> str:
        """The reason given by the last error line so far ('' if none), counting an unfinished line."""
        if self._partial:
            pending = ErrorLines()
            pending._take(self._partial)
            if pending._last:
                return pending._last
        return self._last


def exit_outcome(returncode: int, *, is_shutdown: bool, also_on_success: bool) -> str:
    """What a process's exit means for its launch.

    'ignore' (the launch was already stopping, or a clean exit of a process that
    serves), 'finish' (a job that is done ends the launch) or 'fail'.
    """
    if is_shutdown:  # stopped by the launch itself: not a failure
        return "ignore"
    if returncode == 0:
        return "finish" if also_on_success else "ignore"
    return "fail"


def failure_message(process_name: str, returncode: int, last_error: str) -> str:
    """'localizer-1 failed, exit code 2 (bad parameters or input): configure failed: ...'."""
    return f"{process_name} failed, {exit_reason(returncode, last_error)}"
