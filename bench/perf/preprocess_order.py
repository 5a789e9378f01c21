"""Does converting to gray before resizing change the network's input on a dataset?

    python -m bench.perf.preprocess_order ../shared/data/nordland/summer ../shared/data/nordland/winter
    python -m bench.perf.preprocess_order          # the same: both Nordland traverses ($VPRSNN_NORDLAND)

For every image: are its channels equal (R = G = B), and are the preprocessed
pixels of this package (gray, then resize) identical to the reference code's
order (resize, then gray)? README, Fidelity, quotes the result for Nordland.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from bench.common import NORDLAND
from vprsnn_ros.io.dataset import list_images, read_image
from vprsnn_ros.io.preprocess import patch_normalise, preprocess, to_uint8


def reference_order(image: np.ndarray, size=(28, 28), patch: int = 7) -> np.ndarray:
    resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if resized.ndim == 3:
        code = cv2.COLOR_BGR2GRAY if resized.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
        resized = cv2.cvtColor(resized, code)
    return to_uint8(patch_normalise(resized, patch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", default=[str(NORDLAND / "summer"), str(NORDLAND / "winter")],
                        help="image folders (default: the Nordland summer and winter traverses)")
    args = parser.parse_args()
    total = equal_channels = identical = 0
    for folder in args.folders:
        for path in list_images(folder):
            image = read_image(path)
            total += 1
            equal_channels += image.ndim == 2 or all(
                np.array_equal(image[..., 0], image[..., c]) for c in range(1, min(image.shape[2], 3)))
            identical += np.array_equal(preprocess(image), reference_order(image))
    print(f"{total} images: {equal_channels} with R = G = B, "
          f"{identical} with identical preprocessed pixels in both orders")


if __name__ == "__main__":
    main()
