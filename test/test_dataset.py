"""Place lists, CSV readers and image loading from folders."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from vprsnn_ros.errors import DataError
from vprsnn_ros.io.dataset import (
    IMAGE_EXTENSIONS,
    PlaceList,
    check_correspondence,
    list_images,
    load_images,
    load_place_list,
    read_exclude_csv,
    read_ground_truth_csv,
    read_image,
)
from vprsnn_ros.io.preprocess import preprocess


def write_image(path: Path, seed: int = 0, shape=(32, 64, 3), dtype=np.uint8) -> np.ndarray:
    high = 256 if dtype == np.uint8 else 65536
    image = np.random.default_rng(seed).integers(0, high, size=shape).astype(dtype)
    assert cv2.imwrite(str(path), image)
    return image


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Five PNG places plus files that are not images."""
    places = tmp_path / "places"
    places.mkdir()
    for i in (3, 1, 10, 2, 0):
        write_image(places / f"img{i}.png", seed=i)
    (places / "notes.txt").write_text("not an image")
    (places / "list.csv").write_text("filename\nimg1.png\n")
    write_image(places / ".hidden.png", seed=99)
    (places / "sub.png").mkdir()  # a folder with an image name is not an image
    return places


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- list_images
def test_list_images_sorted_and_filtered(folder):
    names = [path.name for path in list_images(folder)]
    # Plain name order: img10 sorts before img2.
    assert names == ["img0.png", "img1.png", "img10.png", "img2.png", "img3.png"]
    assert all(path.parent == folder for path in list_images(str(folder)))


def test_list_images_extensions_case_insensitive(tmp_path):
    write_image(tmp_path / "a.PNG")
    write_image(tmp_path / "b.JpEg")
    write_image(tmp_path / "c.tif")
    assert [p.name for p in list_images(tmp_path)] == ["a.PNG", "b.JpEg", "c.tif"]
    assert ".webp" in IMAGE_EXTENSIONS and ".pgm" in IMAGE_EXTENSIONS


def test_list_images_empty_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=re.escape(f"no images in {tmp_path}")):
        list_images(tmp_path)


def test_list_images_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        list_images(tmp_path / "nope")


def test_list_images_not_a_folder(tmp_path):
    file = write_csv(tmp_path / "x.txt", "x")
    with pytest.raises(DataError, match="not a folder"):
        list_images(file)


# --------------------------------------------------------------------------- read_image
def test_read_image_returns_what_cv2_gives(tmp_path):
    bgr = write_image(tmp_path / "bgr.png")
    assert np.array_equal(read_image(tmp_path / "bgr.png"), bgr)
    gray16 = write_image(tmp_path / "g16.png", shape=(5, 7), dtype=np.uint16)
    out = read_image(str(tmp_path / "g16.png"))
    assert out.dtype == np.uint16 and np.array_equal(out, gray16)
    bgra = write_image(tmp_path / "bgra.png", shape=(4, 4, 4))
    assert read_image(tmp_path / "bgra.png").shape == bgra.shape


def test_read_image_corrupt_png(tmp_path):
    path = tmp_path / "corrupt.png"
    path.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(DataError, match=r"cannot read image .*corrupt\.png"):
        read_image(path)


def test_read_image_truncated_png(tmp_path):
    good = tmp_path / "good.png"
    write_image(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(DataError, match=r"cannot read image .*truncated\.png"):
        read_image(truncated)


def test_read_image_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"cannot read image .*missing\.png"):
        read_image(tmp_path / "missing.png")


# --------------------------------------------------------------------------- PlaceList
def test_place_list_subset_and_len(folder):
    places = load_place_list(folder)
    assert len(places) == 5
    sub = places.subset([4, 0])
    assert isinstance(sub, PlaceList)
    assert sub.names == ["img3.png", "img0.png"]
    assert sub.paths == [folder / "img3.png", folder / "img0.png"]
    assert places.subset(np.array([1])).names == ["img1.png"]
    with pytest.raises(DataError, match="out of range"):
        places.subset([5])


