"""Training and evaluation on a Dask cluster give the model and the report of in-process runs.

One LocalCluster of 2 worker processes serves the tests that leave it whole; the tests that
SIGKILL workers get a cluster of their own, so that no result depends on the order of the
tests. Tiny modules, few epochs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from vprsnn_ros.cli import main
from vprsnn_ros.io.sources import load_traverse
from vprsnn_ros.io.synthetic import write_route
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.parallel.cluster import DaskRunner
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.snn.profiles import DEFAULT_PROFILE, get_profile
from vprsnn_ros.train.training import train_network

# Nothing is skipped at import time (see conftest.py): each test that needs dask says so.

N_PLACES = 32
N_CAL = 8
OPTIONS = ["--places-per-module", "4", "--neurons", "30", "--epochs", "4", "--seed", "3"]
CONFIG = NetworkConfig(n_neurons=30, places_per_module=4, epochs=4, seed=3)


def assert_same_model(a: Path, b: Path) -> None:
    """Every array of every part byte-identical (the .npz files differ only in zip timestamps)."""
    sa, sb = ModelStore.open(a), ModelStore.open(b)
    assert sa.complete and sb.complete
    assert sorted(sa.parts()) == sorted(sb.parts())
    for part in sa.parts():
        x, y = sa.read_part(part), sb.read_part(part)
        assert sorted(x) == sorted(y)
        for key in x:
            assert x[key].dtype == y[key].dtype and x[key].shape == y[key].shape, (part, key)
            assert x[key].tobytes() == y[key].tobytes(), f"{part}/{key} differs"
    for key in ("config", "places", "hyperactive_threshold", "calibration"):
        assert sa.meta.get(key) == sb.meta.get(key), key


def as_cli(trav) -> dict:
    """What `vprsnn train` and the trainer node add to train_network: the default profile, thumbnails."""
    return {"profile": get_profile(DEFAULT_PROFILE), "thumbnails": trav.thumbnails}


@pytest.fixture(scope="module")
def route(tmp_path_factory):
    work = tmp_path_factory.mktemp("cluster")
    ref, query = write_route(work / "route", N_PLACES, seed=11)
    return work, ref, query


def calibration(route) -> dict:
    """Calibration on the first N_CAL places, comparing 2 and 4 epochs (tasks of every kind)."""
    query = load_traverse(route[2], CONFIG.image_size, CONFIG.patch)
    return dict(calibration_places=N_CAL, calibration_query=query.pixels[:N_CAL], epoch_checkpoints=[2])


@pytest.fixture(scope="module")
def in_process(route):
    work, ref, _ = route
    trav = load_traverse(ref, CONFIG.image_size, CONFIG.patch)
    out = work / "in_process"
    train_network(CONFIG, [trav.pixels], trav.names, out, workers=2, **calibration(route), **as_cli(trav))
    return out


@pytest.fixture(scope="module")
def in_process_plain(route):
    """Without calibration (the trainer node has no calibration parameters)."""
    work, ref, _ = route
    trav = load_traverse(ref, CONFIG.image_size, CONFIG.patch)
    out = work / "in_process_plain"
    train_network(CONFIG, [trav.pixels], trav.names, out, workers=2, **as_cli(trav))
    return out


def local_cluster():
    import distributed

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=40)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def scheduler():
    """Shared by the tests that leave the cluster whole."""
    yield from local_cluster()


@pytest.fixture
def own_scheduler():
    """A cluster of the test's own: for the tests that kill its workers."""
    yield from local_cluster()


def train_args(ref, out, *extra):
    query = ref.parent / "query"
    return ["train", "--reference", str(ref), "--out", str(out), *OPTIONS, "--calibration-places",
            str(N_CAL), "--calibration-query", str(query), "--epoch-checkpoints", "2", *extra]


@pytest.mark.requires("distributed")
@pytest.mark.slow
def test_cluster_training_and_evaluation_equal_in_process(route, in_process, scheduler, tmp_path):
    _, ref, query = route
    out = tmp_path / "on_cluster"
    assert main(train_args(ref, out, "--cluster", scheduler)) == 0
    assert_same_model(in_process, out)
    assert ModelStore.open(out).meta["training"]["cluster"] == scheduler
    reports = {}
    for name, extra in (("local", []), ("dask", ["--cluster", scheduler])):
        assert main(["evaluate", "--model", str(out), "--query", str(query),
                     "--report", str(tmp_path / name), *extra]) == 0
        reports[name] = json.loads((tmp_path / name / "report.json").read_text())
        del reports[name]["timing"], reports[name]["baseline"]["seconds"]  # wall times
    assert reports["local"] == reports["dask"]


