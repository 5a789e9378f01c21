"""Losing part of a Dask cluster mid-run (issue 18, item 6). Each test has a cluster of its own.

* a worker SIGKILLed while it records hyperactivity (an ``activity_task``): the
  scheduler runs the task again and the model is array for array the in-process one;
* a worker SIGKILLed while ``vprsnn evaluate --cluster`` scores the queries (a
  ``scores_task``): the report is the in-process report;
* the scheduler SIGKILLed in the middle of ``vprsnn train --cluster``: one error
  line, exit status 2, within a bounded time; ``--resume`` on another cluster
  then finishes the model, array for array the in-process one.

The worker is killed when the scheduler says it is processing a task of that
kind: the test polls ``Client.processing()`` and kills the process whose pid
the worker reports, so the loss hits that phase, whatever the timing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

try:  # optional: the `requires` marker skips (fails in CI) without it
    import distributed
except ImportError:
    distributed = None

from vprsnn_ros.io.sources import load_traverse
from vprsnn_ros.io.synthetic import write_route
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.snn.profiles import DEFAULT_PROFILE, get_profile
from vprsnn_ros.train.training import train_network

pytestmark = [pytest.mark.slow, pytest.mark.requires("distributed")]

REPO = Path(__file__).resolve().parents[1]
N_PLACES = 16
OPTIONS = ["--places-per-module", "4", "--neurons", "30", "--epochs", "4", "--seed", "3"]
CONFIG = NetworkConfig(n_neurons=30, places_per_module=4, epochs=4, seed=3)
# tqdm's bars on stderr are not lines of an error report
PROGRESS = re.compile(r"\d+%\|| \d+/\d+ \[|\[\d\d:\d\d<")


def assert_same_model(a: Path, b: Path) -> None:
    """Every array of every part identical in bytes, dtype and shape; the same choices in model.yaml."""
    sa, sb = ModelStore.open(a), ModelStore.open(b)
    assert sa.complete and sb.complete
    assert sorted(sa.parts()) == sorted(sb.parts())
    for part in sa.parts():
        x, y = sa.read_part(part), sb.read_part(part)
        assert sorted(x) == sorted(y), part
        for key in x:
            assert x[key].dtype == y[key].dtype and x[key].shape == y[key].shape, (part, key)
            assert x[key].tobytes() == y[key].tobytes(), f"{part}/{key} differs"
    for key in ("config", "places", "hyperactive_threshold", "threshold_choice", "profile", "preselect_k"):
        assert sa.meta.get(key) == sb.meta.get(key), key


@pytest.fixture(scope="module")
def route(tmp_path_factory):
    work = tmp_path_factory.mktemp("paths_cluster")
    ref, query = write_route(work / "route", N_PLACES, seed=11)
    trav = load_traverse(ref, CONFIG.image_size, CONFIG.patch)
    # What `vprsnn train` (default profile, thumbnails) makes in process: the model to compare with.
    local = work / "in_process"
    train_network(CONFIG, [trav.pixels], trav.names, local, workers=2, profile=get_profile(DEFAULT_PROFILE),
                  thumbnails=trav.thumbnails)
    return work, ref, query, trav, local


@pytest.fixture
def cluster():
    """A LocalCluster of 2 worker processes (restarted by their nannies when killed), this test's own."""
    c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                 silence_logs=40)
    try:
        yield c
    finally:
        c.close()


