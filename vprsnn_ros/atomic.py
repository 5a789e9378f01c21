"""Atomic file writes and checksums.

Every file the package writes (model parts, manifests, reports, plots) goes
through :func:`atomic_write_bytes`: the data is written to a temporary file in
the destination directory, flushed and fsync'ed, then moved over the
destination with :func:`os.replace`.  A reader therefore sees either the old
file or the complete new one, never a partial file; on any failure the
temporary file is removed and the old file is left untouched.

Temporary files are named ``.<name>.<random>.tmp`` (see :func:`is_temp_name`);
one can only be left behind if the process is killed between creating and
renaming it.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping, Union

import numpy as np

__all__ = [
    "TEMP_SUFFIX",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_save_npz",
    "npz_bytes",
    "sha256_bytes",
    "sha256_file",
    "is_temp_name",
]

PathLike = Union[str, "os.PathLike[str]"]

TEMP_SUFFIX = ".tmp"

# Fixed zip member timestamp: the same arrays always give the same bytes, so
# the same sha256 (np.savez stamps members with the current time).
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_CHUNK = 1 << 20


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def is_temp_name(name: str) -> bool:
    """True if ``name`` (a bare file name) looks like one of our temp files."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (best effort; not supported everywhere)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + os.replace).

    The parent directory must exist. An existing file keeps its permission
    bits; a new one gets the usual ``0o666 & ~umask``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write_bytes needs bytes, not {type(data).__name__}")
    path = Path(path)
    directory = path.parent
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_UMASK
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (encoded with ``encoding``)."""
    if not isinstance(text, str):
        raise TypeError(f"atomic_write_text needs str, not {type(text).__name__}")
    atomic_write_bytes(path, text.encode(encoding))


def npz_bytes(arrays: Mapping[str, np.ndarray], compress: bool = False) -> bytes:
    """Serialize ``arrays`` into .npz bytes (the format of np.savez / np.savez_compressed).

    Readable with ``np.load(..., allow_pickle=False)``. Object arrays (and
    structured dtypes holding objects) raise ValueError: we never store pickles.
    Output is deterministic for the same arrays.
    """
    prepared = []
    for name, value in arrays.items():
        if not isinstance(name, str) or not name or any(c in name for c in "/\\\0"):
            raise ValueError(f"invalid array name {name!r} (need a non-empty str without / or \\)")
        arr = np.asanyarray(value)
        if type(arr) is not np.ndarray:
            arr = np.asarray(arr)
        if arr.dtype.hasobject:
            raise ValueError(f"array {name!r} has object dtype; only plain numeric/string arrays are stored")
        prepared.append((name, arr))
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression, allowZip64=True) as zf:
        for name, arr in prepared:
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE_TIME)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arr, allow_pickle=False)
    return buf.getvalue()


def sha256_bytes(data: bytes) -> str:
    """sha256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def atomic_save_npz(path: PathLike, arrays: Mapping[str, np.ndarray], compress: bool = False) -> str:
    """Save ``arrays`` as an .npz file atomically; return the sha256 hex digest of the bytes written.

    Object-dtype arrays raise ValueError (nothing is written).
    """
    data = npz_bytes(arrays, compress=compress)
    digest = sha256_bytes(data)
    atomic_write_bytes(path, data)
    return digest


def sha256_file(path: PathLike) -> str:
    """sha256 hex digest of a file's content, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
