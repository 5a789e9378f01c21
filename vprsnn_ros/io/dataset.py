"""Place lists and image reading for training and evaluation from folders.

A place list is the sorted image files of one folder (one image = one place),
optionally reordered/filtered by a list CSV and with excluded names dropped.
Reference place ``i`` and query place ``i`` are the same place unless a
ground-truth CSV (``query,reference``) says otherwise.
"""

from __future__ import annotations

import csv
import struct
import warnings
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vprsnn_ros.errors import DataError
from vprsnn_ros.io.preprocess import _check_patch, _check_size, preprocess
from vprsnn_ros.io.thumbnails import THUMB_SIZE, make_thumbnail

__all__ = [
    "IMAGE_EXTENSIONS",
    "PlaceList",
    "list_images",
    "read_image",
    "load_place_list",
    "read_exclude_csv",
    "read_ground_truth_csv",
    "load_images",
    "read_places",
    "check_sizes",
    "check_correspondence",
    "ImageSizeWarning",
]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp"}

_TRUE = {"1", "true", "yes", "y"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageSizeWarning(UserWarning):
    """The images of one traverse differ in size (each is stretched to the network's input)."""
_FALSE = {"0", "false", "no", "n", ""}


@dataclass(frozen=True)
class PlaceList:
    """Places in order: ``names[i]`` is the file name of ``paths[i]``."""

    names: list[str]
    paths: list[Path]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.paths):
            raise DataError(
                f"place list has {len(self.names)} names but {len(self.paths)} paths"
            )

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, indices: Iterable[int]) -> PlaceList:
        """The places at ``indices``, in that order."""
        picked = [int(i) for i in indices]
        try:
            return PlaceList([self.names[i] for i in picked], [self.paths[i] for i in picked])
        except IndexError:
            raise DataError(
                f"place index out of range for a list of {len(self)} places: {picked}"
            ) from None


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by file name (plain string order).

    Hidden files and files without an image extension are ignored.
    """
    folder = Path(folder)
    if not folder.exists():
        # A bag path lands here when the bag is missing: name both kinds of source.
        kind = "bag" if folder.suffix.lower() in (".mcap", ".db3", ".bag") else "image folder"
        raise DataError(f"{kind} does not exist: {folder}")
    if not folder.is_dir():
        raise DataError(f"not a folder: {folder}")
    images = [
        entry
        for entry in folder.iterdir()
        if not entry.name.startswith(".")
        and entry.suffix.lower() in IMAGE_EXTENSIONS
        and entry.is_file()
    ]
    if not images:
        raise DataError(f"no images in {folder}{_subfolder_hint(folder)}")
    return sorted(images, key=lambda entry: entry.name)


def _subfolder_hint(folder: Path) -> str:
    """'; its subfolders a/, b/ hold images: ...' when a dataset's parent folder was given."""
    with_images = sorted(
        entry.name for entry in folder.iterdir()
        if entry.is_dir() and not entry.name.startswith(".")
        and any(f.suffix.lower() in IMAGE_EXTENSIONS for f in entry.iterdir() if f.is_file()))
    if not with_images:
        return ""
    shown = ", ".join(f"{name}/" for name in with_images[:6]) + (", ..." if len(with_images) > 6 else "")
    return (f"; its subfolders {shown} hold images: give one of them "
            f"(e.g. {folder / with_images[0]})")


def _damage(data: bytes) -> str | None:
    """Why a JPEG or PNG file is truncated or corrupt, or None when its structure is whole.

    Decoders accept a truncated JPEG with only a warning on stderr and return a
    partly grey image, so the structure is checked before decoding: a JPEG must
    end its last scan with the EOI marker; every PNG chunk must be complete with
    a matching CRC, up to IEND.
    """
    if data[:2] == b"\xff\xd8":
        # Entropy-coded data escapes 0xFF, so an EOI after the last SOS can only be the real end.
        if data.rfind(b"\xff\xd9") <= data.rfind(b"\xff\xda"):
            return "truncated JPEG (no end-of-image marker after the last scan)"
        return None
    if data[:8] == _PNG_SIGNATURE:
        pos = 8
        while pos + 12 <= len(data):
            length, kind = struct.unpack(">I4s", data[pos:pos + 8])
            end = pos + 12 + length
            if end > len(data):
                return f"truncated PNG (chunk {kind.decode('latin-1')!r} is cut off)"
            (crc,) = struct.unpack(">I", data[end - 4:end])
            if zlib.crc32(data[pos + 4:end - 4]) != crc:
                return f"corrupt PNG (CRC mismatch in chunk {kind.decode('latin-1')!r})"
            if kind == b"IEND":
                return None
            pos = end
        return "truncated PNG (no IEND chunk)"
    return None


