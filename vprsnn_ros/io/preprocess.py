"""Image preprocessing of the Modular SNN reference code.

Pipeline for one camera frame ``I``:

1. ``Y = gray(I)`` with OpenCV ``COLOR_BGR2GRAY`` / ``COLOR_BGRA2GRAY`` weights
   (``0.299 R + 0.587 G + 0.114 B``); pixels stay integers (uint8 or uint16).
2. ``G = resize(Y, size)``, bilinear (``cv2.INTER_LINEAR``), whole frame, no crop.

   The reference code resizes first and converts second. Converting first
   makes a colour frame and its grayscale version (converted with the same
   weights) give identical pixels; for frames with R = G = B (Nordland) both
   orders give identical pixels, so published results are unchanged (README,
   Fidelity; ``test/test_preprocess.py``).
3. Patch normalisation over the ``p x p`` window ``W(i, j)`` centred on each pixel,
   keeping only its in-image pixels (``n = |W(i, j)|``, no padding)::

       mean = S1 / n,   std = sqrt(n S2 - S1^2) / n   (ddof = 0)
       S1 = sum_W G,    S2 = sum_W G^2
       z = (G - mean) / std = (n G - S1) / sqrt(n S2 - S1^2),   z = 0 if std = 0
       z <- clip(z, -1, 1)

4. ``u = floor(255 (1 + z) / 2)`` as uint8 (z = -1, 0, 1 -> 0, 127, 255).

Step 5, the input firing rates ``r = u / 4`` Hz, is the network's input coding:
:func:`vprsnn_ros.snn.coding.rates_hz`.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from vprsnn_ros.errors import ConfigError, DataError

__all__ = ["preprocess", "patch_normalise", "to_uint8", "preprocess_batch"]

_ACCEPTED_DTYPES = (np.uint8, np.uint16)
_INT64_MAX = np.iinfo(np.int64).max


def _check_patch(patch: int) -> None:
    if isinstance(patch, bool) or not isinstance(patch, (int, np.integer)):
        raise ConfigError(f"patch size must be an odd integer >= 1, got {patch!r}")
    if patch < 1 or patch % 2 == 0:
        raise ConfigError(f"patch size must be an odd integer >= 1, got {patch}")


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = size
    except (TypeError, ValueError):
        raise ConfigError(f"image size must be (width, height), got {size!r}") from None
    for value in (width, height):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(
                f"image size must be two positive integers (width, height), got {size!r}"
            )
    return int(width), int(height)


def _check_image(image: np.ndarray) -> np.ndarray:
    """Validate a camera frame; return it with a (H, W, 1) channel axis dropped."""
    if not isinstance(image, np.ndarray):
        raise DataError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype not in _ACCEPTED_DTYPES:
        raise DataError(f"image dtype must be uint8 or uint16, got {image.dtype}")
    if image.ndim not in (2, 3):
        raise DataError(
            f"image must be 2-D (gray) or 3-D (H, W, C), got shape {image.shape}"
        )
    if image.size == 0:
        raise DataError(f"image is empty (shape {image.shape})")
    if image.ndim == 3:
        channels = image.shape[2]
        if channels not in (1, 3, 4):
            raise DataError(
                f"image must have 1, 3 (BGR) or 4 (BGRA) channels, got {channels}"
            )
        if channels == 1:
            image = image[:, :, 0]
    # cv2 rejects some strided views (e.g. negative strides); a copy is cheap here.
    return np.ascontiguousarray(image)


def patch_normalise(gray: np.ndarray, patch: int = 7) -> np.ndarray:
    """Patch-normalise an integer-valued gray image.

    For each pixel, with ``W`` the in-image part of its ``patch x patch`` window,
    ``n = |W|``, ``S1 = sum_W x``, ``S2 = sum_W x^2``::

        z = (n x - S1) / sqrt(n S2 - S1^2)     (= (x - mean) / std, ddof = 0)
        z = 0 where n S2 - S1^2 = 0 (flat window),  then clip to [-1, 1].

    ``S1``, ``S2``, ``n x - S1`` and ``n S2 - S1^2`` are exact integers (int64 integral
    images), so a flat window gives a variance of exactly 0.

    Returns float64 ``z`` of the same shape as ``gray``.
    """
    _check_patch(patch)
    gray = np.asarray(gray)
    if gray.ndim != 2:
        raise DataError(f"patch_normalise needs a 2-D gray image, got shape {gray.shape}")
    if gray.size == 0:
        raise DataError(f"patch_normalise got an empty image (shape {gray.shape})")
    if gray.dtype.kind == "f":
        # Exactness below relies on integer pixels; refuse silently-rounded input.
        if not np.all(np.isfinite(gray)) or not np.array_equal(gray, np.round(gray)):
            raise DataError("patch_normalise needs integer pixel values, got non-integer floats")
    elif gray.dtype.kind not in "iub":
        raise DataError(f"patch_normalise needs integer pixels, got dtype {gray.dtype}")

    x = gray.astype(np.int64)
    h, w = x.shape
    r = patch // 2

    # Worst case of n*S2 (and of the whole-image sum of squares) must fit int64;
    # otherwise fall back to Python ints, which are exact but slow (huge patches only).
    peak = int(np.abs(x).max())
    n_max = min(patch, h) * min(patch, w)
    exact_int64 = max(n_max * n_max, h * w) * peak * peak <= _INT64_MAX
    work = x if exact_int64 else x.astype(object)

    # Integral images with a leading zero row/column: sum over [r0, r1) x [c0, c1).
    integral1 = np.zeros((h + 1, w + 1), dtype=work.dtype)
    integral2 = np.zeros((h + 1, w + 1), dtype=work.dtype)
    integral1[1:, 1:] = work.cumsum(0).cumsum(1)
    integral2[1:, 1:] = (work * work).cumsum(0).cumsum(1)

    rows = np.arange(h)
    cols = np.arange(w)
    r0, r1 = np.maximum(rows - r, 0), np.minimum(rows + r + 1, h)
    c0, c1 = np.maximum(cols - r, 0), np.minimum(cols + r + 1, w)

    def window_sum(integral: np.ndarray) -> np.ndarray:
        return (
            integral[np.ix_(r1, c1)]
            - integral[np.ix_(r0, c1)]
            - integral[np.ix_(r1, c0)]
            + integral[np.ix_(r0, c0)]
        )

    s1 = window_sum(integral1)
    s2 = window_sum(integral2)
    n = np.outer(r1 - r0, c1 - c0).astype(work.dtype)

    numerator = (n * work - s1).astype(np.float64)
    var_n2 = (n * s2 - s1 * s1).astype(np.float64)  # = n^2 var, exactly 0 iff flat

    z = np.zeros((h, w), dtype=np.float64)
    np.divide(numerator, np.sqrt(var_n2), out=z, where=var_n2 > 0)
    np.clip(z, -1.0, 1.0, out=z)
    return z


def to_uint8(z: np.ndarray) -> np.ndarray:
    """Map ``z`` in [-1, 1] to 8 bits: ``u = floor(255 (1 + z) / 2)`` (uint8)."""
    z = np.clip(np.asarray(z, dtype=np.float64), -1.0, 1.0)
    return np.floor(255.0 * (1.0 + z) / 2.0).astype(np.uint8)


def preprocess(
    image: np.ndarray, size: tuple[int, int] = (28, 28), patch: int = 7
) -> np.ndarray:
    """Gray -> resize -> patch-normalise -> 8 bits.

    ``size`` is (width, height); returns uint8 of shape (height, width).
    Accepts uint8/uint16 gray (H, W), (H, W, 1), BGR (H, W, 3) or BGRA (H, W, 4).
    """
    width, height = _check_size(size)
    _check_patch(patch)
    image = _check_image(image)
    # Gray first (a deviation from the reference's order, see the module docstring):
    # then a colour frame and its grayscale version give the same pixels.
    if image.ndim == 3:
        code = cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        image = cv2.cvtColor(image, code)
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return to_uint8(patch_normalise(resized, patch))


def preprocess_batch(
    images: Iterable[np.ndarray], size: tuple[int, int] = (28, 28), patch: int = 7
) -> np.ndarray:
    """Preprocess many frames; returns uint8 (N, height*width), rows flattened row-major."""
    width, height = _check_size(size)
    rows = [preprocess(image, (width, height), patch).reshape(-1) for image in images]
    if not rows:
        return np.zeros((0, width * height), dtype=np.uint8)
    return np.stack(rows)
