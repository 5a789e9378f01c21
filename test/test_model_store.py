"""Tests of vprsnn_ros.atomic and vprsnn_ros.model.store (no ROS needed)."""

import hashlib
import os
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import vprsnn_ros  # noqa: E402
from vprsnn_ros import atomic  # noqa: E402
from vprsnn_ros.atomic import atomic_save_npz, atomic_write_bytes, atomic_write_text, sha256_file  # noqa: E402
from vprsnn_ros.errors import ModelError, VprsnnError  # noqa: E402
from vprsnn_ros.model.store import FORMAT_VERSION, MANIFEST, ModelStore, open_complete, to_plain  # noqa: E402

CONFIG = {"image_size": [28, 28], "n_neurons": 16, "epochs": 4, "threshold": 0.5, "seed": 0}
META = {"config": CONFIG, "places": [{"id": 0, "name": "gate"}, {"id": 1, "name": "lab"}]}


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "weights": rng.standard_normal((4, 3)).astype(np.float32),
        "delays": rng.integers(-5, 5, size=(7,), dtype=np.int16),
        "mask": rng.integers(0, 255, size=(2, 3, 2), dtype=np.uint8),
        "place_ids": np.arange(5, dtype=np.int64),
    }


def _temp_files(directory):
    return [p.name for p in Path(directory).iterdir() if p.name.endswith(".tmp")]


def _load_yaml(path):
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def _dump_yaml(path, data):
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


@pytest.fixture
def model(tmp_path):
    store = ModelStore.create(tmp_path / "m", META)
    store.write_part("network", _arrays(0))
    store.write_part("module_0000", _arrays(1))
    return store


# --------------------------------------------------------------------------- #
# atomic.py
# --------------------------------------------------------------------------- #