def read_image(path: str | Path) -> np.ndarray:
    """An image file as ``cv2.IMREAD_UNCHANGED`` decodes it: BGR / BGRA / gray, uint8 or uint16.

    A truncated or corrupt file is a DataError naming it (JPEG and PNG are
    checked structurally, since decoders silently accept truncated JPEGs).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"cannot read image {path}: no such file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read image {path}: {error.strerror or error}") from None
    damage = _damage(data)
    if damage:
        raise DataError(f"cannot read image {path}: {damage}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if image is None or image.size == 0:
        raise DataError(
            f"cannot read image {path}: corrupt, truncated or not a supported image format"
        )
    return image


def _open_csv(path: str | Path) -> tuple[Path, list[list[str]]]:
    """All rows of a CSV file, cells stripped, blank lines dropped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV file does not exist: {path}")
    try:
        # utf-8-sig: spreadsheets often prepend a BOM that would corrupt the first header.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [[cell.strip() for cell in row] for row in csv.reader(handle)]
    except (csv.Error, UnicodeDecodeError) as error:
        raise DataError(f"malformed CSV {path}: {error}") from None
    rows = [row for row in rows if any(row)]
    if not rows:
        raise DataError(f"CSV file is empty: {path}")
    return path, rows


def _header_table(
    path: str | Path, required: Sequence[str]
) -> tuple[Path, list[str], list[list[str]]]:
    """Header and data rows of a CSV that must have the ``required`` columns."""
    path, rows = _open_csv(path)
    header = [name.lower() for name in rows[0]]
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(
            f"CSV {path} has no column {', '.join(repr(m) for m in missing)} "
            f"(header: {','.join(rows[0])})"
        )
    if len(set(header)) != len(header):
        raise DataError(f"CSV {path} has duplicate column names: {','.join(rows[0])}")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(
                f"malformed CSV {path}: row {line} has {len(row)} fields, header has {len(header)}"
            )
    return path, header, rows[1:]


def _read_list_csv(path: str | Path) -> tuple[Path, list[str]]:
    """File names of a list CSV: column ``filename``, else the first column.

    Without a ``filename`` header, the first row is a header only if its first cell
    is not an image file name.
    """
    path, rows = _open_csv(path)
    header = [name.lower() for name in rows[0]]
    if "filename" in header:
        column = header.index("filename")
        body = rows[1:]
    else:
        column = 0
        first_is_image = Path(rows[0][0]).suffix.lower() in IMAGE_EXTENSIONS
        body = rows if first_is_image else rows[1:]
    names = []
    for line, row in enumerate(body, start=len(rows) - len(body) + 1):
        if column >= len(row) or not row[column]:
            raise DataError(f"list CSV {path}: row {line} has no file name")
        names.append(row[column])
    if not names:
        raise DataError(f"list CSV {path} lists no files")
    return path, names


def load_place_list(
    source: str | Path,
    list_csv: str | Path | None = None,
    exclude: set[str] | None = None,
) -> PlaceList:
    """Places of folder ``source``: its sorted images, or the files ``list_csv`` lists
    in that order; names in ``exclude`` are dropped."""
    source = Path(source)
    images = {path.name: path for path in list_images(source)}
    if list_csv is None:
        names = list(images)  # already sorted by name
    else:
        csv_path, names = _read_list_csv(list_csv)
        seen: set[str] = set()
        for name in names:
            if name not in images:
                raise DataError(f"{name} (listed in {csv_path}) is not an image in {source}")
            # Duplicates would make name -> place lookups (ground truth) ambiguous.
            if name in seen:
                raise DataError(f"{name} is listed twice in {csv_path}")
            seen.add(name)
    if exclude:
        names = [name for name in names if name not in exclude]
    if not names:
        raise DataError(f"no places left in {source} after excluding {len(exclude or ())} names")
    return PlaceList(names, [images[name] for name in names])


def read_exclude_csv(path: str | Path) -> set[str]:
    """File names to exclude, from a CSV with a ``filename`` column.

    Only ``filename`` (and an optional ``place`` id column): every listed file is
    excluded. Other columns are flags: a file is excluded when ANY flag is truthy
    (1/true/yes/y, case-insensitive); falsy is 0/false/no/n/empty.
    """
    path, header, rows = _header_table(path, ["filename"])
    name_column = header.index("filename")
    flags = [i for i, name in enumerate(header) if name not in ("filename", "place")]
    excluded: set[str] = set()
    for line, row in enumerate(rows, start=2):
        name = row[name_column]
        if not name:
            raise DataError(f"exclude CSV {path}: row {line} has no file name")
        if not flags:
            excluded.add(name)
            continue
        for column in flags:
            value = row[column].lower()
            if value not in _TRUE and value not in _FALSE:
                raise DataError(
                    f"exclude CSV {path}: row {line} column {header[column]!r} has "
                    f"{row[column]!r}, expected 1/0, true/false, yes/no or y/n"
                )
        if any(row[column].lower() in _TRUE for column in flags):
            excluded.add(name)
    return excluded


