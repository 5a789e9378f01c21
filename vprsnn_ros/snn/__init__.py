"""The SNN core: the network, its kernels, readouts, pre-selection, sequences and confidence.

Plain NumPy and Numba; no ROS, no files (model storage is :mod:`vprsnn_ros.model`).
"""

from vprsnn_ros.snn.confidence import ConfidenceRule
from vprsnn_ros.snn.inference import Scorer
from vprsnn_ros.snn.network import ModularSNN, NetworkConfig
from vprsnn_ros.snn.profiles import FAITHFUL, TUNED, Profile, get_profile

__all__ = ["ConfidenceRule", "FAITHFUL", "ModularSNN", "NetworkConfig", "Profile", "Scorer", "TUNED",
           "get_profile"]
