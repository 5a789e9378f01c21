"""``vprsnn replay-eval``: replay a bag through the real localizer node and report.

Starts the localizer (reliable QoS, ``~/scores`` on), the evaluator and the bag
player as separate processes talking over DDS, waits for the player and the
evaluator to finish, stops the localizer, and returns the evaluator's report.
No ``ros2 launch`` needed; ``launch/evaluate.launch.py`` does the same under ROS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from vprsnn_ros.errors import DataError

IMAGE_TOPIC = "/vprsnn_replay/image"


def _node(module: str, params: dict, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", f"vprsnn_ros.nodes.{module}", "--ros-args",
           "-r", f"image:={IMAGE_TOPIC}"]
    for name, value in params.items():
        if value is not None and value != "":
            cmd += ["-p", f"{name}:={value}"]
    # A replay is a job on this machine: unless told otherwise, keep its DDS traffic here.
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env=env)


def _last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def replay_evaluate(model: str | Path, bag: str | Path, report_dir: str | Path, *, topic: str | None = None,
                    mode: str = "lockstep", rate_factor: float = 1.0, sequence_length: int = 1,
                    sequence_matcher: str = "diagonal", preselect_k: int = -1,
                    readout: str | None = None, threshold: int | None = None,
                    every: int = 1, limit: int | None = None, timeout: float = 3600.0) -> dict:
    """Run localizer + evaluator + player on ``bag``; returns report.json's content.

    ``preselect_k`` (-1: the model's K), ``readout`` (None: the model's) and
    ``threshold`` (None: the model's T) override the localizer's settings.
    """
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    logs = {name: report_dir / f"{name}.log" for name in ("localizer", "evaluator", "player")}
    sampling = {"topic": topic, "every": every, "limit": limit or 0}
    localizer = _node("localizer_node", {"model_path": str(model), "reliable": "true",
                                         "publish_scores": "true", "sequence_length": sequence_length,
                                         "sequence_matcher": sequence_matcher, "preselect_k": preselect_k,
                                         "readout": readout or "",
                                         "hyperactive_threshold": -1 if threshold is None else threshold},
                      logs["localizer"])
    procs = [localizer]
    try:
        evaluator = _node("evaluator", {"bag": str(bag), **sampling, "model": str(model),
                                        "sequence_length": sequence_length,
                                        "sequence_matcher": sequence_matcher, "readout": readout or "",
                                        "hyperactive_threshold": -1 if threshold is None else threshold,
                                        "preselect_k": preselect_k, "report_dir": str(report_dir)},
                      logs["evaluator"])
        player = _node("bag_player", {"bag": str(bag), **sampling, "mode": mode,
                                      "rate_factor": rate_factor, "min_subscribers": 2,
                                      "start_signal": "/vprsnn_evaluator/ready"}, logs["player"])
        procs += [evaluator, player]
        for name, proc in (("player", player), ("evaluator", evaluator)):
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                raise DataError(f"replay: the {name} did not finish within {timeout:.0f} s") from None
            if code != 0:
                raise DataError(f"replay: the {name} failed: {_last_line(logs[name])}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    if localizer.returncode not in (0, None, -signal.SIGINT):
        raise DataError(f"replay: the localizer failed: {_last_line(logs['localizer'])}")
    return json.loads((report_dir / "report.json").read_text())
