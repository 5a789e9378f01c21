"""Helpers shared by the benchmarks (``python -m bench.perf.NAME`` / ``python -m bench.accuracy.NAME``).

- :data:`NORDLAND`: the Nordland data folder, from the environment variable
  ``VPRSNN_NORDLAND`` (default ``../shared/data/nordland`` relative to the repo
  root), and :func:`load_nordland` for the summer -> winter setup (dark places
  excluded, the first N places);
- :func:`cpu_line` (CPU model and vector flags from ``/proc/cpuinfo``, Numba's
  code target and threads), :func:`median_time`, :func:`images` (bench input
  frames) and :func:`synthetic_network` (a trained-like network of any size);
- :func:`r1`: R@1 of a score matrix, as the accuracy tables round it;
- ``--baseline REV`` of the perf benches: :func:`run_baseline` runs REV's own
  copy of a bench in a git worktree of REV (REV's package first on
  ``PYTHONPATH``, its own Numba cache) and :func:`print_comparison` prints its
  rows beside the current ones.

A bench row is ``{"name": str, "seconds": float}``: the median time of one unit
of work (a query, a presentation, a part of one), so that rows of two runs can
be compared by name.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NORDLAND = Path(os.environ.get("VPRSNN_NORDLAND") or ROOT.parent / "shared" / "data" / "nordland")

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "asimd")


# --- machine -------------------------------------------------------------------------------

def cpu_line() -> str:
    """CPU model, the vector extensions that matter here, and the code Numba generates.

    ``NUMBA_CPU_NAME`` is ``host`` unless set (e.g. ``haswell`` for AVX2 code without
    AVX-512 on an AVX-512 machine).
    """
    from numba import get_num_threads  # noqa: PLC0415  (the accuracy benches need no Numba line)

    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "model name" and not model:
                model = value.strip()
            elif key in ("flags", "features") and not flags:  # "Features" on ARM
                flags = set(value.split())
    except OSError:
        pass
    model = model or platform.processor() or "?"
    vec = [f for f in SIMD_FLAGS if f in flags]
    target = os.environ.get("NUMBA_CPU_NAME", "host")
    return (f"CPU {model}, {os.cpu_count()} cores, flags {' '.join(vec) or '?'}; "
            f"Numba target {target}, {get_num_threads()} threads")


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# --- inputs --------------------------------------------------------------------------------

def have_nordland() -> bool:
    """True if the Nordland data is there; otherwise says where it was looked for."""
    if NORDLAND.exists():
        return True
    print(f"no Nordland data at {NORDLAND} (set VPRSNN_NORDLAND)", file=sys.stderr)
    return False


def nordland_places(traverse: str, places: int, every: int = 1):
    """The first ``places`` non-dark places of a traverse (``summer`` / ``winter``), every ``every``-th."""
    from vprsnn_ros.io import dataset  # noqa: PLC0415

    dark = dataset.read_exclude_csv(NORDLAND / "places.csv")
    return dataset.load_place_list(NORDLAND / traverse, exclude=dark).subset(range(0, places * every, every))


def load_nordland(places: int, every: int = 1, patch: int = 7) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Names and preprocessed pixels of reference (summer) and query (winter), dark places excluded."""
    from vprsnn_ros.io import dataset  # noqa: PLC0415

    ref, qry = nordland_places("summer", places, every), nordland_places("winter", places, every)
    return ref.names, dataset.load_images(ref.paths, patch=patch), dataset.load_images(qry.paths, patch=patch)


def images(n: int, synthetic_seed: int = 0) -> np.ndarray:
    """``n`` preprocessed frames: the first Nordland summer frames, else a synthetic route."""
    from vprsnn_ros.io import dataset  # noqa: PLC0415
    from vprsnn_ros.io.preprocess import preprocess_batch  # noqa: PLC0415
    from vprsnn_ros.io.synthetic import make_route  # noqa: PLC0415

    if (NORDLAND / "summer").exists():
        return dataset.load_images(dataset.load_place_list(NORDLAND / "summer").subset(range(n)).paths)
    return preprocess_batch(make_route(n, seed=synthetic_seed)[0])


def image_source() -> str:
    return f"Nordland summer frames ({NORDLAND})" if (NORDLAND / "summer").exists() else "synthetic route"


