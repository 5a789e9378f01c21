"""On-disk model directories.

A model is a directory holding

* ``model.yaml`` -- the manifest: format version, package version, creation
  time, ``complete`` flag, the caller's metadata (config, places, calibration,
  ...) and ``parts``: for each array file its name, sha256 and the shape and
  dtype of every array in it;
* one ``<part>.npz`` file per part (e.g. ``network.npz``, ``module_0007.npz``),
  loaded with ``np.load(..., allow_pickle=False)``; pickles are never written
  nor read. A part replaced by a staged change (:meth:`ModelStore.stage_part`
  and :meth:`ModelStore.commit`, used to extend a model in one step) lives in
  ``<part>.<tag>.npz``.

Every file is written atomically (:mod:`vprsnn_ros.atomic`). A part's .npz is
written *before* the manifest lists it, so a crash in between leaves an
unlisted file (ignored, overwritten on resume), never a listed but missing or
half-written one. Overwriting a listed part first un-lists it, for the same
reason. A trainer writes each module as soon as it is trained and sets
``complete=True`` at the end; :meth:`ModelStore.create` with ``resume=True``
reopens a partial model so training continues where it stopped.

Every problem reading a model raises :class:`~vprsnn_ros.errors.ModelError`
with one message naming the directory, the file and what is wrong.

The manifest format itself (reading, validating and dumping ``model.yaml``) is
:mod:`vprsnn_ros.model.manifest`.
"""

from __future__ import annotations

import copy
import io
import os
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from vprsnn_ros import __version__
from vprsnn_ros.atomic import atomic_save_npz, atomic_write_text, is_temp_name, sha256_bytes
from vprsnn_ros.errors import ModelError
from vprsnn_ros.model.manifest import (
    _PART_NAME,
    _READ_ONLY_KEYS,
    _STORE_KEYS,
    FORMAT_VERSION,
    MANIFEST,
    _check_part_entry,
    _diff_paths,
    _dtype_str,
    _dump_yaml,
    _load_manifest,
    _now_iso,
    _same_yaml,
    to_plain,
)

__all__ = ["FORMAT_VERSION", "MANIFEST", "ModelStore", "open_complete", "to_plain"]

PathLike = Union[str, "os.PathLike[str]"]
Expected = Mapping[str, Tuple[Tuple[Optional[int], ...], str]]