def read_ground_truth_csv(
    path: str | Path, query_names: list[str], reference_names: list[str]
) -> np.ndarray:
    """Reference index matching each query (int64, -1 = no match) from a CSV with
    columns ``query,reference`` (file names). An empty ``reference`` means no match."""
    path, header, rows = _header_table(path, ["query", "reference"])
    query_column, reference_column = header.index("query"), header.index("reference")
    query_index = {name: i for i, name in enumerate(query_names)}
    reference_index = {name: i for i, name in enumerate(reference_names)}
    matches = np.full(len(query_names), -1, dtype=np.int64)
    assigned = np.zeros(len(query_names), dtype=bool)
    for line, row in enumerate(rows, start=2):
        query, reference = row[query_column], row[reference_column]
        if query not in query_index:
            raise DataError(f"ground truth {path} row {line}: unknown query {query!r}")
        if reference and reference not in reference_index:
            raise DataError(f"ground truth {path} row {line}: unknown reference {reference!r}")
        i = query_index[query]
        j = reference_index[reference] if reference else -1
        if assigned[i] and matches[i] != j:
            raise DataError(f"ground truth {path} row {line}: query {query!r} given twice")
        matches[i], assigned[i] = j, True
    return matches


def check_sizes(shapes: Sequence[tuple[int, ...]], names: Sequence[str], source: str | Path,
                strict: bool = False) -> None:
    """Warn (ImageSizeWarning) or, with ``strict``, raise when frames of one traverse differ in size.

    Every frame is stretched to the network's input size, so frames of other
    sizes or aspect ratios are distorted differently from the rest.
    """
    sizes = Counter((int(shape[1]), int(shape[0])) for shape in shapes)
    if len(sizes) <= 1:
        return
    common, _ = sizes.most_common(1)[0]
    odd = next(name for name, shape in zip(names, shapes) if (shape[1], shape[0]) != common)
    listing = ", ".join(f"{w}x{h} in {n}" for (w, h), n in sizes.most_common(4))
    more = f" and {len(sizes) - 4} more sizes" if len(sizes) > 4 else ""
    message = (f"images in {source} differ in size ({listing}{more}; e.g. {odd}); each is stretched "
               f"to the network's input size")
    if strict:
        raise DataError(message)
    warnings.warn(message + " (--strict makes this an error)", ImageSizeWarning, stacklevel=2)


def read_places(
    paths: Sequence[Path],
    size: tuple[int, int] = (28, 28),
    patch: int = 7,
    *,
    source: str | Path = "",
    strict: bool = False,
    progress: bool = False,
    desc: str = "images",
) -> tuple[np.ndarray, np.ndarray]:
    """Read and preprocess images, checking their sizes agree (see :func:`check_sizes`).

    Returns the preprocessed pixels, uint8 (N, height*width), and the
    thumbnails for debug views, uint8 (N, 48, 64) (:mod:`vprsnn_ros.eval.views`).
    """
    width, height = _check_size(size)
    _check_patch(patch)
    out = np.empty((len(paths), width * height), dtype=np.uint8)
    thumbnails = np.empty((len(paths), THUMB_SIZE[1], THUMB_SIZE[0]), dtype=np.uint8)
    shapes = []
    for row, path in enumerate(tqdm(paths, desc=desc, unit="img", disable=not progress)):
        image = read_image(path)
        shapes.append(image.shape)
        try:
            out[row] = preprocess(image, (width, height), patch).reshape(-1)
            thumbnails[row] = make_thumbnail(image)
        except DataError as error:
            raise DataError(f"image {path}: {error}") from None
    check_sizes(shapes, [Path(p).name for p in paths], source or (Path(paths[0]).parent if paths else ""),
                strict)
    return out, thumbnails


def load_images(
    paths: Sequence[Path],
    size: tuple[int, int] = (28, 28),
    patch: int = 7,
    progress: bool = False,
    desc: str = "images",
    strict: bool = False,
) -> np.ndarray:
    """Read and preprocess images; returns uint8 (N, height*width), one row per image."""
    return read_places(paths, size, patch, strict=strict, progress=progress, desc=desc)[0]


def check_correspondence(n_reference: int, n_query: int, query: str | Path = "") -> None:
    """Without ground truth, query ``i`` must be reference ``i``: counts must agree.

    The hint names only what can help: place options (--list/--exclude/--every/
    --limit) can only drop query places, so they help when the query has more.
    """
    if n_reference == n_query:
        return
    where = f"{query} has" if query else "query has"
    if n_query > n_reference:
        hint = (f"give the place options the model was trained with (--list/--exclude/--every/--limit; "
                f"--limit {n_reference} if the model holds the first {n_reference} places), "
                "or --ground-truth CSV (columns query,reference) to match them by file name")
    else:
        hint = ("give --ground-truth CSV (columns query,reference) to match a subset by file name: "
                "without it a query must show every place of the model, in order")
    raise DataError(f"reference has {n_reference} places but {where} {n_query}; {hint}")