def synthetic_network(cfg, n_modules: int, places_per_module: int = 25):
    """A network of ``n_modules`` modules that fires like a trained one.

    Weights are the seeded initial weights normalised as in training and theta is
    drawn from 40-50 mV (the range of trained Nordland modules), so that the network
    fires sparsely as a trained one does; speed does not depend on what was learned.
    """
    from vprsnn_ros.snn.network import ModularSNN, initial_weights, make_delays  # noqa: PLC0415

    rs = np.random.default_rng(cfg.seed)
    weights = np.stack([initial_weights(cfg, m) for m in range(n_modules)])
    weights *= (cfg.params.weight_sum / weights.sum(axis=1))[:, None, :]
    regions = [np.arange(m * places_per_module, (m + 1) * places_per_module) for m in range(n_modules)]
    return ModularSNN(
        config=cfg, delays=make_delays(cfg), n_places=n_modules * places_per_module, regions=regions,
        n_calibration_modules=0, weights=weights, theta=rs.uniform(40.0, 50.0, (n_modules, cfg.n_neurons)),
        assignments=np.stack([r[rs.integers(0, len(r), cfg.n_neurons)] for r in regions]).astype(np.int32),
        active_images=np.zeros((n_modules, cfg.n_neurons), np.int32))


# --- accuracy ------------------------------------------------------------------------------

def r1(S: np.ndarray) -> float:
    """R@1 of a (queries x places) score matrix, query k's true place = place k."""
    from vprsnn_ros.eval.metrics import recall_at_n  # noqa: PLC0415

    return round(float(recall_at_n(S, ns=(1,))[1]), 4)


# --- --baseline REV ------------------------------------------------------------------------

def row(name: str, seconds: float) -> dict:
    return {"name": name, "seconds": float(seconds)}


def emit_json(bench: str, args, rows: list[dict], **extra) -> None:
    """The machine-readable result of a perf bench (``--json``): one JSON object on stdout."""
    skip = {"json", "baseline"}
    print(json.dumps({"bench": bench, "cpu": cpu_line(), "args": {k: v for k, v in vars(args).items()
                                                                 if k not in skip}, "rows": rows, **extra}))


def baseline_argv(argv: Sequence[str]) -> list[str]:
    """The command line without ``--baseline REV`` and ``--json`` (the baseline run gets its own)."""
    out, skip = [], 0
    for a in argv:
        if skip:
            skip -= 1
        elif a == "--baseline":
            skip = 1
        elif a.startswith("--baseline=") or a == "--json":
            continue
        else:
            out.append(a)
    return out


def _supported(argv: list[str], help_text: str) -> tuple[list[str], list[str]]:
    """``argv`` without the options (and their values) that REV's script does not know."""
    known = set(re.findall(r"--[A-Za-z0-9][-A-Za-z0-9_]*", help_text))
    kept, dropped, dropping = [], [], False
    for a in argv:
        if a.startswith("--"):
            dropping = a.split("=", 1)[0] not in known
        (dropped if dropping else kept).append(a)
    return kept, dropped


def _git(*args: str) -> str:
    out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"git {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout.strip()


def _run(cmd: list[str], **kwargs) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr.strip()[-2000:]}")
    return out.stdout


