"""What the whole test suite shares: markers, dependency checks, ROS domain ids, the
factories of localizer node processes and ROS clients (test/ros_harness.py), the
bad-input check and the session's tiny trained models.

Markers (declared in setup.cfg, ``--strict-markers``):

* ``slow``: trains a network (train_network, the CLI or a node) in the test itself, takes more
  than about 2 s, or is one more case of a check the fast subset already runs (a parametrized
  bad-input test keeps one case of each kind fast); ``python -m pytest -q -m "not slow" test``
  is the fast subset. (The session's and a file's module-scoped tiny models are trained once
  and do not count.)
* ``ros``: needs rclpy, the ROS 2 message packages and DDS; implies ``requires`` of them.
* ``nordland``: needs the Nordland data (``../shared/data/nordland``, or ``$VPRSNN_NORDLAND``).
* ``requires(*modules)``: needs these importable modules.

A test whose dependency is missing is skipped, with the reason, except under
``CI=true`` for the dependencies CI installs (``.ci/run``: the ROS wheels, dask,
hypothesis, colcon; the Nordland data): there it fails, so that nothing is
skipped silently in CI. ``launch``, ``launch_ros``, ``launch_testing`` and
``cv_bridge`` come only with a full ROS 2 install: they stay skips everywhere.

Test files never skip at import time (no module-level ``importorskip``): the
pytest plugin of launch_testing imports every test file while collecting, and a
skip (or an ImportError) raised there skips (or breaks) the whole folder. Files
with optional imports guard them with ``try``/``except ImportError`` and mark
their tests instead.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import itertools
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:  # the fixtures import it (and with it rclpy) only when a test asks for them
    from ros_harness import NodeProcess, RosClient

REPO = Path(__file__).resolve().parents[1]
NORDLAND = Path(os.environ.get("VPRSNN_NORDLAND") or REPO.parent / "shared" / "data" / "nordland")
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}

# Top-level modules that CI installs (.ci/run: pip install -e ".[ros,test,cluster]" and colcon):
# missing there is a failure, not a skip.
CI_INSTALLS = frozenset({
    "rclpy", "ament_index_python", "builtin_interfaces", "rcl_interfaces", "std_msgs", "sensor_msgs",
    "geometry_msgs", "diagnostic_msgs", "std_srvs", "nav_msgs", "lifecycle_msgs", "visualization_msgs",
    "dask", "distributed", "hypothesis", "colcon_core", "colcon_ros", "setuptools",
})
# Where a missing module comes from, for the skip reason.
_WHERE = {
    "dask": "pip install -e '.[cluster]'", "distributed": "pip install -e '.[cluster]'",
    "hypothesis": "pip install -e '.[test]'",
    "colcon_core": "pip install colcon-core colcon-ros 'setuptools<72'",
    "colcon_ros": "pip install colcon-core colcon-ros 'setuptools<72'",
    "launch": "a full ROS 2 install: PyPI has no ROS 2 launch",
    "launch_ros": "a full ROS 2 install: PyPI has no ROS 2 launch",
    "launch_testing": "a full ROS 2 install: PyPI has no ROS 2 launch",
    "cv_bridge": "a full ROS 2 install: cv_bridge is not on PyPI",
}
# What the `ros` marker implies: the node's imports (setup.py extra "ros").
ROS_MODULES = ("rclpy", "std_msgs.msg", "sensor_msgs.msg", "geometry_msgs.msg", "diagnostic_msgs.msg",
               "std_srvs.srv", "nav_msgs.msg", "lifecycle_msgs.msg", "visualization_msgs.msg")


# --------------------------------------------------------------------------
# missing dependencies: a skip with the reason, a failure in CI where CI installs them
# --------------------------------------------------------------------------

def _top(module: str) -> str:
    return module.split(".")[0]


@functools.cache
def importable(module: str) -> bool:
    """Whether ``module`` imports. ``launch`` means ROS 2's package: the repository's own
    launch/ folder is importable as a namespace package and does not count."""
    probe = "launch.launch_service" if module == "launch" else module
    try:
        importlib.import_module(probe)
    except ImportError:
        return False
    return True


def missing_dependency(reason: str, *, ci_installs: bool) -> None:
    """Skip the running test, or fail it under CI=true when CI provides what is missing."""
    if IN_CI and ci_installs:
        pytest.fail(f"CI=true: {reason}; CI provides it (.ci/run), so this is a failure, not a skip",
                    pytrace=False)
    pytest.skip(reason)


def require(*modules: str):
    """The modules, imported; a skip (a failure in CI, for what CI installs) when one is missing.

    The run-time replacement of ``pytest.importorskip``; returns the module (or a tuple).
    """
    missing = [m for m in modules if not importable(m)]
    if missing:
        where = sorted({_WHERE.get(_top(m), "pip install -e '.[ros]'") for m in missing})
        missing_dependency(f"needs {', '.join(missing)}: not importable here ({'; '.join(where)})",
                           ci_installs=any(_top(m) in CI_INSTALLS for m in missing))
    found = tuple(importlib.import_module(m) for m in modules)
    return found[0] if len(found) == 1 else found


def require_nordland(*parts: str) -> Path:
    """``NORDLAND / parts``; a skip where the data is absent (a failure in CI, which has it)."""
    path = NORDLAND.joinpath(*parts)
    if not path.exists():
        missing_dependency(f"the Nordland data is not here: {path} is missing "
                           f"(set VPRSNN_NORDLAND to its folder)", ci_installs=True)
    return path


class Dependencies:
    """The dependency checks, for fixtures and tests (``deps`` fixture): ``deps.require(module)``
    instead of ``pytest.importorskip``, ``deps.nordland(*parts)``, ``deps.missing(reason, ...)``."""

    require = staticmethod(require)
    nordland = staticmethod(require_nordland)
    missing = staticmethod(missing_dependency)
    in_ci = IN_CI


@pytest.fixture(scope="session")
def deps() -> Dependencies:
    return Dependencies()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture: the dependencies the test's markers name."""
    modules = [m for mark in item.iter_markers("requires") for m in mark.args]
    if item.get_closest_marker("ros") is not None:
        modules = [*ROS_MODULES, *modules]
    if modules:
        require(*dict.fromkeys(modules))
    if item.get_closest_marker("nordland") is not None:
        require_nordland()


