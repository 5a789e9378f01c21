"""Fast preprocessing against a slow, obviously correct pure-NumPy reference."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vprsnn_ros.errors import ConfigError, DataError
from vprsnn_ros.io.preprocess import patch_normalise, preprocess, preprocess_batch, to_uint8
from vprsnn_ros.snn.coding import rates_hz


# --------------------------------------------------------------------------- reference
def ref_patch_normalise(gray: np.ndarray, patch: int) -> np.ndarray:
    """Per pixel: in-image window, np.mean / np.std (ddof=0), flat -> 0, clip."""
    h, w = gray.shape
    r = patch // 2
    values = gray.astype(np.float64)
    z = np.zeros((h, w), dtype=np.float64)
    for i in range(h):
        for j in range(w):
            window = values[max(i - r, 0) : i + r + 1, max(j - r, 0) : j + r + 1]
            std = np.std(window)
            if std > 0:
                z[i, j] = (values[i, j] - np.mean(window)) / std
    return np.clip(z, -1.0, 1.0)


def ref_to_uint8(z: np.ndarray) -> np.ndarray:
    out = np.zeros(z.shape, dtype=np.uint8)
    for index, value in np.ndenumerate(z):
        out[index] = int(np.floor(255.0 * (1.0 + value) / 2.0))
    return out


def ref_gray(image: np.ndarray, size=(28, 28)) -> np.ndarray:
    """Gray, then resize (this package's order; the reference code resizes first)."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        image = cv2.cvtColor(image, code)
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def reference_order_gray(image: np.ndarray, size=(28, 28)) -> np.ndarray:
    """The reference code's order: resize the colour frame, then convert to gray."""
    resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if resized.ndim == 3:
        code = cv2.COLOR_BGR2GRAY if resized.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        resized = cv2.cvtColor(resized, code)
    return resized


def assert_matches_reference(image: np.ndarray, size=(28, 28), patch: int = 7) -> None:
    """preprocess(image) == reference, up to floor() ties.

    z is compared to 1e-12. For u, the only allowed difference is 1 level at pixels
    where the reference's 255 (1 + z) / 2 lies within 1e-9 of an integer: there the
    exact z is a rational on a floor() step (e.g. z = -0.2 -> 102) and the reference's
    np.std is a few ulps off (101.99999999999982 -> 101), while the fast path's
    integer sums land on the step.
    """
    out = preprocess(image, size, patch)
    assert out.dtype == np.uint8
    assert out.shape == (size[1], size[0])
    gray = ref_gray(image, size)
    z_ref = ref_patch_normalise(gray, patch)
    assert_z_equal(patch_normalise(gray, patch), z_ref)
    u_ref = ref_to_uint8(z_ref)
    level = 255.0 * (1.0 + z_ref) / 2.0
    on_step = np.abs(level - np.round(level)) < 1e-9
    assert np.array_equal(out[~on_step], u_ref[~on_step])
    assert np.all(np.abs(out[on_step].astype(int) - u_ref[on_step]) <= 1)


def assert_z_equal(fast: np.ndarray, ref: np.ndarray) -> None:
    assert fast.dtype == np.float64
    assert fast.shape == ref.shape
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- patch_normalise
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (5, 4), (7, 7), (8, 13), (28, 28), (32, 64)])
@pytest.mark.parametrize("patch", [1, 3, 7, 9])
def test_patch_normalise_matches_reference_uint8(shape, patch):
    rng = np.random.default_rng(hash((shape, patch)) % 2**32)
    gray = rng.integers(0, 256, size=shape, dtype=np.uint8)
    assert_z_equal(patch_normalise(gray, patch), ref_patch_normalise(gray, patch))


@pytest.mark.parametrize("patch", [1, 3, 7, 9])
def test_patch_normalise_matches_reference_uint16(patch):
    rng = np.random.default_rng(patch)
    gray = rng.integers(0, 65536, size=(19, 23), dtype=np.uint16)
    gray[0, 0], gray[-1, -1] = 65535, 0
    assert_z_equal(patch_normalise(gray, patch), ref_patch_normalise(gray, patch))