def run_baseline(rev: str, module: str, argv: Sequence[str],
                 parse_text: Callable[[str], list[dict]]) -> dict:
    """Run REV's own copy of bench ``module`` (e.g. ``"perf.speed"``) and return its result.

    A git worktree of REV is made in a temporary folder; REV's bench runs in a
    subprocess with that worktree first on ``PYTHONPATH`` (so REV's package is
    imported, not this one) and with its own ``NUMBA_CACHE_DIR`` in the temporary
    folder; ``NUMBA_CPU_NAME`` and the rest of the environment are passed on. A REV
    that has ``bench/perf/NAME.py`` runs ``python -m bench.perf.NAME ... --json``; an
    older REV (flat ``bench/NAME.py``, no ``--json``) runs that script and its text
    output is read by ``parse_text``. Options REV's script does not know are dropped
    (and named). The worktree and the folder are removed afterwards.

    Returns ``{"rev", "commit", "subject", "command", "cpu", "rows", "dropped"}``.
    """
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    subject = _git("log", "-1", "--format=%h %s", commit)
    tmp = Path(tempfile.mkdtemp(prefix="vprsnn_baseline_"))
    tree = tmp / "tree"
    try:
        _git("worktree", "add", "--detach", str(tree), commit)
        if NORDLAND.exists():
            # Older benches look for ../shared/data/nordland next to their repo root (here: tmp).
            (tmp / "shared" / "data").mkdir(parents=True)
            (tmp / "shared" / "data" / "nordland").symlink_to(NORDLAND.resolve(), target_is_directory=True)
        env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp / "numba_cache"), PYTHONDONTWRITEBYTECODE="1",
                   VPRSNN_NORDLAND=str(NORDLAND.resolve()))
        env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])
        found = _run([sys.executable, "-c", "import vprsnn_ros; print(vprsnn_ros.__file__)"],
                     cwd=tree, env=env).strip()
        if not Path(found).resolve().is_relative_to(tree.resolve()):
            raise RuntimeError(f"the baseline would import vprsnn_ros from {found}, not from {tree}")
        name = module.rsplit(".", 1)[-1]
        if (tree / "bench" / Path(*module.split("."))).with_suffix(".py").exists():
            cmd, as_json = [sys.executable, "-m", f"bench.{module}"], True
        elif (tree / "bench" / f"{name}.py").exists():
            cmd, as_json = [sys.executable, str(Path("bench") / f"{name}.py")], False
        else:
            raise RuntimeError(f"{rev} has neither bench/{module.replace('.', '/')}.py nor bench/{name}.py")
        help_text = _run([*cmd, "--help"], cwd=tree, env=env)
        args, dropped = _supported(list(argv), help_text)
        if dropped:
            print(f"[baseline {rev}] its bench does not know {' '.join(dropped)}: left out", file=sys.stderr)
        cmd = [*cmd, *args, *(["--json"] if as_json else [])]
        print(f"[baseline {rev}] {subject}\n[baseline {rev}] running {' '.join(cmd[1:])} in {tree}",
              file=sys.stderr, flush=True)
        lines = []
        with subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) as proc:
            for line in proc.stdout:
                lines.append(line)
                if not (as_json and line.startswith('{"bench"')):
                    print(f"[baseline {rev}] {line}", end="", file=sys.stderr, flush=True)
        if proc.returncode:
            raise RuntimeError(f"the baseline bench of {rev} failed (exit {proc.returncode})")
        text = "".join(lines)
        if as_json:
            result = json.loads(next(ln for ln in reversed(lines) if ln.startswith('{"bench"')))
            cpu, rows = result.get("cpu", ""), result["rows"]
        else:
            cpu = next((ln.strip() for ln in lines if ln.startswith("CPU ")), "(no CPU line printed)")
            rows = parse_text(text)
        if not rows:
            raise RuntimeError(f"no rows read from the baseline output of {rev}")
        return {"rev": rev, "commit": commit, "subject": subject, "command": " ".join(cmd[1:]), "cpu": cpu,
                "rows": rows, "dropped": dropped}
    finally:
        if tree.exists():
            try:
                _git("worktree", "remove", "--force", str(tree))
            except RuntimeError as e:
                print(f"[baseline {rev}] {e}; remove it with: git worktree remove --force {tree}",
                      file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)


def _cell(seconds: float | None) -> str:
    if seconds is None:
        return f"{'-':>21s}"
    return f"{1e3 * seconds:10.3f} ms {1 / seconds:7.2f}/s"


def print_comparison(current: list[dict], baseline: dict, note: str = "") -> None:
    """Current and baseline rows side by side, ratio = baseline time / current time."""
    base = {r["name"]: r["seconds"] for r in baseline["rows"]}
    width = max(len(r["name"]) for r in current + baseline["rows"])
    subject = baseline["subject"] if len(baseline["subject"]) <= 100 else baseline["subject"][:97] + "..."
    print(f"\ncurrent (working tree) vs baseline {baseline['rev']}, same machine, one invocation")
    print(f"baseline commit {subject}")
    print(f"{note}ratio = baseline time / current time (> 1: current faster)")
    print(f"current:  {cpu_line()}")
    print(f"baseline: {baseline['cpu']}")
    print(f"{'row':<{width}s}  {'current':>21s}  {'baseline ' + baseline['rev']:>21s}  {'ratio':>7s}")
    for r in current:
        b = base.pop(r["name"], None)
        ratio = f"x{b / r['seconds']:6.2f}" if b is not None else f"{'-':>7s}"
        print(f"{r['name']:<{width}s}  {_cell(r['seconds'])}  {_cell(b)}  {ratio}")
    for name, b in base.items():  # rows the baseline has and the current bench has not
        print(f"{name:<{width}s}  {_cell(None)}  {_cell(b)}  {'-':>7s}")
