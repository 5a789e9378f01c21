"""A silent first start no more: the localizer says, once, that it compiles the Numba kernels when
their cache is cold (:mod:`vprsnn_ros.nodes.kernel_cache`)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from vprsnn_ros.localizer import Localizer
from vprsnn_ros.nodes.kernel_cache import LANES, MODULES, engine_module, uncached_kernels

REPO = Path(__file__).resolve().parents[1]
COLD_LINE = "compiling the Numba kernels"


def stop(proc: subprocess.Popen) -> None:
    """SIGINT to the node's process group; SIGKILL if it is still there after 15 s."""
    for sig, wait in ((signal.SIGINT, 15.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.mark.slow
def test_a_cold_cache_names_the_inference_kernels(tmp_path):
    """A fresh NUMBA_CACHE_DIR is a cold cache (importing the kernels compiles only one small one)."""
    code = ("from vprsnn_ros.nodes.kernel_cache import LANES, MODULES, uncached_kernels\n"
            "print(uncached_kernels(LANES)); print(uncached_kernels(MODULES))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(REPO), capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba")))
    assert proc.returncode == 0, proc.stderr
    lanes, modules = proc.stdout.splitlines()
    assert "_infer" in lanes and "query_trains" in lanes
    assert "_infer_modules" in modules
    assert "_copy_out" not in modules  # always inlined: never cached on its own


def test_after_a_warm_up_the_cache_is_warm(model16):
    full = Localizer(model16)
    few = Localizer(model16, preselect_k=1)
    assert engine_module(full) == LANES and engine_module(few) == MODULES
    for loc in (full, few):
        loc.warm_up()
        assert uncached_kernels(engine_module(loc)) == []


@pytest.mark.ros
@pytest.mark.slow
def test_the_node_says_once_that_it_compiles_on_a_cold_cache(model16, ros_domains, tmp_path):
    """The real node on an empty NUMBA_CACHE_DIR: the line comes once, before the model is loaded
    (about 20-30 s of compilation on 2 cores)."""
    cmd = [sys.executable, "-m", "vprsnn_ros.nodes.localizer_node", "--ros-args", "-p", f"model_path:={model16}"]
    env = ros_domains.env(ros_domains.new(), NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    proc = subprocess.Popen(cmd, cwd=str(REPO), env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    incoming: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [incoming.put(line.rstrip("\n")) for line in proc.stdout],
                              daemon=True)
    reader.start()
    seen: list[str] = []
    deadline = time.monotonic() + 240.0
    try:
        while not any("ready:" in line for line in seen) and time.monotonic() < deadline:
            try:
                seen.append(incoming.get(timeout=1.0))
            except queue.Empty:
                if proc.poll() is not None and not reader.is_alive():
                    break
    finally:
        stop(proc)
    lines = seen
    out = "\n".join(seen)
    assert any("ready:" in line for line in lines), out
    cold = [k for k, line in enumerate(lines) if COLD_LINE in line]
    loaded = [k for k, line in enumerate(lines) if "kernels warm in" in line]
    assert len(cold) == 1 and loaded and cold[0] < loaded[0], out
    assert "20-30 s" in lines[cold[0]]
