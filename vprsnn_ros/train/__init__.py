"""Training: modules by STDP, hyperactivity, calibration of T, epochs and K; growing a map."""

from vprsnn_ros.train.from_sources import train_from_sources
from vprsnn_ros.train.options import TrainOptions
from vprsnn_ros.train.training import train_network

__all__ = ["TrainOptions", "train_from_sources", "train_network"]