def test_atomic_write_bytes_and_text(tmp_path):
    target = tmp_path / "report.txt"
    atomic_write_bytes(target, b"one")
    assert target.read_bytes() == b"one"
    atomic_write_text(target, "zwei \u00e9\n")
    assert target.read_text(encoding="utf-8") == "zwei \u00e9\n"
    assert _temp_files(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt"]


def test_atomic_write_keeps_existing_mode(tmp_path):
    target = tmp_path / "x.bin"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    atomic_write_bytes(target, b"new")
    assert (target.stat().st_mode & 0o777) == 0o640


@pytest.mark.parametrize("writer", [
    lambda p: atomic_write_bytes(p, b"NEW CONTENT"),
    lambda p: atomic_write_text(p, "NEW CONTENT"),
    lambda p: atomic_save_npz(p, {"a": np.zeros(3)}),
])
def test_atomic_write_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch, writer):
    target = tmp_path / "data.npz"
    target.write_bytes(b"old content")

    def boom(src, dst):
        assert Path(src).exists()  # the temp file was fully written before the rename
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        writer(target)
    assert target.read_bytes() == b"old content"
    assert _temp_files(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["data.npz"]


def test_atomic_write_failure_without_old_file(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", lambda s, d: (_ for _ in ()).throw(OSError("fail")))
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "new.bin", b"x")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_rejects_text_as_bytes(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "x", "not bytes")
    with pytest.raises(TypeError):
        atomic_write_text(tmp_path / "x", b"not text")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("compress", [False, True])
def test_atomic_save_npz_roundtrip_and_digest(tmp_path, compress):
    arrays = dict(_arrays(), file=np.ones(2), allow_pickle=np.zeros(1, dtype=np.uint8))
    target = tmp_path / "a.npz"
    digest = atomic_save_npz(target, arrays, compress=compress)
    assert digest == sha256_file(target) == hashlib.sha256(target.read_bytes()).hexdigest()
    with np.load(target, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(arrays)
        for key, value in arrays.items():
            np.testing.assert_array_equal(npz[key], value)
            assert npz[key].dtype == value.dtype
    assert _temp_files(tmp_path) == []
    # deterministic: same arrays, same bytes
    assert atomic_save_npz(tmp_path / "b.npz", arrays, compress=compress) == digest


def test_atomic_save_npz_refuses_objects(tmp_path):
    target = tmp_path / "o.npz"
    with pytest.raises(ValueError, match="object"):
        atomic_save_npz(target, {"x": np.array([{"a": 1}, None], dtype=object)})
    with pytest.raises(ValueError, match="object"):
        atomic_save_npz(target, {"x": np.zeros(2, dtype=[("a", "f4"), ("b", "O")])})
    assert list(tmp_path.iterdir()) == []


def test_sha256_file_streams_large_file(tmp_path):
    data = os.urandom((1 << 20) * 2 + 123)
    (tmp_path / "big").write_bytes(data)
    assert sha256_file(tmp_path / "big") == hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- #
# round trip and manifest
# --------------------------------------------------------------------------- #

def test_roundtrip_several_parts(tmp_path):
    store = ModelStore.create(tmp_path / "deep" / "model", META)
    written = {f"module_{i:04d}": _arrays(i) for i in range(3)}
    written["network"] = {"w": np.ones((2, 2), np.float32), "flag": np.array(True),
                          "names": np.array(["gate", "lab"]), "empty": np.zeros((0, 5), np.float32)}
    for name, arrays in written.items():
        store.write_part(name, arrays)
    store.update_meta(complete=True, calibration={"threshold": np.float32(0.25), "k": np.int64(3)})

    reopened = open_complete(tmp_path / "deep" / "model")
    assert reopened.parts() == list(written)
    for name, arrays in written.items():
        assert reopened.has_part(name)
        got = reopened.read_part(name)
        assert sorted(got) == sorted(arrays)
        for key, value in arrays.items():
            assert got[key].dtype == value.dtype and got[key].shape == value.shape
            np.testing.assert_array_equal(got[key], value)
    assert not reopened.has_part("module_0099")
    assert reopened.meta["calibration"] == {"threshold": 0.25, "k": 3}
    assert reopened.meta["config"] == CONFIG


def test_manifest_is_readable_yaml_with_documented_keys(model):
    doc = _load_yaml(model.path / MANIFEST)
    keys = list(doc)
    assert keys[:4] == ["format_version", "package_version", "created", "complete"]
    assert keys[-1] == "parts"
    assert {"config", "places"} <= set(keys)
    assert doc["format_version"] == FORMAT_VERSION == 1
    assert doc["package_version"] == vprsnn_ros.__version__
    assert isinstance(doc["created"], str)
    assert datetime.fromisoformat(doc["created"]).utcoffset().total_seconds() == 0
    assert doc["complete"] is False
    assert doc["config"] == CONFIG
    assert doc["places"] == META["places"]
    part = doc["parts"]["network"]
    assert part["file"] == "network.npz"
    assert part["sha256"] == sha256_file(model.path / "network.npz")
    assert part["arrays"]["weights"] == {"shape": [4, 3], "dtype": "float32"}
    assert part["arrays"]["delays"] == {"shape": [7], "dtype": "int16"}
    assert part["arrays"]["mask"] == {"shape": [2, 3, 2], "dtype": "uint8"}
    assert part["arrays"]["place_ids"] == {"shape": [5], "dtype": "int64"}
    assert list(doc["parts"]) == ["network", "module_0000"]
    # meta is a copy
    m = model.meta
    m["config"]["n_neurons"] = 999
    assert model.meta["config"]["n_neurons"] == 16


def test_no_pickle_or_temp_files_in_model_dir(model):
    names = sorted(p.name for p in model.path.iterdir())
    assert names == sorted([MANIFEST, "network.npz", "module_0000.npz"])


def test_update_meta_persists_and_guards(model):
    model.update_meta(places=[{"id": 7, "name": "dock"}], complete=True)
    doc = _load_yaml(model.path / MANIFEST)
    assert doc["places"] == [{"id": 7, "name": "dock"}] and doc["complete"] is True
    assert list(doc)[-1] == "parts"
    assert set(doc["parts"]) == {"network", "module_0000"}
    for key in ("format_version", "parts", "created", "package_version"):
        with pytest.raises(ValueError):
            model.update_meta(**{key: 1})
    with pytest.raises(TypeError):
        model.update_meta(complete="yes")
    with pytest.raises(TypeError):
        model.update_meta(calibration=np.zeros(3))
    with pytest.raises(TypeError):
        model.update_meta(calibration={"path": Path("/x")})
    assert _load_yaml(model.path / MANIFEST) == doc  # failed updates changed nothing


def test_update_meta_failure_keeps_old_manifest(model, monkeypatch):
    before = (model.path / MANIFEST).read_bytes()
    monkeypatch.setattr(os, "replace", lambda s, d: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(ModelError, match="cannot write"):
        model.update_meta(complete=True)
    monkeypatch.undo()
    assert (model.path / MANIFEST).read_bytes() == before
    assert _temp_files(model.path) == []
    assert model.meta["complete"] is False  # memory did not run ahead of disk


def test_to_plain():
    value = {"a": np.float32(0.5), "b": (np.int16(2), np.bool_(True)), 3: np.str_("x"),
             np.int64(4): [None, 1.5, "s", False]}
    plain = to_plain(value)
    assert plain == {"a": 0.5, "b": [2, True], 3: "x", 4: [None, 1.5, "s", False]}
    assert type(plain["a"]) is float and type(plain["b"][0]) is int and type(plain["b"][1]) is bool
    assert type(plain[3]) is str
    yaml.safe_dump(plain)  # plain types only
    for bad in (np.zeros(2), Path("/x"), object(), {1.5: "float key"}, {"c": 1j}, np.complex64(1), {(1,): 2}):
        with pytest.raises(TypeError):
            to_plain(bad)


def test_create_refuses_bad_meta(tmp_path):
    with pytest.raises(ValueError):
        ModelStore.create(tmp_path / "m", {"parts": {}})
    with pytest.raises(TypeError):
        ModelStore.create(tmp_path / "m", {"config": {"x": np.ones(2)}})
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------- #
# parts
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("name", ["", "a-b", "../x", "a.b", "mod 1", "module/0", None, 3])
def test_write_part_rejects_bad_names(model, name):
    with pytest.raises(ValueError):
        model.write_part(name, {"a": np.zeros(1)})


def test_write_part_rejects_objects_and_changes_nothing(model):
    before = (model.path / MANIFEST).read_bytes()
    with pytest.raises(ValueError, match="object"):
        model.write_part("bad", {"a": np.array([1, "x", None], dtype=object)})
    with pytest.raises(ValueError):
        model.write_part("bad", {"a": np.zeros(2, dtype=[("x", "f4"), ("y", "i4")])})
    assert (model.path / MANIFEST).read_bytes() == before
    assert not (model.path / "bad.npz").exists()
    assert not model.has_part("bad")


def test_overwrite_part(model):
    model.write_part("network", {"w": np.full((2,), 7, np.int16)})
    reopened = ModelStore.open(model.path)
    got = reopened.read_part("network")
    assert list(got) == ["w"] and got["w"].tolist() == [7, 7]
    assert reopened.parts() == ["module_0000", "network"]


def test_big_endian_arrays_are_stored_native(model):
    model.write_part("be", {"x": np.arange(3, dtype=">f4")})
    got = ModelStore.open(model.path).read_part("be", {"x": ((3,), "float32")})
    assert got["x"].dtype == np.float32 and got["x"].tolist() == [0, 1, 2]


def test_expected_shapes_and_dtypes(model):
    ok = model.read_part("network", {"weights": ((4, None), "float32"), "delays": ((None,), "int16")})
    assert ok["weights"].shape == (4, 3)
    cases = [
        ({"weights": ((4, 4), "float32")}, r"shape \(4, 3\), expected \(4, 4\)"),
        ({"weights": ((None,), "float32")}, r"expected \(\*,\)"),
        ({"weights": ((4, 3), "float64")}, "dtype float32, expected float64"),
        ({"missing": ((1,), "float32")}, "no array 'missing'"),
    ]
    for expected, pattern in cases:
        with pytest.raises(ModelError, match=pattern) as info:
            model.read_part("network", expected)
        assert "network.npz" in str(info.value) and str(model.path) in str(info.value)


def test_unknown_part(model):
    with pytest.raises(ModelError, match="no part 'module_0001'"):
        model.read_part("module_0001")


# --------------------------------------------------------------------------- #
# tampering
# --------------------------------------------------------------------------- #

def test_flipped_byte_is_a_checksum_error(model):
    f = model.path / "module_0000.npz"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError) as info:
        ModelStore.open(model.path).read_part("module_0000")
    msg = str(info.value)
    assert "checksum" in msg and "module_0000.npz" in msg and str(model.path) in msg
    assert "\n" not in msg
    # the other part is still fine
    ModelStore.open(model.path).read_part("network")


def test_truncated_npz(model):
    f = model.path / "network.npz"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(ModelError, match="network.npz checksum mismatch"):
        model.read_part("network")


def test_deleted_npz(model):
    (model.path / "network.npz").unlink()
    with pytest.raises(ModelError, match="network.npz is missing"):
        ModelStore.open(model.path).read_part("network")


@pytest.mark.parametrize("field,value,pattern", [
    ("shape", [4, 4], r"'weights' has shape \(4, 3\), model.yaml says \(4, 4\)"),
    ("shape", [12], "shape"),
    ("dtype", "float64", "dtype float32, model.yaml says float64"),
])
def test_edited_manifest_array_spec(model, field, value, pattern):
    doc = _load_yaml(model.path / MANIFEST)
    doc["parts"]["network"]["arrays"]["weights"][field] = value
    _dump_yaml(model.path / MANIFEST, doc)
    with pytest.raises(ModelError, match=pattern):
        ModelStore.open(model.path).read_part("network")


def test_manifest_array_list_mismatch(model):
    doc = _load_yaml(model.path / MANIFEST)
    del doc["parts"]["network"]["arrays"]["mask"]
    doc["parts"]["network"]["arrays"]["ghost"] = {"shape": [1], "dtype": "uint8"}
    _dump_yaml(model.path / MANIFEST, doc)
    with pytest.raises(ModelError, match="lacks ghost and has unlisted mask"):
        ModelStore.open(model.path).read_part("network")


def test_swapped_part_files_detected(model):
    a, b = model.path / "network.npz", model.path / "module_0000.npz"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    with pytest.raises(ModelError, match="checksum"):
        model.read_part("network")


def _pickle_payload(path):
    Path(path).write_text("pickle was executed")
    return "payload"


class _Evil:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (_pickle_payload, (self.sentinel,))


@pytest.mark.parametrize("lie_about_dtype", [True, False])
def test_object_array_npz_is_refused_without_unpickling(model, tmp_path, lie_about_dtype):
    sentinel = tmp_path / "pwned"
    evil = np.empty(1, dtype=object)
    evil[0] = _Evil(str(sentinel))
    f = model.path / "network.npz"
    np.savez(f, weights=evil)  # hand-written npz holding a pickle
    assert not sentinel.exists()
    # a determined tamperer also fixes up the manifest
    doc = _load_yaml(model.path / MANIFEST)
    doc["parts"]["network"]["sha256"] = sha256_file(f)
    doc["parts"]["network"]["arrays"] = {
        "weights": {"shape": [1], "dtype": "float64" if lie_about_dtype else "object"}}
    _dump_yaml(model.path / MANIFEST, doc)
    with pytest.raises(ModelError) as info:
        ModelStore.open(model.path).read_part("network")
    assert "network" in str(info.value)
    if lie_about_dtype:
        assert "pickle" in str(info.value)
    assert not sentinel.exists()


def test_not_an_npz_with_matching_checksum(model):
    f = model.path / "network.npz"
    f.write_bytes(b"this is not a zip file at all")
    doc = _load_yaml(model.path / MANIFEST)
    doc["parts"]["network"]["sha256"] = sha256_file(f)
    _dump_yaml(model.path / MANIFEST, doc)
    with pytest.raises(ModelError, match="network.npz cannot be loaded"):
        ModelStore.open(model.path).read_part("network")


def test_manifest_file_outside_model_dir_refused(model, tmp_path):
    doc = _load_yaml(model.path / MANIFEST)
    doc["parts"]["network"]["file"] = "../elsewhere.npz"
    _dump_yaml(model.path / MANIFEST, doc)
    with pytest.raises(ModelError, match="network"):
        ModelStore.open(model.path)


# --------------------------------------------------------------------------- #
# corrupt manifests
# --------------------------------------------------------------------------- #

def _corrupt_cases():
    yield "garbage", b"\x00\xff\xfe\x89PNG\x1a garbage \xc3\x28 {[:", "model.yaml is not valid YAML"
    yield "bad_syntax", b"format_version: 1\nparts: {unclosed: [\n", "not valid YAML"
    yield "list", b"- format_version\n- 1\n", "does not hold a mapping"
    yield "scalar", b"just a string\n", "does not hold a mapping"
    yield "empty", b"", "does not hold a mapping"


@pytest.mark.parametrize("label,content,pattern", list(_corrupt_cases()))
def test_corrupt_manifest_bytes(model, label, content, pattern):
    (model.path / MANIFEST).write_bytes(content)
    with pytest.raises(ModelError, match=pattern) as info:
        ModelStore.open(model.path)
    assert str(model.path) in str(info.value)
    with pytest.raises(ModelError):
        open_complete(model.path)
    with pytest.raises(ModelError):
        ModelStore.create(model.path, META, resume=True)


@pytest.mark.parametrize("version", [2, 0, "1", 1.0, None, True])
def test_wrong_format_version(model, version):
    doc = _load_yaml(model.path / MANIFEST)
    doc["format_version"] = version
    _dump_yaml(model.path / MANIFEST, doc)
    with pytest.raises(ModelError, match="format version"):
        ModelStore.open(model.path)


@pytest.mark.parametrize("key", ["format_version", "package_version", "created", "complete", "parts"])
def test_missing_required_key(model, key):
    doc = _load_yaml(model.path / MANIFEST)
    del doc[key]
    _dump_yaml(model.path / MANIFEST, doc)
    with pytest.raises(ModelError, match=key):
        ModelStore.open(model.path)


@pytest.mark.parametrize("mutate", [
    lambda d: d.__setitem__("complete", "yes"),
    lambda d: d.__setitem__("parts", [1, 2]),
    lambda d: d["parts"].__setitem__("network", "nope"),
    lambda d: d["parts"]["network"].pop("sha256"),
    lambda d: d["parts"]["network"].__setitem__("sha256", "abc"),
    lambda d: d["parts"]["network"]["arrays"]["weights"].__setitem__("shape", [-1, 3]),
    lambda d: d["parts"]["network"]["arrays"]["weights"].__setitem__("dtype", "not_a_dtype"),
    lambda d: d["parts"].__setitem__("bad name", d["parts"].pop("network")),
])
def test_malformed_manifest_fields(model, mutate):
    doc = _load_yaml(model.path / MANIFEST)
    mutate(doc)
    _dump_yaml(model.path / MANIFEST, doc)
    with pytest.raises(ModelError, match="model.yaml"):
        ModelStore.open(model.path)


def test_missing_model(tmp_path):
    for path in (tmp_path / "nothing", tmp_path):
        for opener in (ModelStore.open, ModelStore, open_complete):
            with pytest.raises(ModelError, match=r"no model at .*\(model.yaml not found\)"):
                opener(path)


def test_errors_are_vprsnn_errors():
    assert issubclass(ModelError, VprsnnError)


# --------------------------------------------------------------------------- #
# create / resume / complete
# --------------------------------------------------------------------------- #

def test_resume_after_crash(tmp_path):
    out = tmp_path / "run"
    store = ModelStore.create(out, META)
    store.write_part("module_0000", _arrays(0))
    store.write_part("module_0001", _arrays(1))
    del store  # "crash": nothing else is flushed or closed

    resumed = ModelStore.create(out, META, resume=True)
    assert resumed.parts() == ["module_0000", "module_0001"]
    assert resumed.has_part("module_0000") and not resumed.has_part("module_0002")
    np.testing.assert_array_equal(resumed.read_part("module_0001")["weights"], _arrays(1)["weights"])
    resumed.write_part("module_0002", _arrays(2))
    resumed.update_meta(complete=True)
    done = open_complete(out)
    assert done.parts() == ["module_0000", "module_0001", "module_0002"]


def test_resume_keeps_created_and_config_key_order_irrelevant(tmp_path):
    out = tmp_path / "run"
    created = ModelStore.create(out, META).meta["created"]
    reordered = {"config": dict(reversed(list(CONFIG.items())))}
    assert ModelStore.create(out, reordered, resume=True).meta["created"] == created


def test_resume_with_other_config(tmp_path):
    out = tmp_path / "run"
    ModelStore.create(out, META).write_part("module_0000", _arrays(0))
    other = dict(META, config=dict(CONFIG, n_neurons=32))
    with pytest.raises(ModelError, match="other options") as info:
        ModelStore.create(out, other, resume=True)
    assert "n_neurons" in str(info.value) and str(out) in str(info.value)
    with pytest.raises(ModelError, match="other options"):
        ModelStore.create(out, {"config": None}, resume=True)
    assert ModelStore.open(out).parts() == ["module_0000"]  # nothing was touched


def test_create_without_resume_on_existing_model(tmp_path):
    out = tmp_path / "run"
    ModelStore.create(out, META).write_part("module_0000", _arrays(0))
    before = (out / MANIFEST).read_bytes()
    with pytest.raises(ModelError, match=r"already exists; use --resume or another --out"):
        ModelStore.create(out, META)
    assert (out / MANIFEST).read_bytes() == before


def test_create_in_existing_dirs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ModelStore.create(empty, META).parts() == []

    stale = tmp_path / "stale"  # only a temp file left by a killed writer
    stale.mkdir()
    (stale / ".model.yaml.abc123.tmp").write_text("half")
    assert ModelStore.create(stale, META, resume=True).parts() == []

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(ModelError, match="not empty"):
        ModelStore.create(busy, META)
    with pytest.raises(ModelError, match="not empty"):
        ModelStore.create(busy, META, resume=True)
    assert sorted(p.name for p in busy.iterdir()) == ["holiday.jpg"]

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ModelError, match="not a directory"):
        ModelStore.create(afile, META)


def test_crash_between_npz_and_manifest(model, monkeypatch):
    """An .npz written but not listed is ignored, and overwritten on resume."""
    real_write = ModelStore._write_manifest

    def crash(self, manifest):
        raise KeyboardInterrupt  # the process dies after the npz was written

    monkeypatch.setattr(ModelStore, "_write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        model.write_part("module_0001", _arrays(5))
    monkeypatch.setattr(ModelStore, "_write_manifest", real_write)
    assert (model.path / "module_0001.npz").exists()  # orphan

    resumed = ModelStore.create(model.path, META, resume=True)
    assert not resumed.has_part("module_0001")
    with pytest.raises(ModelError, match="no part"):
        resumed.read_part("module_0001")
    resumed.write_part("module_0001", _arrays(6))
    got = ModelStore.open(model.path).read_part("module_0001")
    np.testing.assert_array_equal(got["weights"], _arrays(6)["weights"])


def test_crash_while_overwriting_listed_part(model, monkeypatch):
    """Replacing a listed part un-lists it first: never listed with a mismatching file."""
    calls = []
    real_write = ModelStore._write_manifest

    def crash_second(self, manifest):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        real_write(self, manifest)

    monkeypatch.setattr(ModelStore, "_write_manifest", crash_second)
    with pytest.raises(KeyboardInterrupt):
        model.write_part("network", {"w": np.zeros(3, np.float32)})
    monkeypatch.undo()
    reopened = ModelStore.open(model.path)
    assert not reopened.has_part("network")
    assert reopened.has_part("module_0000")
    reopened.read_part("module_0000")


def test_failed_npz_write_in_write_part(model, monkeypatch):
    before = (model.path / MANIFEST).read_bytes()
    monkeypatch.setattr(os, "replace", lambda s, d: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(ModelError, match="cannot write .*module_0005.npz"):
        model.write_part("module_0005", _arrays(5))
    monkeypatch.undo()
    assert (model.path / MANIFEST).read_bytes() == before
    assert not (model.path / "module_0005.npz").exists()
    assert _temp_files(model.path) == []


def test_open_complete(model):
    with pytest.raises(ModelError) as info:
        open_complete(model.path)
    msg = str(info.value)
    assert "incomplete" in msg and "--resume" in msg and str(model.path) in msg
    # ordinary open still works on a partial model
    assert ModelStore.open(model.path).parts() == ["network", "module_0000"]
    model.update_meta(complete=True)
    assert open_complete(model.path).complete


def test_store_does_not_use_ros():
    src = Path(atomic.__file__).read_text() + Path(sys.modules["vprsnn_ros.model.store"].__file__).read_text()
    assert "rclpy" not in src