def test_patch_one_is_all_zero():
    gray = np.random.default_rng(0).integers(0, 256, (6, 5), dtype=np.uint8)
    assert np.array_equal(patch_normalise(gray, 1), np.zeros((6, 5)))


def test_borders_and_corners_use_only_in_image_pixels():
    gray = np.arange(36, dtype=np.uint8).reshape(6, 6) * 7
    z = patch_normalise(gray, 7)
    # Corner (0, 0): window is rows 0..3, cols 0..3 only.
    window = gray[:4, :4].astype(np.float64)
    expected = (gray[0, 0] - window.mean()) / window.std()
    assert z[0, 0] == pytest.approx(max(expected, -1.0), abs=1e-12)
    # Bottom-right corner and an edge pixel against the reference.
    ref = ref_patch_normalise(gray, 7)
    for index in [(5, 5), (0, 5), (5, 0), (0, 3), (3, 0), (2, 2)]:
        assert z[index] == pytest.approx(ref[index], abs=1e-12)


@pytest.mark.parametrize("value", [0, 1, 127, 255])
def test_constant_image_is_flat(value):
    gray = np.full((28, 28), value, dtype=np.uint8)
    z = patch_normalise(gray, 7)
    assert np.array_equal(z, np.zeros_like(z))  # exactly 0, not 1e-9 noise
    assert np.all(preprocess(gray) == 127)


def test_constant_uint16_is_flat():
    gray = np.full((9, 11), 65535, dtype=np.uint16)
    assert np.array_equal(patch_normalise(gray, 9), np.zeros((9, 11)))


def test_half_flat_image():
    gray = np.zeros((20, 20), dtype=np.uint8)
    gray[:, 10:] = 200
    z = patch_normalise(gray, 7)
    assert_z_equal(z, ref_patch_normalise(gray, 7))
    # Windows wholly inside one half are flat -> exactly 0.
    assert np.all(z[:, :7] == 0.0) and np.all(z[:, 13:] == 0.0)
    # Windows straddling the edge are not flat.
    assert np.all(z[:, 9] < 0) and np.all(z[:, 10] > 0)


def test_patch_larger_than_image():
    gray = np.array([[10, 20], [30, 40]], dtype=np.uint8)
    z = patch_normalise(gray, 9)
    values = gray.astype(np.float64)
    expected = np.clip((values - values.mean()) / values.std(), -1, 1)
    np.testing.assert_allclose(z, expected, atol=1e-12)


# --------------------------------------------------------------------------- full pipeline
@pytest.mark.parametrize(
    "shape,size",
    [((32, 64), (28, 28)), ((28, 28), (28, 28)), ((5, 3), (28, 28)), ((1, 1), (28, 28)),
     ((100, 60), (16, 12)), ((40, 30), (1, 1)), ((3, 4), (5, 2))],
)
@pytest.mark.parametrize("patch", [1, 3, 7, 9])
def test_preprocess_matches_reference(shape, size, patch):
    rng = np.random.default_rng(sum(shape) * 31 + patch)
    image = rng.integers(0, 256, size=shape + (3,), dtype=np.uint8)
    assert_matches_reference(image, size, patch)


def test_preprocess_uint16():
    rng = np.random.default_rng(16)
    image = rng.integers(0, 65536, size=(40, 50, 3), dtype=np.uint16)
    image[0, 0] = 65535
    assert_matches_reference(image)
    gray = rng.integers(0, 65536, size=(40, 50), dtype=np.uint16)
    assert_matches_reference(gray, (20, 10), 3)


