"""Black-box tests of the ``vprsnn`` command line (train, evaluate, demo).

Every test runs the CLI in a subprocess (``python -m vprsnn_ros.cli``) on a tiny
synthetic route, so that exit statuses, stdout and stderr are checked exactly as
a user sees them. Models are tiny (20 neurons, 6 places per module, 3 epochs);
the happy-path model is trained once per module and copied by the tests that
damage or resume it. Bad input is checked by conftest's ``bad_input``: exit 2,
one error line naming the problem, and the output location as it was. Reports
are compared with the in-process ``evaluate()`` on the same model and images.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from vprsnn_ros.eval.evaluation import evaluate
from vprsnn_ros.io.sources import load_traverse
from vprsnn_ros.io.synthetic import write_route
from vprsnn_ros.model.ensemble import load_model

N_PLACES = 12
TINY = ["--neurons", "20", "--places-per-module", "6", "--epochs", "3"]
RECALL_NS = ["1", "5", "10", "15", "20", "25"]
TIMEOUT = 180  # the first call may compile the Numba kernels (~20 s)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def run_cli(args, cwd, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "vprsnn_ros.cli", *map(str, args)], cwd=str(cwd),
                          capture_output=True, text=True, timeout=timeout, env=env)


def describe(proc: subprocess.CompletedProcess) -> str:
    return (f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-3000:]}\n"
            f"--- stderr ---\n{proc.stderr[-3000:]}")


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def load_report(report_dir: Path) -> dict:
    return json.loads((report_dir / "report.json").read_text())


def module_stats(model: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(model.glob("module_*.npz"))}


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)  # copy2: keeps mtimes
    return dst


def without_wall_times(report: dict) -> dict:
    """The report as report.json holds it, without what depends on the clock."""
    report = json.loads(json.dumps(report))
    del report["timing"]
    if report.get("baseline"):
        report["baseline"].pop("seconds", None)
    return report


def in_process_report(model: Path, query: Path, **options) -> dict:
    """What ``vprsnn evaluate`` must write: evaluate() on the same model and images, in this process."""
    members = load_model(model)
    cfg = members[0].config
    report, _, _ = evaluate(members, load_traverse(query, cfg.image_size, cfg.patch).pixels, **options)
    report.update(model=str(model), query=str(query))
    return without_wall_times(report)


# --------------------------------------------------------------------------
# module fixtures: one route, one trained model, one report
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def route(base) -> tuple[Path, Path]:
    ref, query = write_route(base / "route", N_PLACES, seed=0)
    return ref, query


@pytest.fixture(scope="module")
def trained(base, route):
    """The happy-path model: (model dir, process). Read-only: copy it before changing it."""
    ref, _ = route
    model = base / "model"
    proc = run_cli(["train", "--reference", ref, "--out", model, *TINY], cwd=base)
    assert_ok(proc)
    return model, proc


@pytest.fixture(scope="module")
def evaluated(base, route, trained):
    """``evaluate --report`` of the happy-path model: (report dir, process)."""
    _, query = route
    model = trained[0]
    report = base / "report"
    proc = run_cli(["evaluate", "--model", model, "--query", query, "--report", report], cwd=base)
    assert_ok(proc)
    return report, proc


# --------------------------------------------------------------------------
# train: bad input -> exit 2, one line, no model
# --------------------------------------------------------------------------

def _copy_reference(ref: Path, dst: Path, count: int | None = None) -> Path:
    dst.mkdir(parents=True)
    for p in sorted(ref.glob("*.png"))[:count]:
        shutil.copy2(p, dst / p.name)
    return dst


def _missing(tmp, ref, query):
    return ["--reference", tmp / "nope"], ["nope"]


def _empty(tmp, ref, query):
    (tmp / "empty").mkdir()
    return ["--reference", tmp / "empty"], ["no images", "empty"]


def _no_images(tmp, ref, query):
    d = tmp / "texts"
    d.mkdir()
    (d / "notes.txt").write_text("not an image\n")
    (d / "places.csv").write_text("filename\nplace-0000.png\n")
    return ["--reference", d], ["no images", "texts"]


def _corrupt(tmp, ref, query):
    d = _copy_reference(ref, tmp / "corrupt")
    (d / "place-0003.png").write_bytes(np.random.default_rng(1).bytes(700))
    return ["--reference", d], ["place-0003.png"]


def _truncated(tmp, ref, query):
    d = _copy_reference(ref, tmp / "truncated")
    data = (d / "place-0005.png").read_bytes()
    (d / "place-0005.png").write_bytes(data[: len(data) // 2])
    return ["--reference", d], ["place-0005.png"]


def _different_counts(tmp, ref, query):
    short = _copy_reference(ref, tmp / "short", count=8)
    return ["--reference", ref, short], ["12", "8"]


def _cal_query_without_places(tmp, ref, query):
    return ["--reference", ref, "--calibration-query", query], ["--calibration-places"]


def _option(*extra, words):
    def build(tmp, ref, query):
        return ["--reference", ref, *extra], list(words)
    return build


BAD_TRAIN = {
    "reference-missing": _missing,
    "reference-empty": _empty,
    "reference-only-txt-and-csv": _no_images,
    "corrupt-image": _corrupt,
    "truncated-png": _truncated,
    "two-references-different-counts": _different_counts,
    "calibration-query-without-places": _cal_query_without_places,
    "epochs-0": _option("--epochs", "0", words=["epochs"]),
    "dt-2": _option("--dt", "2", words=["dt"]),
    "patch-4": _option("--patch", "4", words=["patch"]),
    "every-0": _option("--every", "0", words=["every"]),
    "limit-0": _option("--limit", "0", words=["limit"]),
    "neurons-0": _option("--neurons", "0", words=["neurons"]),
    "ensemble-0": _option("--ensemble", "0", words=["ensemble"]),
    "calibration-places-all": _option("--calibration-places", str(N_PLACES), words=["calibration"]),
}


# The fast subset (-m "not slow") runs one case of each kind; the full suite runs them all.
FAST_CASES = {"reference-missing", "corrupt-image", "epochs-0",
              "module-byte-flipped", "manifest-invalid-yaml", "config-value-wrong-type"}


def cases(table: dict) -> list:
    return [pytest.param(c, id=c, marks=() if c in FAST_CASES else pytest.mark.slow) for c in table]


@pytest.mark.parametrize("case", cases(BAD_TRAIN))
def test_train_bad_input_is_one_line_error_and_leaves_no_model(case, tmp_path, route, bad_input):
    ref, query = route
    args, words = BAD_TRAIN[case](tmp_path, ref, query)
    out = tmp_path / "out"
    bad_input.watch(tmp_path, ref)
    # The options under test come last: argparse keeps the last value of a repeated option.
    proc = run_cli(["train", "--out", out, *TINY, *args], cwd=tmp_path)
    bad_input(proc, *words)


def test_train_different_reference_counts_message_fits_train(tmp_path, route, bad_input):
    """Two --reference folders of different sizes: the message must describe *that* problem.

    ``train`` has no query and no --ground-truth option, so the error must not
    talk about a query nor advise --ground-truth.
    """
    ref, _ = route
    short = _copy_reference(ref, tmp_path / "short", count=8)
    out = tmp_path / "out"
    bad_input.watch(tmp_path)
    proc = run_cli(["train", "--reference", ref, short, "--out", out, *TINY], cwd=tmp_path)
    line = bad_input(proc, "12", "8")
    assert "query" not in line.lower(), line
    assert "--ground-truth" not in line, line


@pytest.mark.slow  # one more case: the fast subset has one of its kind
def test_train_argparse_type_error_exits_2_without_traceback(tmp_path, route, bad_input):
    ref, _ = route
    out = tmp_path / "out"
    bad_input.watch(tmp_path)
    proc = run_cli(["train", "--reference", ref, "--out", out, *TINY, "--epochs", "many"], cwd=tmp_path)
    # argparse's own message: its usage block, then one line.
    bad_input(proc, "--epochs", "many", prefix="vprsnn train: error:", usage=True)


@pytest.mark.slow  # one more case: the fast subset has one of its kind
def test_train_bad_epoch_checkpoints_is_one_line_error(tmp_path, route, bad_input):
    """--epoch-checkpoints takes E1,E2,...: a non-integer is a user error, not a crash."""
    ref, _ = route
    out = tmp_path / "out"
    bad_input.watch(tmp_path)
    proc = run_cli(["train", "--reference", ref, "--out", out, *TINY, "--epoch-checkpoints", "abc"],
                   cwd=tmp_path)
    bad_input(proc, "checkpoint")


# --------------------------------------------------------------------------
# train: an --out that already holds a finished model
# --------------------------------------------------------------------------

def test_train_into_finished_model_without_resume_fails_and_keeps_it(tmp_path, route, trained, bad_input):
    ref, _ = route
    model = copy_model(trained[0], tmp_path / "model")
    before = module_stats(model)
    bad_input.watch(tmp_path)
    proc = run_cli(["train", "--reference", ref, "--out", model, *TINY], cwd=tmp_path)
    bad_input(proc, "--resume", str(model))
    assert module_stats(model) == before  # not even rewritten with the same bytes


def test_train_resume_of_finished_model_does_not_retrain(tmp_path, route, trained):
    ref, _ = route
    model = copy_model(trained[0], tmp_path / "model")
    before = module_stats(model)
    assert len(before) == N_PLACES // 6
    proc = run_cli(["train", "--reference", ref, "--out", model, *TINY, "--resume"], cwd=tmp_path)
    assert_ok(proc)
    assert module_stats(model) == before, "--resume of a finished model rewrote its modules"
    assert load_yaml(model / "model.yaml")["complete"] is True


@pytest.mark.slow  # one more case: the fast subset has one of its kind
def test_train_resume_with_other_options_fails(tmp_path, route, trained, bad_input):
    ref, _ = route
    model = copy_model(trained[0], tmp_path / "model")
    before = module_stats(model)
    bad_input.watch(tmp_path)
    proc = run_cli(["train", "--reference", ref, "--out", model, "--neurons", "20",
                    "--places-per-module", "6", "--epochs", "4", "--resume"], cwd=tmp_path)
    bad_input(proc, "epochs")
    assert module_stats(model) == before


# --------------------------------------------------------------------------
# evaluate: bad model or query -> exit 2, one line
# --------------------------------------------------------------------------

def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage_manifest(text: bytes):
    def damage(model: Path) -> None:
        (model / "model.yaml").write_bytes(text)
    return damage


BAD_MODELS = {
    "module-byte-flipped": (lambda m: _flip_byte(m / "module_0000.npz"), ["module_0000.npz", "checksum"]),
    "network-truncated": (lambda m: _truncate(m / "network.npz"), ["network.npz"]),
    "manifest-binary-garbage": (_garbage_manifest(bytes(range(256)) * 8), ["model.yaml"]),
    "manifest-invalid-yaml": (_garbage_manifest(b"{{{ not: yaml: ]["), ["model.yaml"]),
    "manifest-plain-text": (_garbage_manifest(b"hello, I am not a model\n"), ["model.yaml"]),
    "manifest-empty": (_garbage_manifest(b""), ["model.yaml"]),
    "manifest-random-bytes": (_garbage_manifest(np.random.default_rng(7).bytes(3000)), ["model.yaml"]),
}


@pytest.mark.parametrize("case", cases(BAD_MODELS))
def test_evaluate_damaged_model_is_one_line_error(case, tmp_path, route, trained, bad_input):
    _, query = route
    model = copy_model(trained[0], tmp_path / "model")
    damage, words = BAD_MODELS[case]
    damage(model)
    bad_input.watch(tmp_path)  # the damaged model as it was, and no report
    proc = run_cli(["evaluate", "--model", model, "--query", query, "--report", tmp_path / "rep"],
                   cwd=tmp_path)
    bad_input(proc, *words)


def _tamper(change):
    def damage(model: Path) -> None:
        manifest = load_yaml(model / "model.yaml")
        change(manifest)
        (model / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return damage


TAMPERED = {
    "hyperactive-threshold-not-int": _tamper(lambda m: m.__setitem__("hyperactive_threshold", "abc")),
    "place-names-not-a-list": _tamper(lambda m: m["places"].__setitem__("names", 5)),
    "places-not-a-mapping": _tamper(lambda m: m.__setitem__("places", [1])),
    "config-value-wrong-type": _tamper(lambda m: m["config"].__setitem__("n_neurons", "many")),
}


@pytest.mark.parametrize("case", cases(TAMPERED))
def test_evaluate_tampered_manifest_is_one_line_error(case, tmp_path, route, trained, bad_input):
    """A model.yaml that is valid YAML but holds wrong values is a model error, not a crash."""
    _, query = route
    model = copy_model(trained[0], tmp_path / "model")
    TAMPERED[case](model)
    bad_input.watch(tmp_path)
    proc = run_cli(["evaluate", "--model", model, "--query", query, "--report", tmp_path / "rep"],
                   cwd=tmp_path)
    bad_input(proc, "model")


def test_evaluate_missing_model_dir(tmp_path, route, bad_input):
    _, query = route
    bad_input.watch(tmp_path)
    proc = run_cli(["evaluate", "--model", tmp_path / "no_such_model", "--query", query,
                    "--report", tmp_path / "rep"], cwd=tmp_path)
    bad_input(proc, "no_such_model")


def test_evaluate_query_count_differs_from_model(tmp_path, route, trained, bad_input):
    _, query = route
    short = _copy_reference(query, tmp_path / "short_query", count=8)
    bad_input.watch(tmp_path, trained[0])
    proc = run_cli(["evaluate", "--model", trained[0], "--query", short, "--report", tmp_path / "rep"],
                   cwd=tmp_path)
    bad_input(proc, "--ground-truth", "12", "8")


@pytest.mark.slow  # one more case: the fast subset has one of its kind
def test_evaluate_invalid_sequence_length_is_one_line_error(tmp_path, route, trained, bad_input):
    _, query = route
    bad_input.watch(tmp_path, trained[0])
    proc = run_cli(["evaluate", "--model", trained[0], "--query", query, "--report", tmp_path / "rep",
                    "--sequence-length", "0"], cwd=tmp_path)
    bad_input(proc, "--sequence-length")


@pytest.mark.slow  # one more case: the fast subset has one of its kind
def test_evaluate_report_path_is_a_file_is_one_line_error(tmp_path, route, trained, bad_input):
    _, query = route
    report = tmp_path / "report_file"
    report.write_text("I am a file\n")
    bad_input.watch(tmp_path, trained[0])  # the file is not overwritten
    proc = run_cli(["evaluate", "--model", trained[0], "--query", query, "--report", report],
                   cwd=tmp_path)
    bad_input(proc, "report_file", "not a directory")


# --------------------------------------------------------------------------
# happy path
# --------------------------------------------------------------------------

def test_train_writes_a_complete_model(trained):
    model, proc = trained
    assert "model written to" in proc.stdout
    manifest = load_yaml(model / "model.yaml")
    assert manifest["complete"] is True
    assert manifest["places"]["count"] == N_PLACES
    assert manifest["places"]["names"] == [f"place-{k:04d}.png" for k in range(N_PLACES)]
    assert sorted(p.name for p in model.glob("module_*.npz")) == ["module_0000.npz", "module_0001.npz"]
    assert (model / "network.npz").is_file()


def test_evaluate_report_json(evaluated, trained, route):
    report_dir, _ = evaluated
    report = load_report(report_dir)
    for key in ("recall", "pr_auc", "pr_auc_distance", "queries", "timing", "recall_at_100_precision"):
        assert key in report, key
    assert list(report["recall"]) == RECALL_NS
    # 12 places: every place is within the top 15, 20 and 25.
    assert report["recall"]["15"] == report["recall"]["20"] == report["recall"]["25"] == 1.0
    assert report["queries"] == N_PLACES
    assert report["ensemble"] == 1
    assert report["sequence_length"] == 1
    assert set(report["timing"]) >= {"seconds", "queries_per_second"}
    # Everything else is what evaluate() gives in this process on the same model and images.
    assert without_wall_times(report) == in_process_report(trained[0], route[1])


def test_evaluate_writes_valid_pngs(evaluated):
    report_dir, _ = evaluated
    for name in ("pr_curve.png", "similarity.png"):
        path = report_dir / name
        assert path.is_file(), name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        image = cv2.imread(str(path))
        assert image is not None, name
        assert image.shape[0] > 10 and image.shape[1] > 10


def test_evaluate_prints_recall_table(evaluated):
    report_dir, proc = evaluated
    report = load_report(report_dir)
    lines = proc.stdout.splitlines()
    header = next((line for line in lines if line.split()[:1] == ["N"]), None)
    assert header is not None, proc.stdout
    assert header.split()[1:] == RECALL_NS
    row = next((line for line in lines if line.startswith("R@N ")), None)
    assert row is not None, proc.stdout
    printed = [float(v) for v in row.split()[1:]]
    assert printed == pytest.approx([report["recall"][n] for n in RECALL_NS], abs=6e-4)
    assert "PR-AUC" in proc.stdout


@pytest.mark.slow
def test_evaluate_tolerance_recall_at_least_exact(tmp_path, route, trained):
    _, query = route
    proc = run_cli(["evaluate", "--model", trained[0], "--query", query, "--report", tmp_path / "rep",
                    "--tolerance", "1"], cwd=tmp_path)
    assert_ok(proc)
    report = load_report(tmp_path / "rep")
    assert list(report["recall_tolerance"]) == RECALL_NS
    for n in RECALL_NS:
        assert report["recall"][n] <= report["recall_tolerance"][n], n
    assert without_wall_times(report) == in_process_report(trained[0], query, tolerance=1)
    assert "R@N+-" in proc.stdout


@pytest.mark.slow
def test_evaluate_sequence_length_3(tmp_path, route, trained):
    _, query = route
    proc = run_cli(["evaluate", "--model", trained[0], "--query", query, "--report", tmp_path / "rep",
                    "--sequence-length", "3"], cwd=tmp_path)
    assert_ok(proc)
    report = load_report(tmp_path / "rep")
    assert report["sequence_length"] == 3
    # The first L - 1 = 2 queries have no full sequence: they are not counted.
    assert report["queries"] == N_PLACES - 2
    assert without_wall_times(report) == in_process_report(trained[0], query, sequence_length=3)
    assert "sequence length 3" in proc.stdout


# --------------------------------------------------------------------------
# place selection: --exclude, --every, --limit
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_train_exclude_drops_listed_files(tmp_path, route):
    ref, query = route
    exclude = tmp_path / "exclude.csv"
    dropped = ["place-0002.png", "place-0007.png"]
    exclude.write_text("filename\n" + "\n".join(dropped) + "\n")
    out = tmp_path / "model"
    proc = run_cli(["train", "--reference", ref, "--out", out, *TINY, "--exclude", exclude], cwd=tmp_path)
    assert_ok(proc)
    places = load_yaml(out / "model.yaml")["places"]
    assert places["count"] == N_PLACES - len(dropped)
    assert len(places["names"]) == places["count"]
    assert not set(dropped) & set(places["names"])
    # The query traverse with the same --exclude matches the model place for place.
    proc = run_cli(["evaluate", "--model", out, "--query", query, "--report", tmp_path / "rep",
                    "--exclude", exclude], cwd=tmp_path)
    assert_ok(proc)
    assert load_report(tmp_path / "rep")["queries"] == N_PLACES - len(dropped)


@pytest.mark.slow
@pytest.mark.parametrize("options, expected", [
    (["--every", "2"], list(range(0, N_PLACES, 2))),
    (["--limit", "7"], list(range(7))),
    (["--every", "2", "--limit", "4"], [0, 2, 4, 6]),
], ids=["every-2", "limit-7", "every-2-limit-4"])
def test_train_every_and_limit_select_places(options, expected, tmp_path, route):
    ref, _ = route
    out = tmp_path / "model"
    proc = run_cli(["train", "--reference", ref, "--out", out, *TINY, *options], cwd=tmp_path)
    assert_ok(proc)
    places = load_yaml(out / "model.yaml")["places"]
    assert places["count"] == len(expected)
    assert places["names"] == [f"place-{k:04d}.png" for k in expected]


# --------------------------------------------------------------------------
# ensemble, seeds, demo
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_ensemble_of_two_trains_and_evaluates(tmp_path, route):
    ref, query = route
    out = tmp_path / "ens"
    proc = run_cli(["train", "--reference", ref, "--out", out, *TINY, "--ensemble", "2"], cwd=tmp_path)
    assert_ok(proc)
    assert (out / "ensemble.yaml").is_file()
    for member in ("seed_0", "seed_1"):
        assert load_yaml(out / member / "model.yaml")["complete"] is True, member
        assert (out / member / "module_0000.npz").is_file(), member
    assert load_yaml(out / "ensemble.yaml")["members"] == ["seed_0", "seed_1"]
    assert ((out / "seed_0" / "module_0000.npz").read_bytes()
            != (out / "seed_1" / "module_0000.npz").read_bytes())
    proc = run_cli(["evaluate", "--model", out, "--query", query, "--report", tmp_path / "rep"],
                   cwd=tmp_path)
    assert_ok(proc)
    report = load_report(tmp_path / "rep")
    assert report["ensemble"] == 2
    assert report["queries"] == N_PLACES


@pytest.mark.slow
def test_same_seed_gives_identical_modules_other_seed_differs(tmp_path, route, trained):
    ref, _ = route
    again, other = tmp_path / "seed0_again", tmp_path / "seed1"
    for out, seed in ((again, "0"), (other, "1")):
        proc = run_cli(["train", "--reference", ref, "--out", out, *TINY, "--seed", seed], cwd=tmp_path)
        assert_ok(proc)
    first = (trained[0] / "module_0000.npz").read_bytes()
    assert (again / "module_0000.npz").read_bytes() == first
    assert (again / "module_0001.npz").read_bytes() == (trained[0] / "module_0001.npz").read_bytes()
    assert (other / "module_0000.npz").read_bytes() != first


@pytest.mark.slow
def test_demo(tmp_path):
    work, model = tmp_path / "W", tmp_path / "M"
    proc = run_cli(["demo", "--work", work, "--model", model, "--places", "12",
                    "--places-per-module", "6", "--neurons", "20", "--epochs", "3"], cwd=tmp_path)
    assert_ok(proc)
    assert "R@N" in proc.stdout
    header = next(line for line in proc.stdout.splitlines() if line.split()[:1] == ["N"])
    assert header.split()[1:] == RECALL_NS
    assert (model / "model.yaml").is_file()
    report = load_report(work / "report")
    assert report["queries"] == 12
    assert list(report["recall"]) == RECALL_NS


@pytest.mark.slow
def test_console_script(tmp_path, deps, bad_input):
    script = Path(sys.executable).parent / "vprsnn"
    if not script.exists():  # pip install -e . puts it there, as CI does
        deps.missing(f"no vprsnn console script next to the interpreter ({script}): pip install -e .",
                     ci_installs=True)
    proc = subprocess.run([str(script), "--version"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, describe(proc)
    assert "vprsnn_ros" in proc.stdout + proc.stderr
    bad_input.watch(tmp_path)
    proc = subprocess.run([str(script), "evaluate", "--model", "missing", "--query", "q",
                           "--report", "r"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    bad_input(proc, "missing")
