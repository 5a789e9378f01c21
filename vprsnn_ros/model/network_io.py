"""Mapping between a :class:`ModularSNN` and its model directory.

Parts: ``network`` (delays, regions), ``module_NNNN`` (one per module: weights,
theta, assignments), ``hyperactivity`` (reference activity of every neuron),
``reference_stats`` (sums for the zscore readout, readout.py) and
``reference_pixels`` (the preprocessed reference images, ``pixels`` (n_places,
n_inputs) uint8, for the SAD baseline). The last two are optional: models
trained before them load without. The manifest carries the config, the places
(names, optional poses), the profile and the calibration results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from vprsnn_ros.errors import ModelError, VprsnnError
from vprsnn_ros.model.store import ModelStore, open_complete
from vprsnn_ros.snn.network import ModularSNN, NetworkConfig
from vprsnn_ros.snn.profiles import Profile
from vprsnn_ros.snn.readout import ReferenceStats


def network_meta(config: NetworkConfig, place_names: Sequence[str],
                 place_poses: np.ndarray | None = None, pose_frame: str | None = None) -> dict:
    places: dict = {"count": len(place_names), "names": list(place_names)}
    if place_poses is not None:
        places["poses"] = np.asarray(place_poses, dtype=float).tolist()
        places["pose_frame"] = pose_frame or "map"
    return {"config": config.to_dict(), "places": places}


def save_network_part(store: ModelStore, delays: np.ndarray, regions: Sequence[np.ndarray],
                      n_calibration_modules: int) -> None:
    lengths = np.array([len(r) for r in regions], np.int64)
    store.write_part("network", {
        "delays": delays,
        "region_places": np.concatenate(regions).astype(np.int64),
        "region_lengths": lengths,
        "n_calibration_modules": np.array(n_calibration_modules, np.int64),
    })


def save_module(store: ModelStore, module: int, result) -> None:
    store.write_part(f"module_{module:04d}", {
        "weights": result.weights, "theta": result.theta,
        "assignments": result.assignments.astype(np.int32),
        "epochs": np.array(result.epochs, np.int64),
    })


def save_reference_parts(store: ModelStore, stats: ReferenceStats, pixels: np.ndarray) -> None:
    """The zscore readout's reference sums and the preprocessed reference images (784 B a place)."""
    store.write_part("reference_stats", stats.arrays())
    store.write_part("reference_pixels", {"pixels": np.ascontiguousarray(pixels, dtype=np.uint8)})


def load_regions(store: ModelStore) -> list[np.ndarray]:
    """The places of each module, without loading the modules (for reports)."""
    n_places = int(store.meta["places"]["count"])
    part = store.read_part("network", {"region_places": ((n_places,), "int64"),
                                       "region_lengths": ((None,), "int64")})
    lengths = part["region_lengths"]
    if lengths.sum() != n_places or np.any(lengths < 1):
        raise ModelError(f"model {store.path} is corrupt: regions do not cover the {n_places} places")
    return np.split(part["region_places"], np.cumsum(lengths)[:-1])