def test_colour_layouts_equal_converting_first():
    rng = np.random.default_rng(3)
    bgr = rng.integers(0, 256, size=(32, 64, 3), dtype=np.uint8)
    bgra = np.dstack([bgr, rng.integers(0, 256, size=(32, 64), dtype=np.uint8)])
    # The colour conversion happens before the resize, so compare with that order.
    gray_of_bgr = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), (28, 28),
                             interpolation=cv2.INTER_LINEAR)
    gray_of_bgra = cv2.resize(cv2.cvtColor(bgra, cv2.COLOR_BGRA2GRAY), (28, 28),
                              interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(preprocess(bgr), to_uint8(patch_normalise(gray_of_bgr)))
    assert np.array_equal(preprocess(bgra), to_uint8(patch_normalise(gray_of_bgra)))
    # Alpha is ignored: BGRA gives the same as its BGR part.
    assert np.array_equal(preprocess(bgra), preprocess(bgr))
    # Gray (H, W) and (H, W, 1) give the same; resizing gray is the identity here.
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert np.array_equal(preprocess(gray), preprocess(gray[:, :, None]))
    gray28 = gray[:28, :28]
    assert np.array_equal(preprocess(gray28), to_uint8(patch_normalise(gray28)))


def test_rgb_with_equal_channels_equals_gray():
    gray = np.random.default_rng(4).integers(0, 256, size=(32, 64), dtype=np.uint8)
    assert np.array_equal(preprocess(np.dstack([gray] * 3)), preprocess(gray))


@pytest.mark.parametrize("shape", [(480, 640), (300, 500), (31, 17)])
def test_colour_and_its_grayscale_version_give_equal_pixels(shape):
    """Issue 10: the same picture in colour and as grayscale (same weights) gives the same input."""
    rng = np.random.default_rng(shape[0])
    # A smooth colour picture with texture, like a photo (independent noise per channel would
    # be the easy case for either order).
    base = cv2.GaussianBlur(rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8), (0, 0), 2.0)
    colour = cv2.add(base, rng.integers(0, 40, size=(*shape, 3), dtype=np.uint8))
    grayscale = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    assert np.array_equal(preprocess(colour), preprocess(grayscale))
    assert np.array_equal(preprocess(cv2.cvtColor(colour, cv2.COLOR_BGR2BGRA)), preprocess(grayscale))
    # The reference's order (resize first) does not have this property: the check above can fail.
    old_colour = to_uint8(patch_normalise(reference_order_gray(colour)))
    old_gray = to_uint8(patch_normalise(reference_order_gray(grayscale)))
    assert not np.array_equal(old_colour, old_gray)


def test_equal_channel_frames_give_the_reference_order_pixels():
    """For R = G = B frames (Nordland) converting first changes nothing: identical to the reference order."""
    rng = np.random.default_rng(12)
    for shape in ((480, 640), (360, 640), (50, 70)):
        gray = cv2.GaussianBlur(rng.integers(0, 256, size=shape, dtype=np.uint8), (0, 0), 1.5)
        bgr = np.dstack([gray] * 3)
        assert np.array_equal(ref_gray(bgr), reference_order_gray(bgr))
        assert np.array_equal(preprocess(bgr), to_uint8(patch_normalise(reference_order_gray(bgr))))


def test_non_contiguous_input():
    image = np.random.default_rng(5).integers(0, 256, size=(64, 128, 3), dtype=np.uint8)
    view = image[::2, ::-2]
    assert np.array_equal(preprocess(view), preprocess(view.copy()))


def test_preprocess_batch():
    rng = np.random.default_rng(6)
    images = [rng.integers(0, 256, size=(32, 64, 3), dtype=np.uint8) for _ in range(4)]
    batch = preprocess_batch(iter(images), (14, 7), 3)
    assert batch.shape == (4, 98) and batch.dtype == np.uint8
    for row, image in zip(batch, images):
        assert np.array_equal(row, preprocess(image, (14, 7), 3).reshape(-1))
    assert preprocess_batch([], (14, 7), 3).shape == (0, 98)


def test_repeated_calls_give_the_same_frame_and_leave_the_input():
    """What the node relies on, frame after frame (how fast is bench/'s question)."""
    image = np.random.default_rng(7).integers(0, 256, size=(32, 64, 3), dtype=np.uint8)
    original = image.copy()
    first = preprocess(image)
    for _ in range(20):
        again = preprocess(image)
        assert np.array_equal(again, first) and again is not first
    assert np.array_equal(image, original)
    assert_matches_reference(image)


# --------------------------------------------------------------------------- 8 bits and rates
def test_floor_mapping_exact_values():
    assert to_uint8(np.array([-1.0, 0.0, 1.0])).tolist() == [0, 127, 255]
    assert to_uint8(np.array([-1.0, 0.0, 1.0])).dtype == np.uint8
    # floor, not round: 255 * (1 + z) / 2 = 254.9... -> 254
    assert to_uint8(np.array([0.999])).tolist() == [254]


