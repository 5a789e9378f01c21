"""The launch files' decisions, without ``launch``: which exit fails the launch, and the one
line that says why (vprsnn_ros/nodes/launch_logic.py, used by launch_support.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vprsnn_ros.nodes.launch_logic import (
    ErrorLines,
    error_reason,
    exit_outcome,
    exit_reason,
    failure_message,
    is_error_line,
)


@pytest.mark.parametrize("code, last, expected", [
    (2, "no model at m", "exit code 2 (bad parameters or input): no model at m"),
    (130, "", "exit code 130 (interrupted)"),
    (1, "boom", "exit code 1: boom"),
    (-9, "", "killed by signal 9"),
    (-11, "segfault here", "killed by signal 11: segfault here"),
])
def test_exit_reason_names_the_status_and_its_meaning(code, last, expected):
    assert exit_reason(code, last) == expected


def test_failure_message_is_process_status_and_reason():
    assert (failure_message("localizer-1", 2, "configure failed: no model at /m")
            == "localizer-1 failed, exit code 2 (bad parameters or input): configure failed: no model at /m")


@pytest.mark.parametrize("line, reason", [
    # rclpy's console format, as the node prints it
    ("[ERROR] [1712345678.123456789] [vprsnn_localizer]: configure failed: no model at /m; the node "
     "stays unconfigured", "configure failed: no model at /m; the node stays unconfigured"),
    # ... and as ros2 launch shows it, with the process prefix
    ("[localizer-1] [ERROR] [1712345678.123456789] [vprsnn_localizer]: configure failed: no model at /m",
     "configure failed: no model at /m"),
    ("[FATAL] [1.5] [ns.vprsnn_localizer]: cannot start: x", "cannot start: x"),
    # the one error line of a vprsnn job and of the CLI
    ("vprsnn trainer: error: reference missing_route.mcap does not exist",
     "reference missing_route.mcap does not exist"),
    ("[trainer-1] vprsnn trainer: error: bad epochs", "bad epochs"),
    ("vprsnn bag_player: error: no bag at b", "no bag at b"),
    ("vprsnn: error: no model at m", "no model at m"),
    # colours (RCUTILS_COLORIZED_OUTPUT=1)
    ("\x1b[31m[ERROR] [1.0] [vprsnn_evaluator]: no model at m\x1b[0m", "no model at m"),
    # an error line without a known prefix is kept whole
    ("RuntimeError: something else", "RuntimeError: something else"),
])
def test_error_reason_strips_the_prefixes(line, reason):
    assert is_error_line(line)
    assert error_reason(line) == reason


@pytest.mark.parametrize("line", ["[INFO] [1.0] [vprsnn_localizer]: ready: 16 places",
                                  "[WARN] [1.0] [vprsnn_localizer]: frame dropped", "", "   "])
def test_other_lines_are_not_error_lines(line):
    assert not is_error_line(line)


def test_error_lines_keep_the_last_error_across_chunks():
    errors = ErrorLines()
    assert errors.last == ""
    errors.feed(b"[INFO] [1.0] [vprsnn_trainer]: reading reference\n")
    assert errors.last == ""
    errors.feed(b"[ERROR] [2.0] [vprsnn_trainer]: first problem\nvprsnn trai")
    assert errors.last == "first problem"
    # The chunk ended inside a line: the rest comes with the next chunk.
    errors.feed("ner: error: the real reason\n[INFO] [3.0] [vprsnn_trainer]: exiting\n")
    assert errors.last == "the real reason"
    # A last line without its newline (the process died) still counts.
    errors.feed(b"vprsnn trainer: error: cut off")
    assert errors.last == "cut off"
    # Progress bars end their updates with '\r'; an error after one is still found.
    errors.feed(b"\n 50%|#####     | 5/10\r100%|##########| 10/10\rvprsnn trainer: error: after a bar\n")
    assert errors.last == "after a bar"
    # Undecodable bytes do not stop it.
    errors.feed(b"[ERROR] [4.0] [x]: bytes \xff\n")
    assert errors.last == "bytes \ufffd"


@pytest.mark.parametrize("code, is_shutdown, also_on_success, outcome", [
    (0, False, False, "ignore"),     # a serving process that ends cleanly leaves the launch up
    (0, False, True, "finish"),      # a job that is done ends the launch, status 0
    (2, False, False, "fail"),
    (2, False, True, "fail"),
    (-9, False, True, "fail"),
    (130, False, False, "fail"),
    (2, True, False, "ignore"),      # stopped by the launch's own shutdown: not a failure
    (-2, True, True, "ignore"),
])
def test_exit_outcome(code, is_shutdown, also_on_success, outcome):
    assert exit_outcome(code, is_shutdown=is_shutdown, also_on_success=also_on_success) == outcome


def test_launch_logic_does_not_need_launch():
    code = ("import sys; import vprsnn_ros.nodes.launch_logic; "
            "bad = [m for m in sys.modules if m == 'launch' or m.startswith(('launch.', 'rclpy'))]; "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