_IMPORTORSKIP = re.compile(r"could not import '([\w.]+)'")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Safety net for a plain ``pytest.importorskip`` left in a test: in CI, its skip of a
    module CI installs is a failure too."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and call.excinfo is not None:
        found = _IMPORTORSKIP.search(str(call.excinfo.value))
        if found and _top(found.group(1)) in CI_INSTALLS:
            report.outcome = "failed"
            report.longrepr = (f"CI=true: {call.excinfo.value}; CI installs {found.group(1)} (.ci/run), "
                               f"so this is a failure, not a skip")


# --------------------------------------------------------------------------
# ROS domain ids: one of its own for each test and node
# --------------------------------------------------------------------------

DOMAIN_BASE = int(os.environ.get("VPRSNN_TEST_DOMAIN_BASE", "40"))
# Domain ids above 101 may collide with the kernel's ephemeral ports; a base of 40 gives 40..99.
_DOMAIN_SPAN = max(1, min(60, 102 - DOMAIN_BASE))
_domain_counter = itertools.count()


class RosDomains:
    """Hands out ROS domain ids: each call to :meth:`new` gives one no earlier test or node of
    this session had (cycling through ``VPRSNN_TEST_DOMAIN_BASE`` (40) .. +59, so that
    sessions started with other bases run side by side)."""

    base = DOMAIN_BASE

    @staticmethod
    def new() -> int:
        return DOMAIN_BASE + next(_domain_counter) % _DOMAIN_SPAN

    @staticmethod
    def env(domain_id: int, **extra: str) -> dict[str, str]:
        """This process's environment for a node (or CLI) subprocess on ``domain_id``, loopback only."""
        return dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                    PYTHONUNBUFFERED="1", **extra)


@pytest.fixture(scope="session")
def ros_domains() -> RosDomains:
    return RosDomains()


@pytest.fixture
def ros_domain(ros_domains: RosDomains, monkeypatch: pytest.MonkeyPatch) -> int:
    """A domain id of this test's own, also set (loopback discovery) in this process's
    environment for the duration of the test: for code that starts nodes from os.environ."""
    domain = ros_domains.new()
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return domain


