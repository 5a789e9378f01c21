"""Growing maps: an extended model is the model trained on all places at once, and bad
extensions change nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from vprsnn_ros.cli import main
from vprsnn_ros.eval.evaluation import evaluate
from vprsnn_ros.io.sources import load_traverse
from vprsnn_ros.io.synthetic import write_route
from vprsnn_ros.localizer import Localizer
from vprsnn_ros.model.ensemble import load_model
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.train.extend import STAGE_FILE, extend_model, extension_regions
from vprsnn_ros.train.training import train_network

N_OLD, N_NEW, N_CAL = 16, 8, 4
CONFIG = NetworkConfig(n_neurons=30, places_per_module=4, epochs=3, seed=2)
TINY = ["--neurons", "30", "--places-per-module", "4", "--epochs", "3", "--seed", "2"]


def arrays_of(path: Path) -> dict:
    store = ModelStore.open(path)
    return {(p, k): v for p in store.parts() for k, v in store.read_part(p).items()}


def assert_same_arrays(a: Path, b: Path) -> None:
    x, y = arrays_of(a), arrays_of(b)
    assert sorted(x) == sorted(y)
    for key in x:
        assert x[key].dtype == y[key].dtype and x[key].tobytes() == y[key].tobytes(), key


def snapshot(path: Path) -> dict:
    """Every file under ``path`` with its content hash."""
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(path.rglob("*")) if f.is_file()}


@pytest.fixture(scope="module")
def route(tmp_path_factory):
    work = tmp_path_factory.mktemp("extend")
    ref, query = write_route(work / "route", N_OLD + N_NEW, seed=21)
    images = sorted(ref.iterdir())
    for name, chosen in (("old", images[:N_OLD]), ("new", images[N_OLD:])):
        (work / name).mkdir()
        for f in chosen:
            shutil.copy(f, work / name / f.name)
    size, patch = CONFIG.image_size, CONFIG.patch
    return {"work": work, "ref": ref, "query": query, "old": work / "old", "new": work / "new",
            "all": load_traverse(ref, size, patch), "q": load_traverse(query, size, patch)}


@pytest.fixture(scope="module")
def old_model(route):
    """Trained on the first 16 places, calibrated on the first 4."""
    out = route["work"] / "m_old"
    t = route["all"]
    train_network(CONFIG, [t.pixels[:N_OLD]], t.names[:N_OLD], out, calibration_places=N_CAL,
                  calibration_query=route["q"].pixels[:N_CAL])
    return out


@pytest.fixture(scope="module")
def all_at_once(route):
    out = route["work"] / "m_all"
    t = route["all"]
    train_network(CONFIG, [t.pixels], t.names, out, calibration_places=N_CAL,
                  calibration_query=route["q"].pixels[:N_CAL])
    return out


def test_extension_regions():
    assert [list(r) for r in extension_regions(16, 6, 4, False, 0)] == [[16, 17, 18, 19], [20, 21]]
    shuffled = extension_regions(16, 10, 4, True, 5)
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(16, 26))
    assert [len(r) for r in shuffled] == [4, 4, 2]
    assert [list(r) for r in shuffled] == [list(r) for r in extension_regions(16, 10, 4, True, 5)]


@pytest.mark.slow
def test_extended_model_equals_the_model_trained_on_all_places(route, old_model, all_at_once, tmp_path):
    before = snapshot(old_model)
    out = tmp_path / "extended"
    assert main(["extend", "--model", str(old_model), "--reference", str(route["new"]),
                 "--out", str(out), "--calibration-query", str(route["query"])]) == 0
    assert snapshot(old_model) == before, "--out must leave the model as it was"
    # Existing modules: the same files; existing places: the same ids.
    old_store, ext_store = ModelStore.open(old_model), ModelStore.open(out)
    for m in range(4):
        part = f"module_{m:04d}"
        assert ext_store.meta["parts"][part]["sha256"] == old_store.meta["parts"][part]["sha256"]
    assert ext_store.meta["places"]["names"][:N_OLD] == old_store.meta["places"]["names"]
    # Everything equals training on all 24 places at once (regions, modules, activity, T).
    assert_same_arrays(all_at_once, out)
    ref_meta, ext_meta = ModelStore.open(all_at_once).meta, ext_store.meta
    assert ext_meta["places"] == ref_meta["places"]
    assert ext_meta["hyperactive_threshold"] == ref_meta["hyperactive_threshold"]
    assert ext_meta["calibration"]["table"] == ref_meta["calibration"]["table"]
    reports = []
    for model in (out, all_at_once):
        report, S, _ = evaluate(load_model(model), route["q"].pixels)
        del report["timing"], report["baseline"]["seconds"]  # wall times
        reports.append((report, S))
    assert reports[0][0] == reports[1][0]
    assert np.array_equal(reports[0][1], reports[1][1])
    assert not (out / STAGE_FILE).exists()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "staging left behind"


@pytest.mark.slow
def test_shuffled_extension_equals_training_with_its_regions(route, tmp_path):
    cfg = CONFIG.with_(shuffle=True)
    t = route["all"]
    old = tmp_path / "old"
    train_network(cfg, [t.pixels[:N_OLD]], t.names[:N_OLD], old)
    extend_model(old, [t.pixels[N_OLD:]], t.names[N_OLD:])
    regions = load_network(old).regions
    assert sorted(np.concatenate(regions[-2:]).tolist()) == list(range(N_OLD, N_OLD + N_NEW))
    together = tmp_path / "together"
    train_network(cfg, [t.pixels], t.names, together, regions=regions)
    assert_same_arrays(old, together)


@pytest.mark.slow
def test_interrupted_extension_leaves_the_model_and_resumes(route, old_model, all_at_once, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(old_model, model)
    before = snapshot(model)
    t, q = route["all"], route["q"]

    class Stop(Exception):
        pass

    def stop_when_recording(done, total, message):
        if message == "recording hyperactivity":
            raise Stop

    with pytest.raises(Stop):
        extend_model(model, [t.pixels[N_OLD:]], t.names[N_OLD:], calibration_query=q.pixels,
                     progress=stop_when_recording)
    assert load_network(model).n_places == N_OLD
    listed = {k: v for k, v in snapshot(model).items() if k in before}
    assert listed == before, "an interrupted extension changed the model's files"
    staged = yaml.safe_load((model / STAGE_FILE).read_text())["parts"]
    assert sorted(staged) == ["module_0004", "module_0005"]
    # Running it again reuses the staged modules and finishes.
    messages = []
    stamps = {f: (model / f"{f}.x24.npz").stat().st_mtime_ns for f in staged}
    extend_model(model, [t.pixels[N_OLD:]], t.names[N_OLD:], calibration_query=q.pixels,
                 progress=lambda d, total, m: messages.append(m))
    assert not [m for m in messages if "epoch" in m], "the staged modules were trained again"
    assert stamps == {f: (model / f"{f}.x24.npz").stat().st_mtime_ns for f in staged}
    assert_same_arrays(all_at_once, model)
    assert not (model / STAGE_FILE).exists()


@pytest.mark.slow
def test_ensemble_extends_in_place_and_a_localizer_reload_sees_it(route, tmp_path):
    old, together = tmp_path / "ens", tmp_path / "ens_all"
    common = [*TINY, "--ensemble", "2"]
    assert main(["train", "--reference", str(route["old"]), "--out", str(old), *common]) == 0
    assert main(["train", "--reference", str(route["ref"]), "--out", str(together), *common]) == 0
    loc = Localizer(old)
    assert loc.n_places == N_OLD
    assert main(["extend", "--model", str(old), "--reference", str(route["new"])]) == 0
    for member in ("seed_2", "seed_3"):
        assert_same_arrays(old / member, together / member)
    assert Localizer(old).n_places == N_OLD + N_NEW  # what ~/reload does: load the path again


def test_info_prints_the_model(route, old_model, capsys):
    assert main(["info", str(old_model)]) == 0
    out = capsys.readouterr().out
    meta = ModelStore.open(old_model).meta
    assert f"places     {N_OLD}" in out
    assert "4 (1 calibration, 3 test)" in out
    assert "profile    faithful" in out
    assert f"T          {meta['hyperactive_threshold']}, chosen by calibration" in out
    assert f"{meta['training']['seconds']} s" in out
    assert "complete   yes" in out and "vprsnn_ros 0.1.0" in out


def test_info_of_an_incomplete_model(route, tmp_path, capsys):
    model = tmp_path / "partial"
    t = route["all"]
    store = ModelStore.create(model, {"config": CONFIG.to_dict(),
                                      "places": {"count": 4, "names": t.names[:4]}})
    assert not store.complete
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "complete   no" in out and "T          not chosen yet" in out


# --------------------------------------------------------------------------
# bad input: one line, exit 2, nothing changed
# --------------------------------------------------------------------------

# Every option extend checks against the model (cli/extend.py), with a value the model was not
# trained with: (option, value, what the error line names).
OTHER_SETTINGS = [
    ("--width", "32", "image_width 28, not 32"),
    ("--height", "32", "image_height 28, not 32"),
    ("--patch", "5", "patch 7, not 5"),
    ("--neurons", "31", "n_neurons 30, not 31"),
    ("--places-per-module", "5", "places_per_module 4, not 5"),
    ("--dt", "0.25", "dt 0.5, not 0.25"),
    ("--epochs", "4", "epochs 3, not 4"),
    ("--profile", "tuned", "profile 'faithful', not 'tuned'"),
]


@pytest.mark.parametrize("option, value, words", OTHER_SETTINGS, ids=[o[0] for o in OTHER_SETTINGS])
@pytest.mark.parametrize("out", [False, True], ids=["in-place", "to-out"])
def test_extend_with_other_settings_is_refused(route, old_model, tmp_path, capsys, bad_input, option, value,
                                               words, out):
    target = ["--out", str(tmp_path / "out")] if out else []
    bad_input.watch(old_model, tmp_path)
    code = main(["extend", "--model", str(old_model), "--reference", str(route["new"]), *target, option, value])
    bad_input((code, capsys.readouterr().err), f"cannot extend model {old_model}", words)


def test_every_checked_option_is_tested():
    import argparse

    from vprsnn_ros.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    checked = {a.option_strings[0] for a in commands.choices["extend"]._actions
               if a.help == "optional check: must equal the model's"}
    assert checked == {o[0] for o in OTHER_SETTINGS}


def test_extend_with_repeated_places_is_refused(route, old_model, tmp_path, capsys, bad_input):
    repeat = tmp_path / "repeat"
    shutil.copytree(route["new"], repeat)
    shutil.copy(sorted(route["old"].iterdir())[3], repeat)
    bad_input.watch(old_model, tmp_path)
    code = main(["extend", "--model", str(old_model), "--reference", str(repeat), "--out", str(tmp_path / "out")])
    bad_input((code, capsys.readouterr().err), "repeats existing place name", sorted(route["old"].iterdir())[3].name)


def test_extend_incomplete_model_is_refused(route, old_model, tmp_path, capsys, bad_input):
    model = tmp_path / "m"
    shutil.copytree(old_model, model)
    manifest = yaml.safe_load((model / "model.yaml").read_text())
    manifest["complete"] = False
    (model / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    bad_input.watch(tmp_path)
    code = main(["extend", "--model", str(model), "--reference", str(route["new"])])
    bad_input((code, capsys.readouterr().err), "incomplete", str(model))


@pytest.mark.slow
def test_evaluate_json_of_extended_model_is_valid(route, old_model, tmp_path):
    out = tmp_path / "ext"
    assert main(["extend", "--model", str(old_model), "--reference", str(route["new"]),
                 "--out", str(out)]) == 0
    assert main(["evaluate", "--model", str(out), "--query", str(route["query"]),
                 "--report", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["places"] == N_OLD + N_NEW - N_CAL


def test_extend_model_without_reference_images_is_refused(route, old_model, tmp_path, capsys, bad_input):
    model = tmp_path / "m"
    shutil.copytree(old_model, model)
    manifest = yaml.safe_load((model / "model.yaml").read_text())
    del manifest["parts"]["reference_pixels"]  # as written before extension support
    (model / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    bad_input.watch(tmp_path)
    code = main(["extend", "--model", str(model), "--reference", str(route["new"])])
    bad_input((code, capsys.readouterr().err), "does not store its reference images")


def test_info_and_extend_read_the_profile_from_the_manifest(route, old_model, tmp_path, capsys, bad_input):
    # The profile is model.yaml's top-level key (not part of the network config).
    import shutil

    import yaml

    from vprsnn_ros.snn.profiles import TUNED
    copy = tmp_path / "tuned_copy"
    shutil.copytree(old_model, copy)
    meta = yaml.safe_load((copy / "model.yaml").read_text())
    meta["profile"] = TUNED.to_dict()
    (copy / "model.yaml").write_text(yaml.safe_dump(meta))
    assert main(["info", str(copy)]) == 0
    assert ("profile    tuned (readout zscore, auto_threshold True, preselect True, spike_trains regular, "
            "inhibition_start 0.25, query_inhibition 0.25, threshold_at_k True)"
            in capsys.readouterr().out)
    bad_input.watch(tmp_path)
    code = main(["extend", "--model", str(copy), "--reference", str(route["new"]), "--profile", "faithful"])
    bad_input((code, capsys.readouterr().err), "trained with profile 'tuned', not 'faithful'")
