"""The model manifest, ``model.yaml``: its keys, plain-YAML values, reading, validation and diffs.

:func:`to_plain` turns the caller's metadata into plain YAML types;
:func:`_load_manifest` reads and validates a model's manifest (and
:func:`_check_part_entry` each part entry in it), raising
:class:`~vprsnn_ros.errors.ModelError` with one message naming the directory
and what is wrong; :func:`_dump_yaml` writes it back; :func:`_diff_paths` says
where two configs differ.  The directory itself (parts, staging, atomic
writes) is :class:`vprsnn_ros.model.store.ModelStore`.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Mapping

import numpy as np
import yaml

from vprsnn_ros import __version__
from vprsnn_ros.errors import ModelError

__all__ = ["FORMAT_VERSION", "MANIFEST", "to_plain"]

FORMAT_VERSION = 1
MANIFEST = "model.yaml"

# Keys the store manages itself; callers cannot set them through meta.
_STORE_KEYS = ("format_version", "package_version", "created", "complete", "parts")
_REQUIRED_KEYS = _STORE_KEYS
_READ_ONLY_KEYS = ("format_version", "package_version", "created", "parts")

_PART_NAME = re.compile(r"[A-Za-z0-9_]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Files of parts written by a staged change (see ModelStore.stage_part): '<part>.<tag>.npz'.
_STAGED_FILE = re.compile(r"[A-Za-z0-9_]+\.[A-Za-z0-9_]+\.npz")


# --------------------------------------------------------------------------- #
# plain YAML values
# --------------------------------------------------------------------------- #

def to_plain(obj: Any, _where: str = "value") -> Any:
    """Return ``obj`` as plain YAML types (dict/list/str/int/float/bool/None).

    numpy scalars become Python scalars, tuples become lists, subclasses of
    str/int/float become the base type. Dict keys must be str or int. Anything
    else (arrays, paths, objects, complex numbers...) raises TypeError naming
    where it was found.
    """
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if isinstance(obj, np.generic):
        value = obj.item()
        if isinstance(value, np.generic) or not (value is None or isinstance(value, (bool, int, float, str))):
            raise TypeError(f"{_where}: cannot store numpy {obj.dtype} scalar in {MANIFEST} "
                            "(plain dict/list/str/int/float/bool/None only)")
        return to_plain(value, _where)
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, Mapping):
        out: Dict[Any, Any] = {}
        for key, value in obj.items():
            if isinstance(key, np.integer) or (isinstance(key, int) and not isinstance(key, (bool, np.bool_))):
                plain_key: Any = int(key)
            elif isinstance(key, str):
                plain_key = str(key)
            else:
                raise TypeError(f"{_where}: dict key {key!r} ({type(key).__name__}) cannot be stored in "
                                f"{MANIFEST} (keys must be str or int)")
            out[plain_key] = to_plain(value, f"{_where}[{key!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, f"{_where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{_where}: cannot store a {type(obj).__name__} in {MANIFEST} "
                    "(plain dict/list/str/int/float/bool/None only)")


def _dump_yaml(data: Mapping[str, Any]) -> str:
    # default_flow_style=None: lists/dicts of scalars inline ("shape: [3, 4]"),
    # nested structures as blocks -- compact and easy to read.
    return yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=None,
                          allow_unicode=True, width=100)


def _same_yaml(a: Any, b: Any) -> bool:
    """Equality as stored (robust to key order and NaN)."""
    return yaml.safe_dump(a, sort_keys=True) == yaml.safe_dump(b, sort_keys=True)


def _diff_paths(a: Any, b: Any, prefix: str = "") -> List[str]:
    """Dotted paths where ``a`` (stored) and ``b`` (given) differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: List[str] = []
        for key in list(a) + [k for k in b if k not in a]:
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in a:
                out.append(f"{path} (not in the stored config)")
            elif key not in b:
                out.append(f"{path} (missing from the given config)")
            else:
                out.extend(_diff_paths(a[key], b[key], path))
        return out
    if _same_yaml(a, b):
        return []
    return [f"{prefix or 'config'}: stored {_short(a)}, given {_short(b)}"]


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _dtype_str(dtype: np.dtype) -> str:
    """Readable, round-trippable dtype spelling: 'float32', 'int16', 'bool', '<U12'."""
    if dtype.kind in "biufcmM":
        return dtype.name
    return dtype.str