# --------------------------------------------------------------------------
# localizer nodes over DDS (ros_harness): nothing a test starts outlives it
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def localhost_only():
    """This process's own DDS participants stay on the loopback too, for a module's tests
    (``pytest.mark.usefixtures("localhost_only")``): rclpy reads the variable at init."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        yield


@pytest.fixture
def start_node():
    """Factory: ``start_node(domain, model, params, **options)`` starts a localizer node process
    (:class:`ros_harness.NodeProcess`, options are its keyword arguments); each one still
    running at the end of the test is stopped (SIGKILL after 5 s)."""
    from ros_harness import NodeProcess

    started: list[NodeProcess] = []

    def start(*args, **kwargs) -> NodeProcess:
        node = NodeProcess(*args, **kwargs)
        started.append(node)
        return node

    yield start
    for node in started:
        if node.alive():
            node.stop(timeout=5.0)


@pytest.fixture
def client_factory():
    """Factory: ``client_factory(domain, client_class=RosClient, **options)`` makes this process's
    ROS side on ``domain`` (:class:`ros_harness.RosClient` or a test file's subclass); each one
    is closed at the end of the test."""
    from ros_harness import RosClient

    clients: list[RosClient] = []

    def make(*args, client_class: type[RosClient] = RosClient, **kwargs) -> RosClient:
        client = client_class(*args, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# --------------------------------------------------------------------------
# bad input: exit 2, one line naming the problem, the output location untouched
# --------------------------------------------------------------------------

def tree_digest(path: Path) -> dict[str, str]:
    """Every entry under ``path`` (hidden ones too): relative name -> sha256 of a file, 'dir'
    for a folder; {} when ``path`` does not exist."""
    if not path.exists():
        return {}
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(path.rglob("*"))}


# Progress bars (tqdm) on stderr are not lines of the error report.
_PROGRESS = re.compile(r"\d+%\|| \d+/\d+ \[|\[\d\d:\d\d<")


class BadInput:
    """The README's promise for bad input, checked in one place.

    >>> bad_input.watch(tmp_path)          # before: snapshot the output location
    >>> proc = run_cli([...])
    >>> line = bad_input(proc, "nope")     # exit 2, one error line naming 'nope', nothing changed

    ``watch`` snapshots folders (every file's bytes, hidden staging folders included)
    or the would-be output paths; the check fails if anything appeared, vanished or changed.
    """

    def __init__(self) -> None:
        self._watched: dict[Path, dict[str, str]] = {}

    def watch(self, *paths: Path) -> None:
        for path in paths:
            self._watched[Path(path)] = tree_digest(Path(path))

    def __call__(self, result, *words: str, prefix: str = "vprsnn: error:", code: int = 2,
                 usage: bool = False) -> str:
        """``result``: a CompletedProcess or ``(exit code, stderr)``; ``words`` must all be in the
        error line (case-insensitive). ``usage``: argparse's usage block may come first (a
        command-line syntax error). Returns the line."""
        if isinstance(result, tuple):
            returncode, stderr, stdout = result[0], result[1], ""
        else:
            returncode, stderr, stdout = result.returncode, result.stderr or "", result.stdout or ""
        detail = f"exit {returncode}\n--- stdout ---\n{stdout[-3000:]}\n--- stderr ---\n{stderr[-3000:]}"
        assert self._watched, "bad_input.watch(<the output location>) must come before the command"
        assert "Traceback" not in stderr, detail
        assert returncode == code, detail
        if usage and stderr.startswith("usage:"):
            stderr = "\n".join(line for line in stderr.splitlines()[1:] if not line.startswith(" "))
        lines = [line.strip() for line in stderr.splitlines() if line.strip() and not _PROGRESS.search(line)]
        assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}:\n{detail}"
        line = lines[0]
        assert line.startswith(prefix) and len(line) > len(prefix) + 5, detail
        for word in words:
            assert word.lower() in line.lower(), f"{word!r} not in the error line {line!r}"
        for path, before in self._watched.items():
            after = tree_digest(path)
            added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
            changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
            assert not (added or removed or changed), (f"bad input changed {path}: added {added}, "
                                                       f"removed {removed}, changed {changed}")
        return line


@pytest.fixture
def bad_input() -> BadInput:
    return BadInput()


# --------------------------------------------------------------------------
# the session's tiny trained models (read-only: copy one before changing it)
# --------------------------------------------------------------------------

N16 = 16
CONFIG16 = dict(n_neurons=40, places_per_module=4, epochs=12, assign_presentations=16)


@dataclass(frozen=True)
class Route:
    """A synthetic route: frames (BGR), their preprocessed pixels and the place names."""

    names: list[str]
    reference: list[np.ndarray]
    query: list[np.ndarray]
    ref_pixels: np.ndarray
    query_pixels: np.ndarray


@pytest.fixture(scope="session")
def route16() -> Route:
    """16 places (make_route seed 3): what test_training, test_localizer_node and
    test_profiles_readout_baseline train on."""
    from vprsnn_ros.io.preprocess import preprocess_batch
    from vprsnn_ros.io.synthetic import make_route

    reference, query = make_route(N16, seed=3)
    return Route([f"p{k:02d}.png" for k in range(N16)], list(reference), list(query),
                 preprocess_batch(reference), preprocess_batch(query))


def config16(**changes):
    from vprsnn_ros.snn.network import NetworkConfig

    return NetworkConfig(**{**CONFIG16, **changes})


def _read_only(path: Path):
    """Yield ``path``; afterwards fail if any test changed a byte under it."""
    before = tree_digest(path)
    yield path
    assert tree_digest(path) == before, f"a test changed the shared model {path}: copy it first"


def _train16(route: Route, out: Path, **options) -> Path:
    from vprsnn_ros.io.thumbnails import make_thumbnails
    from vprsnn_ros.train.training import train_network

    train_network(config16(), [route.ref_pixels], route.names, out, workers=2,
                  thumbnails=make_thumbnails(route.reference), **options)
    return out


@pytest.fixture(scope="session")
def model16(route16: Route, tmp_path_factory: pytest.TempPathFactory):
    """The faithful 16-place model (40 neurons, 4 places per module, 12 epochs) with thumbnails."""
    yield from _read_only(_train16(route16, tmp_path_factory.mktemp("model16") / "faithful"))


@pytest.fixture(scope="session")
def model16_tuned(route16: Route, tmp_path_factory: pytest.TempPathFactory):
    """The same network trained with the default ``tuned`` profile."""
    from vprsnn_ros.snn.profiles import TUNED

    yield from _read_only(_train16(route16, tmp_path_factory.mktemp("model16") / "tuned", profile=TUNED))


@pytest.fixture(scope="session")
def ensemble16(route16: Route, tmp_path_factory: pytest.TempPathFactory):
    """Two seeds (0, 1) of model16's network trained with the tuned profile (z-score readout,
    4 modules each) and their ensemble manifest: what test_paths_node*.py run.

    Trained and queried at the trained inhibition (``inhibition_start`` and
    ``query_inhibition`` 1, not tuned's 0.25): with a quarter of the inhibition every neuron
    of these 40-neuron modules fires equally often on every reference image, so the
    hyperactivity threshold masks all of them or none, and tracking recovers every module's
    answers at any K; trained with the inhibition ramp, K = 2 and every module give the same
    confidences on every frame of route16. The node tests that check each override changes
    the answers could then not tell an override from none."""
    from vprsnn_ros.model.ensemble import write_ensemble_manifest
    from vprsnn_ros.snn.profiles import TUNED
    from vprsnn_ros.train.training import train_network

    root = tmp_path_factory.mktemp("ensemble16") / "ensemble"
    names = [f"p{k:02d}" for k in range(N16)]
    for seed in (0, 1):
        train_network(config16(seed=seed), [route16.ref_pixels], names, root / f"seed_{seed}", workers=2,
                      profile=TUNED.with_(query_inhibition=1.0, inhibition_start=1.0))
    write_ensemble_manifest(root, ["seed_0", "seed_1"])
    yield from _read_only(root)


# --------------------------------------------------------------------------
# a ROS prefix holding the package, for ament (launch files, ros2 run) without colcon
# --------------------------------------------------------------------------

EXECUTABLES = {"localizer": "localizer_node", "trainer": "trainer_node", "bag_player": "bag_player",
               "evaluator": "evaluator"}


@pytest.fixture(scope="session")
def ament_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An install prefix that ament_index_python and launch_ros resolve ``vprsnn_ros`` in
    (put it on AMENT_PREFIX_PATH): the index marker, share/vprsnn_ros with the launch and
    config files, and lib/vprsnn_ros executables running this checkout with this interpreter."""
    prefix = tmp_path_factory.mktemp("ament_prefix")
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / "vprsnn_ros").write_text("")
    share = prefix / "share" / "vprsnn_ros"
    shutil.copytree(REPO / "launch", share / "launch", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "config", share / "config")
    shutil.copy2(REPO / "package.xml", share / "package.xml")
    lib = prefix / "lib" / "vprsnn_ros"
    lib.mkdir(parents=True)
    for name, module in EXECUTABLES.items():
        script = lib / name
        script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
                          f"from vprsnn_ros.nodes.{module} import main\nsys.exit(main())\n")
        script.chmod(0o755)
    return prefix