def kill_worker_running(client, prefix: str, done, timeout: float = 120.0) -> str:
    """SIGKILL the worker process the scheduler reports processing a task whose key starts with
    ``prefix``; returns the key. Fails if ``done()`` becomes true first (the phase was missed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert not done(), f"the run ended before any {prefix} was seen processing"
        for address, keys in client.processing().items():
            hit = [str(k) for k in keys if str(k).startswith(prefix)]
            if hit:
                pid = client.run(os.getpid, workers=[address])[address]
                os.kill(pid, signal.SIGKILL)
                return hit[0]
        time.sleep(0.005)
    raise AssertionError(f"no {prefix} task seen within {timeout} s")


def run_cli(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "vprsnn_ros.cli", *args], cwd=str(REPO), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:  # run() has killed it
        pytest.fail(f"vprsnn {args[0]} still running after {timeout} s (killed); stderr: {exc.stderr}")


def error_lines(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if line.strip() and not PROGRESS.search(line)]


# --------------------------------------------------------------------------
# a worker lost while it records hyperactivity
# --------------------------------------------------------------------------

def test_worker_lost_during_hyperactivity_recording_gives_the_same_model(route, cluster, tmp_path):
    from vprsnn_ros.parallel.cluster import DaskRunner

    _, _, _, trav, local = route
    out = tmp_path / "model"
    runner = DaskRunner.connect(cluster.scheduler_address, timeout=30)
    result: dict = {}

    def train() -> None:
        try:
            train_network(CONFIG, [trav.pixels], trav.names, out, runner=runner,
                          profile=get_profile(DEFAULT_PROFILE), thumbnails=trav.thumbnails)
            result["ok"] = True
        except BaseException as exc:  # reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    try:
        key = kill_worker_running(runner.client, "activity_task", lambda: not thread.is_alive())
        # Training was over when recording began: every module is saved, hyperactivity is not.
        meta = yaml.safe_load((out / "model.yaml").read_text())
        assert sum(p.startswith("module_") for p in meta["parts"]) == N_PLACES // 4
        assert "hyperactivity" not in meta["parts"]
        thread.join(240)
        assert not thread.is_alive(), "training did not finish within 240 s of the worker's loss"
    finally:
        runner.close()
    print(f"\nkilled the worker processing {key}")
    assert result.get("ok"), result.get("error")
    assert_same_model(local, out)


# --------------------------------------------------------------------------
# a worker lost during `vprsnn evaluate --cluster`
# --------------------------------------------------------------------------

def test_worker_lost_during_evaluate_on_the_cluster_gives_the_same_report(route, cluster, tmp_path):
    _, _, query, _, local = route
    ok = run_cli(["evaluate", "--model", str(local), "--query", str(query), "--report", str(tmp_path / "local")],
                 timeout=300)
    assert ok.returncode == 0, ok.stderr[-3000:]
    cmd = [sys.executable, "-m", "vprsnn_ros.cli", "evaluate", "--model", str(local), "--query", str(query),
           "--report", str(tmp_path / "dask"), "--cluster", cluster.scheduler_address]
    proc = subprocess.Popen(cmd, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = distributed.Client(cluster.scheduler_address, timeout=30)
    try:
        key = kill_worker_running(client, "scores_task", lambda: proc.poll() is not None)
        out, err = proc.communicate(timeout=300)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    finally:
        client.close()
    print(f"\nkilled the worker processing {key}")
    assert proc.returncode == 0, err[-3000:]
    reports = {}
    for name in ("local", "dask"):
        reports[name] = json.loads((tmp_path / name / "report.json").read_text())
        for report in (reports[name], reports[name].get("baseline") or {}):
            report.pop("timing", None), report.pop("seconds", None)
        reports[name].pop("model", None), reports[name].pop("query", None)
    # Scores, metrics, baseline: the worker's loss changed nothing.
    assert {k: v for k, v in reports["dask"].items() if k != "where_loss"} == \
        {k: v for k, v in reports["local"].items() if k != "where_loss"}
    # And the diagnosis of the loss is the in-process one too.
    assert reports["dask"].get("where_loss") == reports["local"].get("where_loss")


# --------------------------------------------------------------------------
# the scheduler lost in the middle of `vprsnn train --cluster`
# --------------------------------------------------------------------------

CLUSTER_SCRIPT = """
import sys, time
import distributed
cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=40)
print(cluster.scheduler_address, flush=True)
time.sleep(3600)
"""


def test_scheduler_lost_mid_training_is_one_error_line_and_resume_finishes(route, tmp_path):
    _, ref, _, _, local = route
    host = subprocess.Popen([sys.executable, "-c", CLUSTER_SCRIPT], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    out = tmp_path / "model"
    train = None
    try:
        address = host.stdout.readline().strip()
        assert address.startswith("tcp://"), f"the cluster did not start: {address!r}"
        cmd = [sys.executable, "-m", "vprsnn_ros.cli", "train", "--reference", str(ref), "--out", str(out),
               *OPTIONS, "--cluster", address, "--cluster-timeout", "5"]
        train = subprocess.Popen(cmd, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and train.poll() is None:
            manifest = out / "model.yaml"
            if manifest.exists():
                parts = (yaml.safe_load(manifest.read_text()) or {}).get("parts") or {}
                if any(p.startswith("module_") for p in parts):
                    break
            time.sleep(0.02)
        assert train.poll() is None, "training finished (or failed) before the scheduler could be lost"
        os.killpg(host.pid, signal.SIGKILL)  # the scheduler, its nannies and workers
        host.wait(30)
        try:
            _, err = train.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            train.kill()
            _, err = train.communicate()
            pytest.fail(f"`vprsnn train` still running 180 s after its scheduler was lost; stderr:\n{err[-3000:]}")
    finally:
        if host.poll() is None:
            os.killpg(host.pid, signal.SIGKILL)
            host.wait(30)
        if train is not None and train.poll() is None:
            train.kill()
            train.communicate()
    lines = error_lines(err)
    print(f"\nexit {train.returncode}; stderr lines: {lines[-3:]}")
    assert not ModelStore.open(out).complete

    # --resume on another cluster finishes the model (checked first, so that both promises are reported).
    again = run_cli(["train", "--reference", str(ref), "--out", str(out), *OPTIONS, "--cluster", "local:2",
                     "--resume"], timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_same_model(local, out)
    assert ModelStore.open(out).meta["training"]["cluster"] == "local:2"

    # The loss itself: one line naming the problem, exit 2, no traceback.
    assert "Traceback" not in err and train.returncode == 2, f"exit {train.returncode}:\n{err[-3000:]}"
    assert len(lines) == 1 and lines[0].startswith("vprsnn: error:"), lines
    assert re.search(r"scheduler|cluster", lines[0], re.I), lines[0]
