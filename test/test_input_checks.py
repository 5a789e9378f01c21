"""Input checks found by trying the CLI on other datasets (issue 10, Found 6).

Truncated or corrupt images are errors naming the file; images of different
sizes warn (or fail with --strict); hints name what can help; thumbnails for
debug views are made from the same reads and stored in the model.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from vprsnn_ros.errors import DataError, ModelError
from vprsnn_ros.io.dataset import ImageSizeWarning, check_correspondence, list_images, read_image, read_places
from vprsnn_ros.io.preprocess import preprocess_batch
from vprsnn_ros.io.sources import load_traverse
from vprsnn_ros.io.synthetic import write_route
from vprsnn_ros.io.thumbnails import THUMB_SIZE, make_thumbnail
from vprsnn_ros.model.network_io import load_thumbnails
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.snn.network import NetworkConfig
from vprsnn_ros.train.training import train_network

TIMEOUT = 180


def run_cli(args, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "vprsnn_ros.cli", *map(str, args)], cwd=str(cwd),
                          capture_output=True, text=True, timeout=TIMEOUT, env=env)


def photo(seed: int, shape=(240, 320)) -> np.ndarray:
    """A textured colour frame that compresses to a few tens of kB as JPEG."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8), (0, 0), 1.0)
    return cv2.add(base, rng.integers(0, 30, size=(*shape, 3), dtype=np.uint8))


