"""Input coding: preprocessed pixels -> input firing rates (spec section 1, step 5).

    r_i = u_i * rate_scale  Hz,   rate_scale = 1/4 (u = 255 gives 63.75 Hz)

``rate_scale`` is :attr:`vprsnn_ros.snn.params.NetworkParams.rate_scale`, saved
in every ``model.yaml``. Multiplying by 0.25 in float32 is exact for pixels up
to 255, so it gives the same bits as the published division by 4.
"""

from __future__ import annotations

import numpy as np

DEFAULT_RATE_SCALE = 0.25


def rates_hz(u: np.ndarray, rate_scale: float = DEFAULT_RATE_SCALE) -> np.ndarray:
    """Input firing rates ``u * rate_scale`` Hz (float32) of preprocessed pixels ``u``."""
    return np.asarray(u).astype(np.float32) * np.float32(rate_scale)
