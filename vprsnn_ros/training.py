"""Kept so that ``from vprsnn_ros.training import train_network`` (the README's API before
the package had subpackages) still works; new code imports :mod:`vprsnn_ros.train`."""

from vprsnn_ros.train.training import train_network

__all__ = ["train_network"]
