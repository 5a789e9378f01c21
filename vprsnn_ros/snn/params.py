"""Constants of the Modular SNN (spec sections 2-3) and the packed form the kernels take.

All times are in milliseconds, voltages in millivolts, rates in hertz. Every
value is the one in ``shared/docs/MODULAR_SNN.md``; the few the spec does not
state (marked "Diehl & Cook") are taken from the Diehl & Cook (2015) network
that the reference code builds on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from vprsnn_ros.errors import ConfigError


@dataclass(frozen=True)
class NetworkParams:
    """Physiological and learning constants of one module."""

    # Excitatory neurons.
    v_rest_e: float = -65.0
    v_reset_e: float = -65.0
    v_thresh_e: float = -52.0
    offset: float = 20.0
    tau_e: float = 100.0
    tau_ge: float = 1.0
    tau_gi: float = 0.5  # modular code; Diehl & Cook use 2.0
    e_inh_e: float = -100.0
    refrac_e: float = 5.0
    timer_rate: float = 0.1  # timer grows 0.1 per ms -> 50 ms effective refractory
    theta_init: float = 20.0
    theta_plus: float = 0.05
    tau_theta: float = 1e7
    # Inhibitory neurons.
    v_rest_i: float = -60.0
    v_reset_i: float = -45.0
    v_thresh_i: float = -40.0
    tau_i: float = 10.0
    tau_ge_i: float = 1.0  # Diehl & Cook
    e_inh_i: float = -85.0
    refrac_i: float = 2.0
    # Initial membrane potential is v_rest - 40 (spec section 2).
    v_init_offset: float = -40.0
    # Synapses.
    w_ei: float = 10.4
    w_ie: float = 17.0
    delay_max: float = 10.0
    # STDP (spec section 3; the pre-spike term ADDS, as in the reference code).
    tau_pre: float = 20.0
    tau_post1: float = 20.0
    tau_post2: float = 40.0
    nu_pre: float = 1e-4
    nu_post: float = 1e-2
    w_max: float = 1.0
    weight_sum: float = 78.0
    # Learning-rate schedule (issue 7, hypothesis 3b; not in the published method):
    # nu_pre and nu_post fall linearly from their value in the first epoch to this
    # fraction of it in the last. 1.0 = constant rates, as published.
    nu_final_fraction: float = 1.0
    # Issue 16, item 4 (profile switches, profiles.py; not in the published method).
    # Growing inhibition: w_ie starts at this fraction of itself in the first epoch and
    # grows linearly to w_ie in the last (queries run with w_ie). 1.0 = constant, as published.
    w_ie_start_fraction: float = 1.0
    # Weight-dependent (soft-bound) STDP: each weight update is multiplied by
    # 1 - soft_bound * w / w_max (1.0: the update vanishes as w reaches w_max). 0.0 = the
    # published additive update, clipped to [0, w_max].
    soft_bound: float = 0.0
    # Input coding and timing.
    rate_scale: float = 0.25  # rate = u / 4 Hz
    present_ms: float = 350.0
    rest_ms: float = 150.0
    initial_rest_ms: float = 500.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkParams":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown network parameters: {sorted(unknown)}")
        return cls(**{k: float(v) for k, v in d.items()})


# Index of each entry in the packed float64 vector handed to the kernels.
# Numba kernels take plain arrays, so the dataclass is flattened once here.
P_DT = 0
(P_V_REST_E, P_V_RESET_E, P_V_THRESH_E, P_OFFSET, P_TAU_E, P_TAU_GE, P_TAU_GI, P_E_INH_E,
 P_REFRAC_E, P_TIMER_RATE, P_THETA_PLUS, P_TAU_THETA,
 P_V_REST_I, P_V_RESET_I, P_V_THRESH_I, P_TAU_I, P_TAU_GE_I, P_E_INH_I, P_REFRAC_I,
 P_W_EI, P_W_IE, P_TAU_PRE, P_TAU_POST1, P_TAU_POST2, P_NU_PRE, P_NU_POST, P_W_MAX) = range(1, 28)
# Not a constant of the model but the input coding: 1.0 = regular spike trains, 0.0 = Poisson.
P_REGULAR = 28
# Soft-bound STDP strength (params.soft_bound; 0.0 = the published hard bounds).
P_SOFT_BOUND = 29
N_PACKED = 30


def pack(params: NetworkParams, dt: float, regular: bool = False) -> np.ndarray:
    """Flatten ``params``, the time step and the input coding into the vector the kernels read."""
    if not (0.0 < dt <= 1.0):
        raise ConfigError(f"dt must be in (0, 1] ms, got {dt}")
    p = params
    out = np.empty(N_PACKED, dtype=np.float64)
    out[P_DT] = dt
    for index, value in (
        (P_V_REST_E, p.v_rest_e), (P_V_RESET_E, p.v_reset_e), (P_V_THRESH_E, p.v_thresh_e),
        (P_OFFSET, p.offset), (P_TAU_E, p.tau_e), (P_TAU_GE, p.tau_ge), (P_TAU_GI, p.tau_gi),
        (P_E_INH_E, p.e_inh_e), (P_REFRAC_E, p.refrac_e), (P_TIMER_RATE, p.timer_rate),
        (P_THETA_PLUS, p.theta_plus), (P_TAU_THETA, p.tau_theta),
        (P_V_REST_I, p.v_rest_i), (P_V_RESET_I, p.v_reset_i), (P_V_THRESH_I, p.v_thresh_i),
        (P_TAU_I, p.tau_i), (P_TAU_GE_I, p.tau_ge_i), (P_E_INH_I, p.e_inh_i),
        (P_REFRAC_I, p.refrac_i), (P_W_EI, p.w_ei), (P_W_IE, p.w_ie),
        (P_TAU_PRE, p.tau_pre), (P_TAU_POST1, p.tau_post1), (P_TAU_POST2, p.tau_post2),
        (P_NU_PRE, p.nu_pre), (P_NU_POST, p.nu_post), (P_W_MAX, p.w_max),
    ):
        out[index] = value
    out[P_REGULAR] = 1.0 if regular else 0.0
    out[P_SOFT_BOUND] = p.soft_bound
    return out


def steps(ms: float, dt: float) -> int:
    """Number of time steps covering ``ms`` milliseconds."""
    return int(round(ms / dt))


def delay_slots(delays_ms: np.ndarray, dt: float) -> np.ndarray:
    """Quantise synaptic delays to whole time steps (rounded, as Brian2 does)."""
    return np.rint(delays_ms / dt).astype(np.int16)
