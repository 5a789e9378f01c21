"""Place lists and image reading for training and evaluation from folders.

A place list is the sorted image files of one folder (one image = one place),
optionally reordered/filtered by a list CSV and with excluded names dropped.
Reference place ``i`` and query place ``i`` are the same place unless a
ground-truth CSV (``query,reference``) says otherwise.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from vprsnn_ros.errors import DataError
from vprsnn_ros.preprocess import _check_patch, _check_size, preprocess

__all__ = [
    "IMAGE_EXTENSIONS",
    "PlaceList",
    "list_images",
    "read_image",
    "load_place_list",
    "read_exclude_csv",
    "read_ground_truth_csv",
    "load_images",
    "check_correspondence",
]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp"}

_TRUE = {"1", "true", "yes", "y"}
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
        raise DataError(f"image folder does not exist: {folder}")
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
        raise DataError(f"no images in {folder}")
    return sorted(images, key=lambda entry: entry.name)


def read_image(path: str | Path) -> np.ndarray:
    """``cv2.imread(path, IMREAD_UNCHANGED)``: BGR / BGRA / gray, uint8 or uint16."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"cannot read image {path}: no such file")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
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


def load_images(
    paths: Sequence[Path],
    size: tuple[int, int] = (28, 28),
    patch: int = 7,
    progress: bool = False,
    desc: str = "images",
) -> np.ndarray:
    """Read and preprocess images; returns uint8 (N, height*width), one row per image."""
    width, height = _check_size(size)
    _check_patch(patch)
    out = np.empty((len(paths), width * height), dtype=np.uint8)
    for row, path in enumerate(tqdm(paths, desc=desc, unit="img", disable=not progress)):
        image = read_image(path)
        try:
            out[row] = preprocess(image, (width, height), patch).reshape(-1)
        except DataError as error:
            raise DataError(f"image {path}: {error}") from None
    return out


def check_correspondence(n_reference: int, n_query: int) -> None:
    """Without ground truth, query ``i`` must be reference ``i``: counts must agree."""
    if n_reference != n_query:
        raise DataError(
            f"reference has {n_reference} places but query has {n_query}; "
            "give --ground-truth CSV (columns query,reference) to match them by file name"
        )
