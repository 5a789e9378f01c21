"""The suite cannot vanish: with an optional dependency missing, every test file is still
collected, and only the tests that need it are skipped.

launch_testing's pytest plugin imports every test file while collecting (to look
for ``generate_test_description``); a ``pytest.skip(allow_module_level=True)`` or an
ImportError raised there skipped (or broke) the whole folder. The collection here
runs in a subprocess with dask, distributed, hypothesis, colcon and rclpy made
unimportable, under launch_testing's plugin where it is installed and under a
plugin that imports each file the same way where it is not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_FILES = sorted(p.name for p in (REPO / "test").glob("test_*.py"))
STUBBED = ("dask", "distributed", "hypothesis", "colcon_core", "colcon_ros", "rclpy")

# What launch_testing.pytest.hooks does for every file (pytest >= 8.1), without launch_testing.
IMPORTING_PLUGIN = '''
from _pytest.pathlib import import_path


def pytest_pycollect_makemodule(module_path, parent):
    module = import_path(module_path, root=None, consider_namespace_packages=False)
    getattr(module, "generate_test_description", None)
    return None
'''


def _launch_testing_plugin() -> str | None:
    try:
        import launch_testing.pytest.hooks  # noqa: F401
    except ImportError:
        return None
    return "launch_testing.pytest.hooks"


@pytest.mark.slow
def test_collection_finds_every_file_with_optional_dependencies_missing(tmp_path):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in STUBBED:
        (stubs / f"{name}.py").write_text(f"raise ImportError('{name} is made unimportable by test_collection')\n")
    (stubs / "importing_plugin.py").write_text(IMPORTING_PLUGIN)
    plugin = _launch_testing_plugin() or "importing_plugin"
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    # Only the plugin given here: installed plugins (colcon's among them) would import the stubs.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(stubs), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-p", plugin, "test"], cwd=str(REPO), env=env, capture_output=True, text=True,
                          timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"collection failed (exit {proc.returncode}):\n{out[-4000:]}"
    assert "error" not in proc.stdout.splitlines()[-1].lower(), out[-4000:]
    collected = {line.split("::")[0].removeprefix("test/") for line in proc.stdout.splitlines() if "::" in line}
    lost = sorted(set(TEST_FILES) - collected)
    assert not lost, f"files that vanished from the collection: {lost}\n{out[-4000:]}"
    # And the stubs were in force: the files that need them collected their tests all the same.
    assert {"test_cluster.py", "test_colcon_install.py", "test_input_coding.py", "test_localizer_node.py"} <= collected
