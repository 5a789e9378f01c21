"""The ROS way of installing works: ``colcon build`` puts what ``ros2 launch`` and ``ros2 run`` need
in place (issue 10, Found 1).

Builds the package in a temporary colcon workspace and checks the ament index entry, the
launch and config files under share/vprsnn_ros and the executables under lib/vprsnn_ros.
Needs colcon (``pip install colcon-core colcon-ros "setuptools<72"``, as .ci/run does);
skipped with the reason where it is not installed, a failure under CI=true (CI installs it).
Nothing is skipped at import time (see conftest.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.requires("colcon_core", "colcon_ros")]

REPO = Path(__file__).resolve().parents[1]
PACKAGE_FILES = ("setup.py", "setup.cfg", "package.xml", "README.md", "resource", "launch", "config", "vprsnn_ros")
EXECUTABLES = ("localizer", "trainer", "bag_player", "evaluator", "vprsnn")


def colcon(deps) -> str:
    """The colcon executable; a skip (a failure in CI, which installs colcon and setuptools < 72)
    where there is none, or where setuptools is too new for colcon's ament_python build."""
    setuptools = deps.require("setuptools")
    if int(setuptools.__version__.split(".")[0]) >= 72:
        deps.missing(f"setuptools {setuptools.__version__}: colcon's ament_python build needs "
                     f"setuptools < 72 (pip install 'setuptools<72')", ci_installs=True)
    found = shutil.which("colcon", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                         os.environ.get("PATH", "")]))
    if found is None:
        deps.missing("the colcon executable is not on PATH (pip install colcon-core colcon-ros)",
                     ci_installs=True)
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory, deps) -> Path:
    """install/vprsnn_ros of a fresh workspace holding a copy of the package."""
    ws = tmp_path_factory.mktemp("colcon_ws")
    src = ws / "src" / "vprsnn_ros"
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in PACKAGE_FILES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    proc = subprocess.run([colcon(deps), "build", "--event-handlers", "console_direct-"], cwd=str(ws),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"colcon build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    yield ws / "install" / "vprsnn_ros"
    shutil.rmtree(ws, ignore_errors=True)


def site_packages(prefix: Path) -> Path:
    found = sorted(prefix.glob("lib/python3*/site-packages"))
    assert found, f"no site-packages under {prefix}"
    return found[0]


def test_ament_index_entry(installed, deps):
    marker = installed / "share" / "ament_index" / "resource_index" / "packages" / "vprsnn_ros"
    assert marker.is_file(), f"{marker} missing: ros2 launch/run would say 'Package not found'"
    # What get_package_share_directory answers with this prefix on AMENT_PREFIX_PATH.
    deps.require("ament_index_python")
    env = dict(os.environ, AMENT_PREFIX_PATH=str(installed))
    proc = subprocess.run([sys.executable, "-c", "from ament_index_python.packages import "
                           "get_package_share_directory as g; print(g('vprsnn_ros'))"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == installed / "share" / "vprsnn_ros"


def test_launch_and_config_files_under_share(installed):
    share = installed / "share" / "vprsnn_ros"
    assert (share / "package.xml").is_file()
    for name in ("localize.launch.py", "train.launch.py", "evaluate.launch.py"):
        assert (share / "launch" / name).is_file(), name
    for name in ("localize.yaml", "train.yaml"):
        assert (share / "config" / name).is_file(), name


def test_executables_under_lib_package(installed):
    lib = installed / "lib" / "vprsnn_ros"
    for name in EXECUTABLES:
        path = lib / name
        assert path.is_file() and os.access(path, os.X_OK), f"{path} missing: ros2 run would not find it"
    # The installed executable runs the installed copy of the package.
    env = dict(os.environ, PYTHONPATH=str(site_packages(installed)))
    proc = subprocess.run([str(lib / "vprsnn"), "--version"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "vprsnn_ros" in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, "-c", "import vprsnn_ros; print(vprsnn_ros.__file__)"], env=env,
                          cwd=str(installed), capture_output=True, text=True, timeout=60)
    assert Path(proc.stdout.strip()).is_relative_to(installed), proc.stdout + proc.stderr