def test_place_list_is_frozen(folder):
    places = load_place_list(folder)
    with pytest.raises(AttributeError):
        places.names = []  # type: ignore[misc]


# --------------------------------------------------------------------------- load_place_list
def test_load_place_list_default_order(folder):
    places = load_place_list(folder)
    assert places.names == ["img0.png", "img1.png", "img10.png", "img2.png", "img3.png"]
    assert places.paths == [folder / name for name in places.names]


def test_list_csv_with_filename_header(folder, tmp_path):
    text = "place,filename\n0,img3.png\n1,img0.png\n2,img10.png\n"
    listing = write_csv(tmp_path / "list.csv", text)
    assert load_place_list(folder, listing).names == ["img3.png", "img0.png", "img10.png"]


def test_list_csv_first_column_without_header(folder, tmp_path):
    listing = write_csv(tmp_path / "list.csv", "img2.png,x\nimg1.png,y\n\n")
    assert load_place_list(folder, listing).names == ["img2.png", "img1.png"]
    other_header = write_csv(tmp_path / "list2.csv", "name\nimg2.png\nimg1.png\n")
    assert load_place_list(folder, other_header).names == ["img2.png", "img1.png"]


def test_list_csv_missing_entry(folder, tmp_path):
    listing = write_csv(tmp_path / "list.csv", "filename\nimg1.png\nimg7.png\n")
    with pytest.raises(DataError, match="img7.png"):
        load_place_list(folder, listing)


def test_list_csv_duplicate_entry(folder, tmp_path):
    listing = write_csv(tmp_path / "list.csv", "filename\nimg1.png\nimg1.png\n")
    with pytest.raises(DataError, match="twice"):
        load_place_list(folder, listing)


def test_list_csv_hidden_or_non_image_entry_is_missing(folder, tmp_path):
    listing = write_csv(tmp_path / "list.csv", "filename\nnotes.txt\n")
    with pytest.raises(DataError, match="notes.txt"):
        load_place_list(folder, listing)


def test_exclude_names(folder, tmp_path):
    places = load_place_list(folder, exclude={"img0.png", "img10.png", "unrelated.png"})
    assert places.names == ["img1.png", "img2.png", "img3.png"]
    listing = write_csv(tmp_path / "list.csv", "filename\nimg3.png\nimg0.png\n")
    assert load_place_list(folder, listing, exclude={"img0.png"}).names == ["img3.png"]


def test_everything_excluded(folder):
    names = {f"img{i}.png" for i in (0, 1, 2, 3, 10)}
    with pytest.raises(DataError, match="no places left"):
        load_place_list(folder, exclude=names)


# --------------------------------------------------------------------------- read_exclude_csv
def test_exclude_csv_filename_only(tmp_path):
    path = write_csv(tmp_path / "ex.csv", "filename\na.png\nb.png\n")
    assert read_exclude_csv(path) == {"a.png", "b.png"}


def test_exclude_csv_place_and_filename_only(tmp_path):
    path = write_csv(tmp_path / "ex.csv", "place,filename\n0,a.png\n1,b.png\n")
    assert read_exclude_csv(path) == {"a.png", "b.png"}


def test_exclude_csv_flag_columns(tmp_path):
    path = write_csv(
        tmp_path / "ex.csv",
        "place,filename,dark_summer,dark_winter\n"
        "1,a.png,1,0\n"   # place=1 must not count as a flag
        "1,b.png,0,0\n"
        "2,c.png,0,TRUE\n"
        "3,d.png,no,Yes\n"
        "4,e.png,n,\n"
        "5,f.png,y,false\n",
    )
    assert read_exclude_csv(path) == {"a.png", "c.png", "d.png", "f.png"}


