"""``vprsnn info``: what a model directory holds, in a few readable lines."""

from __future__ import annotations

from pathlib import Path

from vprsnn_ros import __version__
from vprsnn_ros.errors import ModelError
from vprsnn_ros.model.store import ModelStore
from vprsnn_ros.snn.profiles import FAITHFUL, Profile


def _threshold_line(meta: dict) -> str:
    cal = meta.get("calibration")
    t = meta.get("hyperactive_threshold")
    choice = meta.get("threshold_choice") or {}
    if cal:
        if choice.get("method") == "calibration_at_k":
            best = next((r for r in choice.get("table", []) if r.get("threshold") == t), None)
            at = f"R@1 {float(best['recall_at_1']):.3f} at K = {best['k'] or 'every module'}" if best else "R@1 ?"
            line = (f"{t}, chosen with K on the calibration query: {at} on the {cal['places']} calibration "
                    f"places ({cal['modules']} modules), epochs {cal['epochs']}; with every module T = "
                    f"{cal['threshold']}, R@1 {float(cal['recall_at_1']):.3f}")
        else:
            line = (f"{t}, chosen by calibration: R@1 {float(cal['recall_at_1']):.3f} on the "
                    f"{cal['places']} calibration places ({cal['modules']} modules), epochs {cal['epochs']}")
        if "recalibrated_places" in cal:
            line += f", recalibrated after extension to {cal['recalibrated_places']} places"
        return line
    if t is None:
        return "not chosen yet (training incomplete)"
    if choice.get("method") == "reference_self_recognition":
        return f"{t}, chosen on the reference itself (no calibration query): {choice.get('reason', '')}"
    return f"{t} (no calibration data given at training: {'no masking' if t == 0 else 'set by hand'})"


def _preselect_lines(meta: dict) -> list[str]:
    """K, how it was chosen, and the table it was chosen on."""
    choice = meta.get("preselect")
    k = int(meta.get("preselect_k", 0))
    if not choice:
        return [f"K          {k or 'every module'} (not chosen: no pre-selection in this profile, or a model "
                f"older than the choice)"]
    how = {"calibration_query": "on the calibration query",
           "reference_perturbed": f"on {choice.get('queries', '?')} perturbed reference images (no query images)"}
    method = how.get(choice.get("method"), how["calibration_query"])  # older models: calibration only
    lines = [f"K          {k or 'every module'} modules per query, chosen {method}: the cheapest K within 0.005 "
             f"of every module's R@1"]
    table = choice.get("table") or []
    if table:
        lines.append("           " + "  ".join(f"K={r['k']}: {float(r['recall_at_1']):.3f}" for r in table))
    return lines


def _training_line(meta: dict) -> str:
    tr = meta.get("training")
    if not tr:
        return "not finished"
    where = f"Dask cluster {tr['cluster']} ({tr.get('workers')} workers)" if "cluster" in tr \
        else f"{tr.get('workers')} threads in one process"
    line = (f"{tr.get('seconds')} s + {tr.get('record_seconds')} s recording hyperactivity, "
            f"{tr.get('epochs')} epochs over {tr.get('traverses')} traverse(s), {where}")
    for ext in tr.get("extensions", []):
        line += f"; extended by {ext['places']} places / {ext['modules']} modules in {ext['seconds']} s"
    return line


def _profile_line(meta: dict) -> str:
    """The profile's name and the switches it sets away from the faithful method."""
    profile = Profile.from_dict(meta.get("profile"))
    changed = [f"{k} {v}" for k, v in profile.to_dict().items() if k != "name" and v != getattr(FAITHFUL, k)]
    return profile.name + (f" ({', '.join(changed)})" if changed else "")


def describe_network(path: Path) -> list[str]:
    store = ModelStore.open(path)
    meta = store.meta
    try:
        config = meta["config"]
        places = meta["places"]
        n_places = int(places["count"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model {path} has an invalid manifest: missing {exc}") from None
    trained = sum(1 for p in store.parts() if p.startswith("module_"))
    if store.has_part("network"):
        net = store.read_part("network")
        n_modules = len(net["region_lengths"])
        n_cal = int(net["n_calibration_modules"])
        modules = f"{n_modules} ({n_cal} calibration, {n_modules - n_cal} test)"
        if trained < n_modules:
            modules += f", {trained} trained so far"
    else:
        modules = "none trained yet"
    pose = f", poses in frame {places['pose_frame']}" if "poses" in places else ""
    complete = "yes" if store.complete else (
        f"no: training was interrupted; resume it with vprsnn train --resume --out {path}")
    return [
        f"model      {path}",
        f"complete   {complete}",
        f"places     {n_places}{pose}",
        f"modules    {modules}; {config.get('places_per_module')} places and "
        f"{config.get('n_neurons')} neurons each, {config.get('image_width')}x{config.get('image_height')} input",
        f"profile    {_profile_line(meta)}",
        f"T          {_threshold_line(meta)}",
        *_preselect_lines(meta),
        f"training   {_training_line(meta)}",
        f"seed       {config.get('seed')}{' (shuffled regions)' if config.get('shuffle') else ''}",
        f"package    written by vprsnn_ros {meta.get('package_version')} (this is {__version__}), "
        f"model format {meta.get('format_version')}, created {meta.get('created')}",
        f"extendable {'yes' if store.has_part('reference_pixels') and store.complete else 'no'}",
    ]


def describe_model(path: str | Path) -> list[str]:
    """Lines describing a model directory (each member of an ensemble in turn)."""
    from vprsnn_ros.model.ensemble import member_dirs

    path = Path(path)
    members = member_dirs(path)
    if members == [path]:
        return describe_network(path)
    lines = [f"ensemble   {path}: {len(members)} networks ({', '.join(m.name for m in members)})"]
    for member in members:
        lines += [""] + describe_network(member)
    return lines