def load_network(store_or_path: ModelStore | str | Path, *, require_complete: bool = True,
                 modules: Sequence[int] | None = None) -> ModularSNN:
    """Load a network; with ``modules``, only those (for calibration of a partial model)."""
    if isinstance(store_or_path, ModelStore):
        store = store_or_path
        if require_complete and not store.complete:
            raise ModelError(f"model {store.path} is incomplete (training was interrupted)")
    else:
        store = open_complete(store_or_path) if require_complete else ModelStore.open(store_or_path)
    meta = store.meta
    try:
        config = NetworkConfig.from_dict(meta["config"])
        n_places = int(meta["places"]["count"])
        names = meta["places"].get("names")
        if names is not None and (not isinstance(names, list) or len(names) != n_places):
            raise ValueError("places.names must be a list of one name per place")
        threshold = int(meta.get("hyperactive_threshold", 0))
        preselect_k = int(meta.get("preselect_k", 0))
        poses = meta["places"].get("poses")
        if poses is not None:
            poses = np.asarray(poses, dtype=np.float64)
            if poses.shape != (n_places, 7) or not np.all(np.isfinite(poses)):
                raise ValueError("places.poses must be one finite [x, y, z, qx, qy, qz, qw] per place")
        pose_frame = meta["places"].get("pose_frame")
        profile = Profile.from_dict(meta.get("profile"))
        if threshold < 0 or n_places < 1 or preselect_k < 0:
            raise ValueError("negative hyperactive_threshold or preselect_k, or no places")
    except (KeyError, TypeError, ValueError, AttributeError, VprsnnError) as exc:
        raise ModelError(f"model {store.path} has an invalid manifest: {exc}") from None
    n_in, n = config.n_inputs, config.n_neurons
    net = store.read_part("network", {"delays": ((n_in, n), "float32"),
                                      "region_places": ((n_places,), "int64"),
                                      "region_lengths": ((None,), "int64")})
    lengths = net["region_lengths"]
    if lengths.sum() != n_places or np.any(lengths < 1):
        raise ModelError(f"model {store.path} is corrupt: regions do not cover the {n_places} places")
    regions = np.split(net["region_places"], np.cumsum(lengths)[:-1])
    ids = list(range(len(regions))) if modules is None else list(modules)
    weights = np.empty((len(ids), n_in, n), np.float32)
    theta = np.empty((len(ids), n))
    assignments = np.empty((len(ids), n), np.int32)
    shapes = {"weights": ((n_in, n), "float32"), "theta": ((n,), "float64"),
              "assignments": ((n,), "int32")}
    for k, m in enumerate(ids):
        part = store.read_part(f"module_{m:04d}", shapes)
        weights[k], theta[k], assignments[k] = part["weights"], part["theta"], part["assignments"]
        bad = (assignments[k] >= 0) & ~np.isin(assignments[k], regions[m])
        if bad.any():
            raise ModelError(f"model {store.path} is corrupt: module {m} has neurons assigned "
                             f"to places outside its region")
    active = np.full((len(ids), n), -1, np.int32)
    if store.has_part("hyperactivity") and modules is None:
        active = store.read_part("hyperactivity", {"active_images": ((len(ids), n), "int32")})["active_images"]
    stats = pixels = None
    if store.has_part("reference_stats") and modules is None:
        part = store.read_part("reference_stats", {
            "neuron_sum": ((len(ids), n), "int64"), "pair_i": ((None,), "int64"),
            "pair_j": ((None,), "int64"), "pair_sum": ((None,), "int64"), "n_images": ((), "int64")})
        try:
            stats = ReferenceStats.from_arrays(assignments, n_places, part)
        except VprsnnError as exc:
            raise ModelError(f"model {store.path} is corrupt: {exc}") from None
    if store.has_part("reference_pixels"):
        pixels = store.read_part("reference_pixels", {"pixels": ((n_places, n_in), "uint8")})["pixels"]
    return ModularSNN(
        profile=profile, readout=profile.readout, reference_stats=stats, reference_pixels=pixels,
        config=config, delays=net["delays"], n_places=n_places,
        regions=regions if modules is None else [regions[m] for m in ids],
        n_calibration_modules=int(net["n_calibration_modules"]) if modules is None else len(ids),
        weights=weights, theta=theta, assignments=assignments, active_images=active,
        hyperactive_threshold=threshold, preselect_k=preselect_k,
        place_names=[str(n) for n in names] if names else None,
        place_poses=poses, pose_frame=str(pose_frame) if pose_frame else None)


# Optional part: one small gray thumbnail per reference place, for debug views.
THUMBNAILS_PART = "thumbnails"


def save_thumbnails(store: ModelStore, thumbnails: np.ndarray) -> None:
    """Write the ``thumbnails`` part: (n_places, h, w) uint8, checksummed like every part."""
    thumbnails = np.asarray(thumbnails)
    if thumbnails.ndim != 3 or thumbnails.dtype != np.uint8:
        raise ValueError(f"thumbnails must be (n_places, h, w) uint8, got {thumbnails.shape} {thumbnails.dtype}")
    store.write_part(THUMBNAILS_PART, {"images": thumbnails}, compress=True)


def load_thumbnails(store_or_path: ModelStore | str | Path) -> np.ndarray | None:
    """The model's thumbnails (n_places, h, w) uint8, or None when it stores none.

    For an ensemble directory, the first member's (members share their places).
    A listed but damaged part raises ModelError like any other part.
    """
    if isinstance(store_or_path, ModelStore):
        store = store_or_path
    else:
        from vprsnn_ros.model.ensemble import member_dirs  # ensemble imports this module

        store = ModelStore.open(member_dirs(store_or_path)[0])
    if not store.has_part(THUMBNAILS_PART):
        return None
    n_places = int(store.meta["places"]["count"])
    return store.read_part(THUMBNAILS_PART, {"images": ((n_places, None, None), "uint8")})["images"]