def _processing_worker_pid(client) -> int:
    """Pid of a worker that is running a task right now."""
    pids = client.run(os.getpid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        busy = [addr for addr, keys in client.processing().items() if keys]
        if busy:
            return pids[busy[0]]
        time.sleep(0.01)
    raise AssertionError("no worker was ever busy")


@pytest.mark.requires("distributed")
@pytest.mark.slow
def test_worker_killed_mid_training_gives_the_same_model(route, in_process, own_scheduler, tmp_path):
    work, ref, _ = route
    trav = load_traverse(ref, CONFIG.image_size, CONFIG.patch)
    out = tmp_path / "killed_worker"
    messages = []
    runner = DaskRunner.connect(own_scheduler, timeout=10)
    result = {}

    def run():
        try:
            train_network(CONFIG, [trav.pixels], trav.names, out, runner=runner,
                          progress=lambda done, total, message: messages.append(message),
                          **calibration(route), **as_cli(trav))
            result["ok"] = True
        except BaseException as exc:  # reported by the assertion below
            result["error"] = exc

    def modules_saved() -> int:
        if not (out / "model.yaml").exists():
            return 0
        parts = (yaml.safe_load((out / "model.yaml").read_text()) or {}).get("parts") or {}
        return sum(1 for p in parts if p.startswith("module_"))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while modules_saved() == 0 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        pid = _processing_worker_pid(runner.client)
        os.kill(pid, signal.SIGKILL)
        killed_at = modules_saved()
        thread.join(120)
    finally:
        runner.close()
    assert result.get("ok"), result.get("error")
    assert killed_at < N_PLACES // CONFIG.places_per_module, "the worker was killed after training"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert_same_model(in_process, out)
    # Progress came from the workers at every epoch, not only when a module finished.
    assert any(m.endswith((" epoch 1", " epoch 2", " epoch 3")) for m in messages), messages[:20]


@pytest.mark.requires("distributed")
@pytest.mark.slow
def test_client_killed_then_resume_gives_the_same_model(route, in_process, scheduler, tmp_path):
    _, ref, _ = route
    out = tmp_path / "killed_client"
    cmd = [sys.executable, "-m", "vprsnn_ros.cli", *train_args(ref, out, "--cluster", scheduler)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "model.yaml"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.exists():
                parts = (yaml.safe_load(manifest.read_text()) or {}).get("parts") or {}
                if any(p.startswith("module_") for p in parts):
                    break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # SIGKILL did not end it within 30 s: never hang the suite
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "the client finished before it was killed"
    assert not ModelStore.open(out).complete
    # In a subprocess too, so that a hang fails the test (timeout) instead of stalling the suite.
    again = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_same_model(in_process, out)


@pytest.mark.requires("distributed")
@pytest.mark.slow  # a CLI run that waits for its 1 s connection timeout
def test_scheduler_that_does_not_answer_is_one_error_line(route, tmp_path, bad_input):
    _, ref, _ = route
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "never"
    bad_input.watch(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "vprsnn_ros.cli",
                           *train_args(ref, out, "--cluster", f"tcp://127.0.0.1:{port}",
                                       "--cluster-timeout", "1")],
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    bad_input(proc, "cannot reach the Dask scheduler", f"127.0.0.1:{port}")


@pytest.mark.requires("distributed")
def test_bad_cluster_spec_is_one_error_line(route, tmp_path, capsys, bad_input):
    _, ref, _ = route
    bad_input.watch(tmp_path)
    code = main(train_args(ref, tmp_path / "m", "--cluster", str(tmp_path / "no_such_file.json")))
    bad_input((code, capsys.readouterr().err), "neither local[:N]", "no_such_file.json")


@pytest.mark.slow
def test_in_process_training_does_not_import_dask(route, tmp_path):
    _, ref, _ = route
    code = ("import sys; from vprsnn_ros.cli import main; "
            f"rc = main({train_args(ref, tmp_path / 'plain', '--limit', '12')!r}); "
            "assert rc == 0, rc; "
            "loaded = [m for m in ('dask', 'distributed') if m in sys.modules]; "
            "assert not loaded, loaded")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.ros
@pytest.mark.requires("distributed")
@pytest.mark.slow
def test_trainer_node_trains_on_the_cluster(route, in_process_plain, scheduler, tmp_path, ros_domains):
    _, ref, _ = route
    out = tmp_path / "node_model"
    env = ros_domains.env(ros_domains.new())
    proc = subprocess.run(
        [sys.executable, "-m", "vprsnn_ros.nodes.trainer_node", "--ros-args",
         "-p", f"reference:=['{ref}']", "-p", f"out:={out}", "-p", "neurons:=30",
         "-p", "places_per_module:=4", "-p", "epochs:=4", "-p", "seed:=3",
         "-p", f"cluster:={scheduler}"],
        env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"on Dask cluster {scheduler}" in proc.stderr
    assert_same_model(in_process_plain, out)


@pytest.mark.requires("distributed")
@pytest.mark.slow
def test_shared_arrays_survive_the_loss_of_their_worker(own_scheduler):
    import numpy as np

    runner = DaskRunner.connect(own_scheduler, timeout=10)
    try:
        client = runner.client
        value = np.arange(1000.0)
        shared = runner.share(value)
        assert np.array_equal(shared.result(), value)
        holders = client.who_has([shared])[shared.key]
        pids = client.run(os.getpid)
        for address in holders:
            os.kill(pids[address], signal.SIGKILL)
        total = runner.submit(np.sum, shared)
        assert total.result(timeout=120) == value.sum()
    finally:
        runner.close()


@pytest.mark.requires("distributed")
@pytest.mark.slow
def test_extend_on_the_cluster_equals_extend_in_process(route, scheduler, tmp_path):
    import shutil

    _, ref, query = route
    images = sorted(ref.iterdir())
    new = tmp_path / "new"
    new.mkdir()
    for f in images[24:]:
        shutil.copy(f, new / f.name)
    trav = load_traverse(ref, CONFIG.image_size, CONFIG.patch)
    old = tmp_path / "old"
    cal = calibration(route)
    cal["epoch_checkpoints"] = []
    train_network(CONFIG, [trav.pixels[:24]], trav.names[:24], old, **cal)
    outs = {}
    for name, extra in (("local", []), ("dask", ["--cluster", scheduler])):
        outs[name] = tmp_path / name
        assert main(["extend", "--model", str(old), "--reference", str(new), "--out", str(outs[name]),
                     "--calibration-query", str(query), *extra]) == 0
    assert_same_model(outs["local"], outs["dask"])
