"""Model directories: the manifest and checksummed parts, networks and ensembles on disk."""

from vprsnn_ros.model.ensemble import load_model, member_dirs
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.model.store import ModelStore

__all__ = ["ModelStore", "load_model", "load_network", "member_dirs"]
