"""Loading a model directory as a list of networks (one, or an ensemble of seeds).

A single network is a directory with ``model.yaml``. An ensemble (spec section
7) is a directory with ``ensemble.yaml`` listing member directories, each a
complete single-network model trained with another seed on the same places.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from vprsnn_ros.atomic import atomic_write_text
from vprsnn_ros.errors import ModelError
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.model.store import MANIFEST
from vprsnn_ros.snn.network import ModularSNN

ENSEMBLE_MANIFEST = "ensemble.yaml"
ENSEMBLE_FORMAT = 1


def write_ensemble_manifest(path: str | Path, members: list[str]) -> None:
    atomic_write_text(Path(path) / ENSEMBLE_MANIFEST, yaml.safe_dump(
        {"format_version": ENSEMBLE_FORMAT, "members": members}, sort_keys=False))


def member_dirs(path: str | Path) -> list[Path]:
    """Member model directories of ``path`` (itself, for a single network)."""
    path = Path(path)
    if (path / MANIFEST).exists():
        return [path]
    manifest = path / ENSEMBLE_MANIFEST
    if not manifest.exists():
        raise ModelError(f"no model at {path} ({MANIFEST} or {ENSEMBLE_MANIFEST} not found)")
    try:
        data = yaml.safe_load(manifest.read_text())
        members = data["members"]
        if data.get("format_version") != ENSEMBLE_FORMAT or not members:
            raise ValueError("unsupported format or no members")
        return [path / str(m) for m in members]
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model {path} has an invalid {ENSEMBLE_MANIFEST}: {exc}") from None


def load_model(path: str | Path) -> list[ModularSNN]:
    """Load every member; they must cover the same places with the same input size."""
    members = [load_network(d) for d in member_dirs(path)]
    first = members[0]
    for other in members[1:]:
        if other.n_places != first.n_places or other.config.image_size != first.config.image_size:
            raise ModelError(f"ensemble {path}: members disagree on places or image size")
        if other.n_calibration_modules != first.n_calibration_modules or not all(
                np.array_equal(np.sort(np.concatenate(a.regions)), np.sort(np.concatenate(b.regions)))
                for a, b in [(first, other)]):
            raise ModelError(f"ensemble {path}: members disagree on their split")
    return members