# --------------------------------------------------------------------------- #
# manifest validation
# --------------------------------------------------------------------------- #

def _load_manifest(path: Path) -> Dict[str, Any]:
    manifest_path = path / MANIFEST
    if not path.is_dir() or not manifest_path.is_file():
        raise ModelError(f"no model at {path} ({MANIFEST} not found)")
    try:
        raw = manifest_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model {path}: cannot read {MANIFEST}: {exc.strerror or exc}") from None
    bad = f"model {path} is corrupt: {MANIFEST}"
    try:
        manifest = yaml.safe_load(raw)
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{bad} is not valid YAML ({first})") from None
    except RecursionError:
        raise ModelError(f"{bad} is not valid YAML (nested too deeply)") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"{bad} does not hold a mapping (found {type(manifest).__name__})")

    version = manifest.get("format_version")
    if "format_version" in manifest and (type(version) is not int or version != FORMAT_VERSION):
        if type(version) is int and version > FORMAT_VERSION:
            hint = "written by a newer vprsnn_ros; upgrade the package"
        else:
            hint = "retrain it with this version"
        raise ModelError(f"model {path} has format version {version!r}; this vprsnn_ros {__version__} "
                         f"reads format version {FORMAT_VERSION} ({hint})")
    missing = [k for k in _REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ModelError(f"{bad} lacks required key(s): {', '.join(missing)}")
    if not isinstance(manifest["complete"], bool):
        raise ModelError(f"{bad}: 'complete' must be true or false, not {manifest['complete']!r}")
    parts = manifest["parts"]
    if parts is None:
        parts = manifest["parts"] = {}
    if not isinstance(parts, dict):
        raise ModelError(f"{bad}: 'parts' must be a mapping")
    for name, entry in parts.items():
        _check_part_entry(bad, name, entry)
    return manifest


def _check_part_entry(bad: str, name: Any, entry: Any) -> None:
    if not isinstance(name, str) or not _PART_NAME.fullmatch(name):
        raise ModelError(f"{bad}: invalid part name {name!r}")
    where = f"{bad}: part {name!r}"
    if not isinstance(entry, dict):
        raise ModelError(f"{where} is not a mapping")
    for key in ("file", "sha256", "arrays"):
        if key not in entry:
            raise ModelError(f"{where} lacks '{key}'")
    if entry["file"] != f"{name}.npz" and not (
            isinstance(entry["file"], str) and _STAGED_FILE.fullmatch(entry["file"])
            and entry["file"].startswith(f"{name}.")):
        # also keeps a tampered manifest from pointing outside the model directory
        raise ModelError(f"{where} has file {entry['file']!r}, expected '{name}.npz' "
                         f"(or '{name}.<tag>.npz')")
    if not isinstance(entry["sha256"], str) or not _SHA256.fullmatch(entry["sha256"]):
        raise ModelError(f"{where} has an invalid sha256 {_short(entry['sha256'])}")
    arrays = entry["arrays"]
    if arrays is None:
        arrays = entry["arrays"] = {}
    if not isinstance(arrays, dict):
        raise ModelError(f"{where}: 'arrays' must be a mapping")
    for key, spec in arrays.items():
        if not isinstance(key, str) or not isinstance(spec, dict) or "shape" not in spec or "dtype" not in spec:
            raise ModelError(f"{where}: array {key!r} needs 'shape' and 'dtype'")
        shape = spec["shape"]
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise ModelError(f"{where}: array {key!r} has invalid shape {_short(shape)}")
        try:
            dtype = np.dtype(spec["dtype"]) if isinstance(spec["dtype"], str) else None
        except (TypeError, ValueError):
            dtype = None
        if dtype is None or dtype.hasobject or dtype.kind == "V":
            raise ModelError(f"{where}: array {key!r} has invalid dtype {_short(spec['dtype'])}")