def test_exclude_csv_bom_and_spaces(tmp_path):
    path = tmp_path / "ex.csv"
    path.write_bytes("\ufefffilename, dark\r\na.png, 1\r\nb.png, 0\r\n".encode("utf-8"))
    assert read_exclude_csv(path) == {"a.png"}


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("name,dark\na.png,1\n", "no column 'filename'"),
        ("filename,dark\na.png,1,2\n", "malformed"),
        ("filename,dark\na.png\n", "malformed"),
        ("filename,dark\na.png,maybe\n", "maybe"),
        ("", "empty"),
    ],
)
def test_exclude_csv_malformed(tmp_path, text, fragment):
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(DataError, match=fragment):
        read_exclude_csv(path)


def test_exclude_csv_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.csv"):
        read_exclude_csv(tmp_path / "nope.csv")


@pytest.mark.nordland
def test_exclude_csv_real_nordland(deps):
    places_csv = deps.nordland("places.csv")
    excluded = read_exclude_csv(places_csv)
    assert len(excluded) == 225
    assert all(name.startswith("images-") and name.endswith(".png") for name in excluded)


# --------------------------------------------------------------------------- ground truth
def test_ground_truth_csv(tmp_path):
    path = write_csv(
        tmp_path / "gt.csv",
        "query,reference\nq0.png,r2.png\nq2.png,r0.png\nq3.png,\nq2.png,r0.png\n",
    )
    matches = read_ground_truth_csv(path, ["q0.png", "q1.png", "q2.png", "q3.png"],
                                    ["r0.png", "r1.png", "r2.png"])
    assert matches.dtype == np.int64
    assert matches.tolist() == [2, -1, 0, -1]


def test_ground_truth_column_order_free(tmp_path):
    path = write_csv(tmp_path / "gt.csv", "reference,query\nr1.png,q0.png\n")
    assert read_ground_truth_csv(path, ["q0.png"], ["r0.png", "r1.png"]).tolist() == [1]


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("query,reference\nqX.png,r0.png\n", "unknown query 'qX.png'"),
        ("query,reference\nq0.png,rX.png\n", "unknown reference 'rX.png'"),
        ("query,ref\nq0.png,r0.png\n", "no column 'reference'"),
        ("query,reference\nq0.png,r0.png\nq0.png,r1.png\n", "given twice"),
    ],
)
def test_ground_truth_errors(tmp_path, text, fragment):
    path = write_csv(tmp_path / "gt.csv", text)
    with pytest.raises(DataError, match=fragment):
        read_ground_truth_csv(path, ["q0.png"], ["r0.png", "r1.png"])


# --------------------------------------------------------------------------- correspondence
def test_check_correspondence():
    check_correspondence(5, 5)
    message = "reference has 5 places but query has 4; give --ground-truth"
    with pytest.raises(DataError, match=message):
        check_correspondence(5, 4)


# --------------------------------------------------------------------------- load_images
def test_load_images(folder):
    places = load_place_list(folder)
    data = load_images(places.paths)
    assert data.shape == (5, 784) and data.dtype == np.uint8
    first = preprocess(cv2.imread(str(places.paths[0]), cv2.IMREAD_UNCHANGED))
    assert np.array_equal(data[0], first.reshape(-1))
    small = load_images(places.paths[:2], size=(8, 4), patch=3, progress=True, desc="test")
    assert small.shape == (2, 32) and small.dtype == np.uint8
    assert load_images([]).shape == (0, 784)


def test_load_images_mixed_formats(tmp_path):
    write_image(tmp_path / "a.png", shape=(30, 40))
    write_image(tmp_path / "b.png", shape=(30, 40, 4))
    write_image(tmp_path / "c.png", shape=(30, 40), dtype=np.uint16)
    assert load_images(list_images(tmp_path), size=(10, 5)).shape == (3, 50)


def test_load_images_bad_file_named(folder):
    bad = folder / "img5.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="img5.png"):
        load_images(list_images(folder))