def _fmt_shape(shape: Tuple[Optional[int], ...]) -> str:
    items = ["*" if s is None else str(s) for s in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


# --------------------------------------------------------------------------- #
# the store
# --------------------------------------------------------------------------- #

class ModelStore:
    """A model directory. Arrays live in named .npz 'parts' (e.g. 'network', 'module_0007');
    the manifest records each part's sha256 and the shape/dtype of each of its arrays.

    ``ModelStore(path)`` is the same as :meth:`ModelStore.open`.
    """

    def __init__(self, path: PathLike):
        self._path = Path(path)
        self._manifest = _load_manifest(self._path)

    # ----------------------------------------------------------------- create
    @classmethod
    def _from_manifest(cls, path: Path, manifest: Dict[str, Any]) -> "ModelStore":
        store = cls.__new__(cls)
        store._path = path
        store._manifest = manifest
        return store

    @classmethod
    def create(cls, path: PathLike, meta: Mapping[str, Any], *, resume: bool = False) -> "ModelStore":
        """Start a new model in ``path`` (parents created), or reopen a partial one with ``resume``.

        * ``path`` holds a manifest: with ``resume=True`` it is opened (and its
          stored ``config`` must equal ``meta['config']``); without, ModelError.
        * ``path`` is missing or empty: a new model is started there.
        * ``path`` is not empty and holds no manifest: ModelError.

        ``meta`` holds the caller's top-level keys (``config``, ``places``, ...),
        plain YAML types only (see :func:`to_plain`); the store's own keys
        (format_version, package_version, created, complete, parts) are refused.
        """
        if not isinstance(meta, Mapping):
            raise TypeError(f"meta must be a dict, not {type(meta).__name__}")
        reserved = [k for k in meta if k in _STORE_KEYS]
        if reserved:
            raise ValueError(f"meta cannot set {', '.join(map(repr, reserved))}: managed by the model store")
        plain_meta = to_plain(dict(meta), "meta")
        path = Path(path)

        if path.exists() and not path.is_dir():
            raise ModelError(f"cannot create model {path}: it exists and is not a directory")
        if (path / MANIFEST).exists():
            if not resume:
                raise ModelError(f"model {path} already exists; use --resume or another --out")
            store = cls(path)
            stored = store._manifest.get("config")
            given = plain_meta.get("config")
            if not _same_yaml(stored, given):
                diffs = _diff_paths(stored, given)
                detail = "; ".join(diffs[:5]) + (f"; ... ({len(diffs) - 5} more)" if len(diffs) > 5 else "")
                raise ModelError(
                    f"cannot resume model {path}: the existing partial model was trained with other "
                    f"options ({detail}); rerun with the same options or use another --out")
            return store
        if path.is_dir():
            try:
                leftovers = [p.name for p in path.iterdir() if not is_temp_name(p.name)]
            except OSError as exc:
                raise ModelError(f"cannot create model {path}: {exc.strerror or exc}") from None
            if leftovers:
                raise ModelError(
                    f"cannot create model {path}: the directory is not empty and holds no model "
                    f"({MANIFEST} not found); choose an empty or new --out")

        manifest: Dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "created": _now_iso(),
            "complete": False,
        }
        manifest.update(plain_meta)
        manifest["parts"] = {}
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelError(f"cannot create model {path}: {exc.strerror or exc}") from None
        store = cls._from_manifest(path, manifest)
        store._write_manifest(manifest)
        return store

    @classmethod
    def open(cls, path: PathLike) -> "ModelStore":
        """Open an existing model (complete or not); ModelError if its manifest is missing or invalid."""
        return cls(path)

    # --------------------------------------------------------------- manifest
    @property
    def path(self) -> Path:
        return self._path

    @property
    def meta(self) -> Dict[str, Any]:
        """The manifest content (a deep copy)."""
        return copy.deepcopy(self._manifest)

    @property
    def complete(self) -> bool:
        return self._manifest.get("complete") is True

    def update_meta(self, **fields: Any) -> None:
        """Set top-level manifest keys (e.g. calibration, places, complete=True) and rewrite it atomically."""
        bad = [k for k in fields if k in _READ_ONLY_KEYS]
        if bad:
            raise ValueError(f"cannot set {', '.join(map(repr, bad))}: managed by the model store")
        if "complete" in fields and not isinstance(fields["complete"], (bool, np.bool_)):
            raise TypeError("complete must be a bool")
        manifest = copy.deepcopy(self._manifest)
        parts = manifest.pop("parts")
        for key, value in fields.items():
            manifest[key] = to_plain(value, key)
        manifest["parts"] = parts  # keep 'parts' last: the readable header comes first
        self._write_manifest(manifest)

    def _write_manifest(self, manifest: Dict[str, Any]) -> None:
        """Write ``manifest`` atomically, then adopt it (memory never runs ahead of disk)."""
        text = _dump_yaml(manifest)
        try:
            atomic_write_text(self._path / MANIFEST, text)
        except OSError as exc:
            raise ModelError(f"cannot write {self._path / MANIFEST}: {exc.strerror or exc}") from None
        self._manifest = manifest

    # ------------------------------------------------------------------ parts
    def has_part(self, name: str) -> bool:
        """True if the manifest lists part ``name``."""
        return name in self._manifest["parts"]

    def parts(self) -> List[str]:
        """Names of the listed parts, in the order they were first written."""
        return list(self._manifest["parts"])

    def write_part(self, name: str, arrays: Mapping[str, np.ndarray], *, compress: bool = False) -> None:
        """Write part ``name`` (.npz first, then the manifest). Replaces an existing part of that name.

        ``name`` must match ``[A-Za-z0-9_]+`` and array names must be non-empty
        strings, else ValueError; object and structured dtypes raise ValueError.
        """
        prepared, entries = _prepare_arrays(name, arrays)
        file_name = f"{name}.npz"
        if self.has_part(name):
            # Un-list first: a crash while replacing must not leave a listed part
            # whose file no longer matches its checksum.
            manifest = copy.deepcopy(self._manifest)
            del manifest["parts"][name]
            self._write_manifest(manifest)
        try:
            digest = atomic_save_npz(self._path / file_name, prepared, compress=compress)
        except OSError as exc:
            raise ModelError(f"cannot write {self._path / file_name}: {exc.strerror or exc}") from None
        manifest = copy.deepcopy(self._manifest)
        manifest["parts"][name] = {"file": file_name, "sha256": digest, "arrays": entries}
        self._write_manifest(manifest)

    # ---------------------------------------------------- staged changes
    # A change of several parts at once (extending a model) is staged: the new
    # files are written under names the manifest does not list
    # ('<part>.<tag>.npz'), then one manifest write lists them all. Until that
    # write the model is exactly as it was; a crash leaves only unlisted files.

    def stage_part(self, name: str, arrays: Mapping[str, np.ndarray], tag: str) -> Dict[str, Any]:
        """Write ``<name>.<tag>.npz`` without listing it; returns its manifest entry for :meth:`commit`."""
        if not isinstance(tag, str) or not _PART_NAME.fullmatch(tag):
            raise ValueError(f"invalid stage tag {tag!r} (letters, digits and _ only)")
        prepared, entries = _prepare_arrays(name, arrays)
        file_name = f"{name}.{tag}.npz"
        try:
            digest = atomic_save_npz(self._path / file_name, prepared)
        except OSError as exc:
            raise ModelError(f"cannot write {self._path / file_name}: {exc.strerror or exc}") from None
        return {"file": file_name, "sha256": digest, "arrays": entries}

    def staged_ok(self, name: str, entry: Any) -> bool:
        """True if ``entry`` (from :meth:`stage_part`) is well formed and its file is intact."""
        try:
            _check_part_entry("staged", name, entry)
            data = (self._path / entry["file"]).read_bytes()
        except (ModelError, OSError, TypeError):
            return False
        return sha256_bytes(data) == entry["sha256"]

    def read_staged(self, name: str, entry: Dict[str, Any]) -> Dict[str, np.ndarray]:
        """Arrays of a staged part, verified like :meth:`read_part`."""
        view = ModelStore._from_manifest(self._path, {"parts": {name: entry}})
        return view.read_part(name)

    def commit(self, parts: Mapping[str, Dict[str, Any]], **fields: Any) -> None:
        """List the staged ``parts`` ({name: entry}) and set ``fields`` in one atomic manifest write.

        Files of parts this replaces are removed afterwards (best effort).
        """
        bad = [k for k in fields if k in _READ_ONLY_KEYS]
        if bad:
            raise ValueError(f"cannot set {', '.join(map(repr, bad))}: managed by the model store")
        for name, entry in parts.items():
            if not self.staged_ok(name, entry):
                raise ModelError(f"model {self._path}: staged part {name!r} is missing or damaged")
        manifest = copy.deepcopy(self._manifest)
        old_parts = manifest.pop("parts")
        for key, value in fields.items():
            manifest[key] = to_plain(value, key)
        replaced = [old_parts[n]["file"] for n in parts if n in old_parts]
        new_parts = dict(old_parts)
        new_parts.update({n: copy.deepcopy(dict(e)) for n, e in parts.items()})
        manifest["parts"] = new_parts
        self._write_manifest(manifest)
        listed = {e["file"] for e in new_parts.values()}
        for file_name in replaced:
            if file_name not in listed:
                try:
                    (self._path / file_name).unlink()
                except OSError:
                    pass

    def read_part(self, name: str, expected: Optional[Expected] = None) -> Dict[str, np.ndarray]:
        """Load part ``name`` after verifying it.

        Checks that it is listed, its file exists, its sha256 matches, it loads
        with ``allow_pickle=False`` and its arrays have the names, shapes and
        dtypes the manifest recorded; then, if ``expected`` is given
        (``{array: (shape, dtype)}``, None in a shape = any size on that axis),
        that each expected array is present with that shape and dtype.
        Any failure raises ModelError.
        """
        where = f"model {self._path}"
        parts = self._manifest["parts"]
        if name not in parts:
            raise ModelError(f"{where} has no part {name!r} (not listed in {MANIFEST})")
        entry = parts[name]
        file_name = entry["file"]
        file_path = self._path / file_name
        corrupt = f"{where} is corrupt: {file_name}"

        try:
            with open(file_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise ModelError(f"{corrupt} is missing") from None
        except OSError as exc:
            raise ModelError(f"{where}: cannot read {file_name}: {exc.strerror or exc}") from None
        if sha256_bytes(data) != entry["sha256"]:
            raise ModelError(f"{corrupt} checksum mismatch (file changed or truncated)")

        arrays: Dict[str, np.ndarray] = {}
        try:
            loaded = np.load(io.BytesIO(data), allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with loaded as npz:
                for key in npz.files:
                    arrays[key] = npz[key]
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise ModelError(f"{corrupt} cannot be loaded ({_reason(exc)})") from None
        except Exception as exc:  # zlib.error, struct.error, MemoryError... from a damaged file
            raise ModelError(f"{corrupt} cannot be loaded ({type(exc).__name__}: {exc})") from None

        recorded = entry["arrays"]
        if set(arrays) != set(recorded):
            missing = sorted(set(recorded) - set(arrays))
            extra = sorted(set(arrays) - set(recorded))
            bits = []
            if missing:
                bits.append(f"lacks {', '.join(missing)}")
            if extra:
                bits.append(f"has unlisted {', '.join(extra)}")
            raise ModelError(f"{corrupt} does not match {MANIFEST}: it {' and '.join(bits)}")
        for key, arr in arrays.items():
            rec_shape = tuple(recorded[key]["shape"])
            rec_dtype = np.dtype(recorded[key]["dtype"])
            if arr.shape != rec_shape:
                raise ModelError(f"{corrupt} does not match {MANIFEST}: array {key!r} has shape "
                                 f"{_fmt_shape(arr.shape)}, {MANIFEST} says {_fmt_shape(rec_shape)}")
            if arr.dtype != rec_dtype:
                raise ModelError(f"{corrupt} does not match {MANIFEST}: array {key!r} has dtype "
                                 f"{_dtype_str(arr.dtype)}, {MANIFEST} says {recorded[key]['dtype']}")

        if expected:
            for key, (shape, dtype) in expected.items():
                bad = f"{where} is incompatible: {file_name}"
                if key not in arrays:
                    raise ModelError(f"{bad} has no array {key!r}")
                arr = arrays[key]
                shape = tuple(shape)
                if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
                    raise ModelError(f"{bad} array {key!r} has shape {_fmt_shape(arr.shape)}, "
                                     f"expected {_fmt_shape(shape)}")
                if arr.dtype != np.dtype(dtype):
                    raise ModelError(f"{bad} array {key!r} has dtype {_dtype_str(arr.dtype)}, "
                                     f"expected {np.dtype(dtype).name}")
        return arrays

    def __repr__(self) -> str:
        state = "complete" if self.complete else "incomplete"
        return f"ModelStore({str(self._path)!r}, {state}, {len(self._manifest['parts'])} parts)"


def _prepare_arrays(name: str, arrays: Mapping[str, np.ndarray]
                    ) -> Tuple[Dict[str, np.ndarray], Dict[str, Dict[str, Any]]]:
    """Check a part's name and arrays; returns them native-endian with their manifest entries."""
    if not isinstance(name, str) or not _PART_NAME.fullmatch(name):
        raise ValueError(f"invalid part name {name!r} (letters, digits and _ only)")
    if not isinstance(arrays, Mapping):
        raise TypeError(f"arrays must be a dict, not {type(arrays).__name__}")
    prepared: Dict[str, np.ndarray] = {}
    entries: Dict[str, Dict[str, Any]] = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not key or any(c in key for c in "/\\\0"):
            raise ValueError(f"part {name!r}: invalid array name {key!r}")
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise ValueError(f"part {name!r}: array {key!r} has object dtype; only plain arrays are stored")
        if arr.dtype.fields is not None or arr.dtype.kind == "V":
            raise ValueError(f"part {name!r}: array {key!r} has a structured/void dtype; not supported")
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        prepared[key] = arr
        entries[key] = {"shape": [int(s) for s in arr.shape], "dtype": _dtype_str(arr.dtype)}
    return prepared, entries


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "Object arrays cannot be loaded" in text:
        return "it holds pickled object arrays, which are never loaded"
    if "pickled data" in text:
        return "not an .npz archive; pickled data is never loaded"
    return text


# --------------------------------------------------------------------------- #

def open_complete(path: PathLike) -> ModelStore:
    """Open a model whose training finished; ModelError if it is missing, invalid or incomplete."""
    store = ModelStore.open(path)
    if not store.complete:
        raise ModelError(f"model {store.path} is incomplete (training was interrupted); "
                         f"resume it with vprsnn train --resume --out {store.path}")
    return store