def test_to_uint8_matches_reference():
    z = np.linspace(-1, 1, 2001)
    assert np.array_equal(to_uint8(z), ref_to_uint8(z))


def test_rates():
    u = np.array([0, 1, 127, 255], dtype=np.uint8)
    rates = rates_hz(u)
    assert rates.dtype == np.float32
    assert rates.tolist() == [0.0, 0.25, 31.75, 63.75]
    frame = np.random.default_rng(8).integers(0, 256, (32, 64), np.uint8)
    assert rates_hz(preprocess(frame)).max() <= 63.75


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "image,fragment",
    [
        (np.zeros((28, 28), dtype=np.float32), "dtype"),
        (np.zeros((28, 28), dtype=np.int16), "dtype"),
        (np.zeros((28, 28, 5), dtype=np.uint8), "channels"),
        (np.zeros((28, 28, 2), dtype=np.uint8), "channels"),
        (np.zeros((0, 0), dtype=np.uint8), "empty"),
        (np.zeros((0, 5, 3), dtype=np.uint8), "empty"),
        (np.zeros((28,), dtype=np.uint8), "2-D"),
        (np.zeros((2, 2, 2, 2), dtype=np.uint8), "2-D"),
    ],
)
def test_bad_images_raise_data_error(image, fragment):
    with pytest.raises(DataError, match=fragment):
        preprocess(image)


def test_not_an_array_raises_data_error():
    with pytest.raises(DataError):
        preprocess([[1, 2], [3, 4]])  # type: ignore[arg-type]


@pytest.mark.parametrize("patch", [0, 2, 8, -1, 3.0, True])
def test_bad_patch_raises_config_error(patch):
    image = np.zeros((28, 28), dtype=np.uint8)
    with pytest.raises(ConfigError, match="patch"):
        preprocess(image, patch=patch)
    with pytest.raises(ConfigError, match="patch"):
        patch_normalise(image, patch)


@pytest.mark.parametrize("size", [(0, 28), (28,), (28, -1), (2.5, 3), "ab"])
def test_bad_size_raises_config_error(size):
    with pytest.raises(ConfigError, match="size"):
        preprocess(np.zeros((28, 28), dtype=np.uint8), size)


def test_patch_normalise_rejects_non_integer_values():
    with pytest.raises(DataError):
        patch_normalise(np.full((4, 4), 0.5))
    with pytest.raises(DataError):
        patch_normalise(np.zeros((0, 3), dtype=np.uint8))
    # Floats holding integers are fine.
    gray = np.random.default_rng(9).integers(0, 256, (6, 6)).astype(np.float64)
    assert_z_equal(patch_normalise(gray, 3), ref_patch_normalise(gray, 3))


# --------------------------------------------------------------------------- real frame
def _real_frame(deps) -> Path:
    summer = deps.nordland("summer")
    named = summer / "images-00000.png"
    if named.is_file():
        return named
    # The released set starts at images-00010.png; use the first frame there is.
    frames = sorted(summer.glob("images-*.png"))
    assert frames, f"no Nordland frames under {summer}"
    return frames[0]


@pytest.mark.nordland
def test_real_nordland_frame(deps):
    path = _real_frame(deps)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"cannot read {path}"
    for patch in (3, 7):
        assert_matches_reference(image, patch=patch)
    # Nordland frames have R = G = B, so the conversion order makes no difference (README, Fidelity).
    if image.ndim == 3:
        assert np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 1], image[:, :, 2])
    assert np.array_equal(preprocess(image), to_uint8(patch_normalise(reference_order_gray(image))))


def test_exact_rational_z_lands_on_floor_step():
    # Centre window: n = 9, S1 = 609, S2 = 41409 -> z = (9*67 - 609) / sqrt(9*41409 - 609^2)
    # = -6 / 30 = -0.2 exactly, so u = floor(255 * 0.8 / 2) = 102 (np.std gives 101).
    gray = np.array([[74, 70, 68], [67, 67, 68], [61, 65, 69]], dtype=np.uint8)
    z = patch_normalise(gray, 3)
    assert z[1, 1] == -0.2
    assert to_uint8(z)[1, 1] == 102