def jpeg_folder(folder: Path, count: int = 6, shape=(240, 320)) -> Path:
    folder.mkdir(parents=True)
    for k in range(count):
        assert cv2.imwrite(str(folder / f"frame_{k:03d}.jpg"), photo(k, shape), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return folder


# --------------------------------------------------------------------------
# truncated and corrupt files
# --------------------------------------------------------------------------

def test_truncated_jpeg_in_a_folder_is_exit_2_naming_the_file(tmp_path, bad_input):
    folder = jpeg_folder(tmp_path / "ref")
    victim = folder / "frame_003.jpg"
    data = victim.read_bytes()
    assert len(data) > 4000
    victim.write_bytes(data[:2000])  # what the issue reproduced: the first 2,000 bytes
    # The decoder alone would accept it (with a warning on stderr and a mostly grey image).
    assert cv2.imread(str(victim), cv2.IMREAD_UNCHANGED) is not None
    out = tmp_path / "model"
    bad_input.watch(tmp_path)
    proc = run_cli(["train", "--reference", folder, "--out", out, "--neurons", "10",
                    "--places-per-module", "3", "--epochs", "1"], cwd=tmp_path)
    # One line: no decoder noise ("Premature end of JPEG file") on stderr either.
    bad_input(proc, str(victim), "truncated JPEG")


@pytest.mark.slow
def test_truncated_jpeg_query_is_exit_2_naming_the_file(tmp_path, bad_input):
    folder = jpeg_folder(tmp_path / "query", count=3)
    victim = folder / "frame_001.jpg"
    victim.write_bytes(victim.read_bytes()[:2000])
    # evaluate loads the model before the query: give it a real (tiny) one.
    model = tmp_path / "model"
    train_network(NetworkConfig(n_neurons=10, places_per_module=3, epochs=1),
                  [preprocess_batch([photo(k) for k in range(3)])], ["a", "b", "c"], model, workers=1)
    bad_input.watch(tmp_path)
    proc = run_cli(["evaluate", "--model", model, "--query", folder, "--report", tmp_path / "rep"],
                   cwd=tmp_path)
    bad_input(proc, str(victim), "truncated JPEG")


def test_jpeg_checks_accept_whole_files_and_trailing_bytes(tmp_path):
    folder = jpeg_folder(tmp_path / "ok", count=1)
    path = folder / "frame_000.jpg"
    whole = read_image(path)
    assert whole.shape == (240, 320, 3)
    # Some cameras append bytes after the end-of-image marker; the image is still whole.
    path.write_bytes(path.read_bytes() + b"\x00" * 16 + b"trailer")
    assert np.array_equal(read_image(path), whole)


def test_corrupt_and_truncated_png_are_errors_naming_the_file(tmp_path):
    path = tmp_path / "frame.png"
    assert cv2.imwrite(str(path), photo(1, (60, 80)))
    good = path.read_bytes()
    idat = good.index(b"IDAT")
    flipped = bytearray(good)
    flipped[idat + 40] ^= 0xFF
    for name, data, words in (("crc", bytes(flipped), "CRC"), ("cut", good[: len(good) - 30], "truncated PNG"),
                              ("no-iend", good[: good.index(b"IEND") - 4], "IEND")):
        bad = tmp_path / f"{name}.png"
        bad.write_bytes(data)
        with pytest.raises(DataError, match=words) as info:
            read_image(bad)
        assert str(bad) in str(info.value)


# --------------------------------------------------------------------------
# mixed sizes
# --------------------------------------------------------------------------

def test_mixed_sizes_warn_and_strict_makes_them_an_error(tmp_path):
    folder = jpeg_folder(tmp_path / "mixed", count=4)
    assert cv2.imwrite(str(folder / "frame_002.jpg"), photo(9, (120, 200)))
    with pytest.warns(ImageSizeWarning, match=r"320x240 in 3, 200x120 in 1; e\.g\. frame_002\.jpg"):
        trav = load_traverse(folder, (28, 28), 7)
    assert len(trav) == 4
    with pytest.raises(DataError, match="differ in size"):
        load_traverse(folder, (28, 28), 7, strict=True)
    # Same sizes: no warning at all.
    same = jpeg_folder(tmp_path / "same", count=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_traverse(same, (28, 28), 7, strict=True)


def test_strict_option_of_the_cli(tmp_path, bad_input):
    folder = jpeg_folder(tmp_path / "mixed", count=3)
    assert cv2.imwrite(str(folder / "frame_001.jpg"), photo(9, (120, 200)))
    out = tmp_path / "model"
    bad_input.watch(tmp_path)
    proc = run_cli(["train", "--reference", folder, "--out", out, "--strict", "--neurons", "10",
                    "--places-per-module", "3", "--epochs", "1"], cwd=tmp_path)
    bad_input(proc, "differ in size", "frame_001.jpg")


# --------------------------------------------------------------------------
# hints
# --------------------------------------------------------------------------

def test_parent_folder_hint_names_the_image_subfolders(tmp_path):
    ref, query = write_route(tmp_path / "dataset", 3, seed=0)
    parent = ref.parent
    assert not any(p.is_file() for p in parent.iterdir())
    with pytest.raises(DataError) as info:
        list_images(parent)
    message = str(info.value)
    assert f"no images in {parent}" in message
    assert f"{ref.name}/" in message and f"{query.name}/" in message, message


def test_empty_folder_without_subfolders_has_no_hint(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as info:
        list_images(tmp_path / "empty")
    assert "subfolder" not in str(info.value)


def test_count_mismatch_hint_suggests_limit_only_where_it_can_help():
    with pytest.raises(DataError) as fewer:
        check_correspondence(12, 8, "q")
    assert "--limit" not in str(fewer.value) and "--ground-truth" in str(fewer.value)
    with pytest.raises(DataError) as more:
        check_correspondence(8, 12, "q")
    assert "--limit 8" in str(more.value)


# --------------------------------------------------------------------------
# thumbnails
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_thumbnails_are_read_with_the_places_and_stored_checksummed(tmp_path):
    folder = jpeg_folder(tmp_path / "ref", count=3)
    pixels, thumbnails = read_places(sorted(folder.glob("*.jpg")))
    assert thumbnails.shape == (3, THUMB_SIZE[1], THUMB_SIZE[0]) and thumbnails.dtype == np.uint8
    assert np.array_equal(thumbnails[1], make_thumbnail(read_image(folder / "frame_001.jpg")))
    model = tmp_path / "model"
    train_network(NetworkConfig(n_neurons=10, places_per_module=3, epochs=1), [pixels], ["a", "b", "c"],
                  model, workers=1, thumbnails=thumbnails)
    assert np.array_equal(load_thumbnails(model), thumbnails)
    size = (model / "thumbnails.npz").stat().st_size
    print(f"\nthumbnails part: {size} bytes for 3 places")
    assert size < 3 * 4096
    # Checksummed like every part: a changed byte is a clear ModelError.
    data = bytearray((model / "thumbnails.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (model / "thumbnails.npz").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="thumbnails.npz checksum mismatch"):
        load_thumbnails(model)
    # Optional: a model without them gives None.
    plain = tmp_path / "plain"
    train_network(NetworkConfig(n_neurons=10, places_per_module=3, epochs=1), [pixels], ["a", "b", "c"],
                  plain, workers=1)
    assert load_thumbnails(plain) is None
    assert "thumbnails" not in ModelStore(plain).parts()


@pytest.mark.slow
def test_mixed_sizes_warning_is_one_plain_line_and_the_command_succeeds(tmp_path):
    query = jpeg_folder(tmp_path / "query", count=3)
    assert cv2.imwrite(str(query / "frame_002.jpg"), photo(9, (120, 200)))
    model = tmp_path / "model"
    train_network(NetworkConfig(n_neurons=10, places_per_module=3, epochs=1),
                  [preprocess_batch([photo(k) for k in range(3)])], ["a", "b", "c"], model, workers=1)
    proc = run_cli(["evaluate", "--model", model, "--query", query, "--report", tmp_path / "rep"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if line.startswith("vprsnn: warning:")]
    assert len(warned) == 1 and "200x120 in 1" in warned[0] and "--strict" in warned[0], proc.stderr


def test_bag_traverses_carry_thumbnails_too(tmp_path):
    from vprsnn_ros.io.bags import write_bag_from_folder

    folder = jpeg_folder(tmp_path / "frames", count=3)
    bag = write_bag_from_folder(folder, tmp_path / "bag", rate_hz=10.0)
    trav = load_traverse(bag, (28, 28), 7)
    expected = np.stack([make_thumbnail(read_image(p)) for p in sorted(folder.glob("*.jpg"))])
    assert trav.thumbnails is not None and trav.thumbnails.shape == expected.shape
    # The bag stores the decoded frames losslessly, so the thumbnails are the folder's.
    assert np.array_equal(trav.thumbnails, expected)
