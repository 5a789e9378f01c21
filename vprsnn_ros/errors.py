"""Exceptions with one clear, user-facing message each.

The CLI turns any of these into a single error line and a non-zero exit; nodes
log them and keep running (or exit at start-up).
"""


class VprsnnError(Exception):
    """Base class of every error this package raises on purpose."""


class DataError(VprsnnError):
    """Input images, folders, lists or bags that cannot be used."""


class ModelError(VprsnnError):
    """A model directory that is missing, corrupt, tampered with or incompatible."""


class ConfigError(VprsnnError):
    """Parameters or options out of range or inconsistent."""


class ClusterError(VprsnnError):
    """The Dask cluster (scheduler or client connection) was lost while work ran on it."""
