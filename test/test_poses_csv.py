"""Place poses from a CSV: the column variants, one error line for each bad row, the bag
written beside the images giving the same model, extend, and the localizer's estimate."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from vprsnn_ros.cli import main
from vprsnn_ros.errors import ConfigError, DataError
from vprsnn_ros.io.bags import read_bag_frames, write_bag_from_folder
from vprsnn_ros.io.poses import QUATERNION_TOLERANCE, read_poses_csv
from vprsnn_ros.io.sources import load_traverse
from vprsnn_ros.io.synthetic import write_route
from vprsnn_ros.model.network_io import load_network
from vprsnn_ros.nodes.estimate import place_pose

N = 8
NAMES = [f"place-{k:04d}.png" for k in range(N)]
TINY = ["--neurons", "10", "--places-per-module", "3", "--epochs", "1", "--workers", "1"]
START = 1_700_000_000_000_000_000


def xy_yaw(k: int) -> tuple[float, float, float]:
    """A curving route: place k's position and heading (radians)."""
    return 1.5 * k, 0.25 * k * k, 0.3 * k - 1.0


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def yaw_rows(names=NAMES) -> list[str]:
    return [f"{name},{x!r},{y!r},{yaw!r}" for name, (x, y, yaw) in zip(names, map(xy_yaw, range(len(names))))]


def expected(k: int) -> np.ndarray:
    x, y, yaw = xy_yaw(k)
    return np.array([x, y, 0.0, 0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)])


@pytest.fixture(scope="module")
def route(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("poses")
    ref, _ = write_route(work / "route", N)
    csv = write_csv(work / "poses.csv", "filename,x,y,yaw", yaw_rows())
    return {"work": work, "ref": ref, "csv": csv}


# --------------------------------------------------------------------------
# the CSV variants
# --------------------------------------------------------------------------

def test_x_y_only_gives_z_0_and_the_identity(tmp_path):
    csv = write_csv(tmp_path / "p.csv", "filename,x,y", ["b.png,1,2", "a.png,-3.5,4e1"])
    table = read_poses_csv(csv, ["a.png", "b.png", "c.png"])
    assert table.lines == {"b.png": 2, "a.png": 3}
    poses = table.poses_of(["a.png", "b.png"])
    assert poses.dtype == np.float64 and poses.shape == (2, 7)
    assert poses.tolist() == [[-3.5, 40.0, 0.0, 0.0, 0.0, 0.0, 1.0], [1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.0]]


def test_z_column_and_any_column_order(tmp_path):
    # Header case, spaces, a BOM, extra columns and blank lines do not matter.
    csv = tmp_path / "p.csv"
    csv.write_text("\ufeffTimestamp, Z ,Filename,X,Y\n\n12.5,7.25,a.png,1,2\n", encoding="utf-8")
    assert read_poses_csv(csv, ["a.png"]).poses_of(["a.png"]).tolist() == [[1.0, 2.0, 7.25, 0, 0, 0, 1]]


def test_yaw_is_a_rotation_about_z(route):
    poses = read_poses_csv(route["csv"], NAMES).poses_of(NAMES)
    assert np.allclose(poses, np.stack([expected(k) for k in range(N)]), atol=0, rtol=1e-15)
    assert np.allclose(np.linalg.norm(poses[:, 3:], axis=1), 1.0)


def test_a_quaternion_is_kept_and_one_near_unit_is_normalised(tmp_path):
    s = math.sqrt(0.5)
    csv = write_csv(tmp_path / "p.csv", "filename,x,y,z,qx,qy,qz,qw",
                    [f"a.png,1,2,3,0,0,{s!r},{s!r}", "b.png,0,0,0,0,0,0.707,0.707", "c.png,0,0,0,0,0,0,-1"])
    poses = read_poses_csv(csv, ["a.png", "b.png", "c.png"]).poses_of(["a.png", "b.png", "c.png"])
    assert np.allclose(poses[0], [1, 2, 3, 0, 0, s, s], rtol=1e-15)
    assert np.allclose(poses[1], [0, 0, 0, 0, 0, s, s], rtol=1e-15)  # 0.707 rounded in the CSV: normalised
    assert poses[2].tolist() == [0, 0, 0, 0, 0, 0, -1]                 # the sign is kept (same rotation)


def test_poses_follow_the_kept_places(route, tmp_path):
    """--list, --exclude, --every and --limit: each kept place keeps its own row."""
    ref = route["ref"]
    listed = write_csv(tmp_path / "list.csv", "filename", [NAMES[k] for k in (7, 0, 5, 3, 2, 6, 1)])
    exclude = write_csv(tmp_path / "exclude.csv", "filename", [NAMES[5]])
    t = load_traverse(ref, (28, 28), 7, list_csv=str(listed), exclude_csv=str(exclude), every=2, limit=3,
                      poses_csv=str(route["csv"]), pose_frame="odom")
    # listed 7 0 5 3 2 6 1, without 5: 7 0 3 2 6 1; every 2nd: 7 3 6; limit 3: all of them
    assert t.names == [NAMES[7], NAMES[3], NAMES[6]] and t.pose_frame == "odom"
    assert np.array_equal(t.poses, read_poses_csv(route["csv"], NAMES).poses_of(t.names))
    # Rows are needed for the places that are kept after --list/--exclude, not for the others.
    partial = write_csv(tmp_path / "partial.csv", "filename,x,y", [f"{NAMES[k]},{k},0" for k in (1, 3)])
    only = write_csv(tmp_path / "only.csv", "filename", [NAMES[3], NAMES[1]])
    t = load_traverse(ref, (28, 28), 7, list_csv=str(only), poses_csv=str(partial))
    assert t.poses[:, 0].tolist() == [3.0, 1.0] and t.pose_frame == "map"
    assert load_traverse(ref, (28, 28), 7, limit=2).poses is None


def test_pose_options_are_checked(route, tmp_path):
    with pytest.raises(ConfigError, match="--pose-frame odom needs --poses"):
        load_traverse(route["ref"], (28, 28), 7, pose_frame="odom")
    with pytest.raises(ConfigError, match="--pose-frame must be a frame name"):
        load_traverse(route["ref"], (28, 28), 7, poses_csv=str(route["csv"]), pose_frame="")
    with pytest.raises(DataError, match="poses CSV does not exist"):
        load_traverse(route["ref"], (28, 28), 7, poses_csv=str(tmp_path / "none.csv"))


# --------------------------------------------------------------------------
# bad rows: one error line naming the row, exit 2, nothing written
# --------------------------------------------------------------------------

Q = "0,0,0,1"
BAD_CSVS = {
    "missing image": ("filename,x,y", ["place-0000.png,0,0", "nope.png,1,1"], ["line 3", "nope.png", "not an image"]),
    "non-numeric": ("filename,x,y", ["place-0000.png,0,0", "", "place-0001.png,1.0,abc"],
                    ["line 4", "'y'", "'abc'", "not a number"]),
    "empty value": ("filename,x,y,z", ["place-0000.png,0,0,"], ["line 2", "'z'", "empty"]),
    "not finite": ("filename,x,y", ["place-0000.png,nan,0"], ["line 2", "'x'", "not a finite number"]),
    "image without a row": ("filename,x,y", [f"{n},0,0" for n in NAMES[:5] + NAMES[6:]],
                            ["no row for image place-0005.png"]),
    "missing column": ("filename,x,z", ["place-0000.png,0,0"], ["line 1", "no column 'y'"]),
    "yaw and quaternion": ("filename,x,y,yaw,qx,qy,qz,qw", [f"place-0000.png,0,0,0,{Q}"],
                           ["line 1", "yaw or as qx,qy,qz,qw, not both"]),
    "part of a quaternion": ("filename,x,y,qx,qy,qz", ["place-0000.png,0,0,0,0,0"], ["line 1", "missing qw"]),
    "zero quaternion": ("filename,x,y,qx,qy,qz,qw", ["place-0000.png,0,0,0,0,0,0"], ["line 2", "norm 0,"]),
    "non-unit quaternion": ("filename,x,y,qx,qy,qz,qw", ["place-0000.png,0,0,0,0,0,1",
                                                         "place-0001.png,0,0,0,0,0,2"], ["line 3", "norm 2,"]),
    "duplicate filename": ("filename,x,y", ["place-0000.png,0,0", "place-0001.png,1,0", "place-0000.png,2,0"],
                           ["line 4", "place-0000.png is given twice", "first on line 2"]),
    "short row": ("filename,x,y", ["place-0000.png,0"], ["line 2", "2 fields, the header has 3"]),
    "header only": ("filename,x,y", [], ["has a header but no rows"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_a_bad_row_is_one_error_line_naming_it(case, route, tmp_path, capsys, bad_input):
    header, rows, words = BAD_CSVS[case]
    csv = write_csv(tmp_path / "bad poses.csv", header, rows)
    bad_input.watch(tmp_path, route["ref"])
    code = main(["train", "--reference", str(route["ref"]), "--poses", str(csv), "--out", str(tmp_path / "m"),
                 *TINY])
    bad_input((code, capsys.readouterr().err), str(csv), *words)


def test_a_bad_row_writes_no_bag(route, tmp_path, capsys, bad_input):
    header, rows, words = BAD_CSVS["missing image"]
    csv = write_csv(tmp_path / "poses.csv", header, rows)
    bad_input.watch(tmp_path)
    code = main(["bag", "from-folder", str(route["ref"]), "--out", str(tmp_path / "bag"), "--poses", str(csv)])
    bad_input((code, capsys.readouterr().err), str(csv), *words)
    code = main(["bag", "from-folder", str(route["ref"]), "--out", str(tmp_path / "bag"), "--pose-frame", "odom"])
    bad_input((code, capsys.readouterr().err), "--pose-frame and --odom-topic need --poses")


def test_poses_of_a_bag_and_a_lone_pose_frame_are_errors(route, tmp_path, capsys, bad_input):
    bag = write_bag_from_folder(route["ref"], tmp_path / "bag", start_time_ns=START)
    bad_input.watch(tmp_path)
    code = main(["train", "--reference", str(bag), "--poses", str(route["csv"]), "--out", str(tmp_path / "m"),
                 *TINY])
    bad_input((code, capsys.readouterr().err), "--poses applies to image folders", "--pose-topic")
    code = main(["train", "--reference", str(route["ref"]), "--pose-frame", "odom", "--out", str(tmp_path / "m"),
                 *TINY])
    bad_input((code, capsys.readouterr().err), "--pose-frame odom needs --poses")


# --------------------------------------------------------------------------
# the bag written beside the images
# --------------------------------------------------------------------------

@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_the_bag_carries_the_csv_poses_on_the_frames_stamps(route, tmp_path, storage):
    bag = write_bag_from_folder(route["ref"], tmp_path / "bag", storage=storage, rate_hz=3.0, start_time_ns=START,
                                poses_csv=route["csv"], pose_frame="odom", odom_topic="/robot/odom")
    frames = read_bag_frames(bag)
    assert frames.pose_frame == "odom"
    assert np.array_equal(frames.poses, read_poses_csv(route["csv"], NAMES).poses_of(NAMES))  # bit for bit
    assert frames.stamps_ns.tolist() == [START + round(k * 1e9 / 3.0) for k in range(N)]
    every2 = read_bag_frames(bag, every=2, pose_topic="/robot/odom")
    assert np.array_equal(every2.poses, frames.poses[::2])


# --------------------------------------------------------------------------
# the trained model keeps the poses: folder and bag alike, and the localizer uses them
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def folder_model(route) -> Path:
    out = route["work"] / "m_folder"
    assert main(["train", "--reference", str(route["ref"]), "--poses", str(route["csv"]), "--pose-frame", "odom",
                 "--out", str(out), *TINY]) == 0
    return out


@pytest.mark.slow
def test_folder_with_poses_and_its_bag_give_the_same_model(route, folder_model, tmp_path):
    bag = tmp_path / "bag"
    assert main(["bag", "from-folder", str(route["ref"]), "--out", str(bag), "--poses", str(route["csv"]),
                 "--pose-frame", "odom"]) == 0
    assert main(["train", "--reference", str(bag), "--every", "1", "--out", str(tmp_path / "m_bag"), *TINY]) == 0
    a, b = load_network(folder_model), load_network(tmp_path / "m_bag")
    assert a.pose_frame == b.pose_frame == "odom"
    assert np.array_equal(a.place_poses, b.place_poses)
    assert np.array_equal(a.place_poses, np.stack([expected(k) for k in range(N)]))
    for name in ("weights", "theta", "assignments", "active_images"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.hyperactive_threshold == b.hyperactive_threshold


@pytest.mark.slow
def test_the_estimate_is_the_stored_pose(folder_model):
    net = load_network(folder_model)
    for k in (0, 3, N - 1):
        est = place_pose(k, 0.5, net.place_poses, net.pose_frame, "route", 0.5, 2.0)
        assert est.frame_id == "odom"
        assert est.position == tuple(expected(k)[:3]) and np.allclose(est.orientation, expected(k)[3:], rtol=1e-15)
        spacing = np.linalg.norm(expected(k + 1 if k + 1 < N else k - 1)[:3] - expected(k)[:3])
        assert est.covariance[0] == pytest.approx((1.25 * spacing) ** 2)


@pytest.mark.slow
def test_the_kept_places_keep_their_poses_in_the_model(route, tmp_path):
    assert main(["train", "--reference", str(route["ref"]), "--poses", str(route["csv"]), "--every", "2",
                 "--limit", "3", "--out", str(tmp_path / "m"), *TINY]) == 0
    net = load_network(tmp_path / "m")
    assert net.place_names == [NAMES[0], NAMES[2], NAMES[4]] and net.pose_frame == "map"
    assert np.array_equal(net.place_poses, np.stack([expected(k) for k in (0, 2, 4)]))


# --------------------------------------------------------------------------
# extend: new places need poses when the model has them
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def split(route) -> dict:
    """The first 6 places and the last 2 in folders of their own, each with its poses CSV (a row
    naming a file that is not in the folder is an error)."""
    work = route["work"]
    rows = yaw_rows()
    for name, chosen in (("old", range(6)), ("new", range(6, N))):
        (work / name).mkdir(exist_ok=True)
        for k in chosen:
            shutil.copy(route["ref"] / NAMES[k], work / name / NAMES[k])
        write_csv(work / f"{name}.csv", "filename,x,y,yaw", [rows[k] for k in chosen])
    return {"old": work / "old", "new": work / "new", "old_csv": work / "old.csv", "new_csv": work / "new.csv"}


@pytest.mark.slow
def test_extend_appends_the_new_places_poses(split, tmp_path, capsys, bad_input):
    old = tmp_path / "old_model"
    assert main(["train", "--reference", str(split["old"]), "--poses", str(split["old_csv"]), "--out", str(old),
                 *TINY]) == 0
    # Without poses for the new places: one error line, the model untouched.
    bad_input.watch(old, tmp_path / "x")
    capsys.readouterr()
    code = main(["extend", "--model", str(old), "--reference", str(split["new"]), "--out", str(tmp_path / "x")])
    bad_input((code, capsys.readouterr().err), "has place poses but the new places have none", "--poses CSV")
    code = main(["extend", "--model", str(old), "--reference", str(split["new"]), "--poses", str(split["new_csv"]),
                 "--pose-frame", "odom", "--out", str(tmp_path / "x")])
    bad_input((code, capsys.readouterr().err), "new poses are in frame 'odom'")
    # With them: appended after the old places' poses.
    assert main(["extend", "--model", str(old), "--reference", str(split["new"]), "--poses", str(split["new_csv"]),
                 "--out", str(tmp_path / "grown"), "--workers", "1"]) == 0
    net = load_network(tmp_path / "grown")
    assert net.place_names == NAMES and net.pose_frame == "map"
    assert np.array_equal(net.place_poses, np.stack([expected(k) for k in range(N)]))


@pytest.mark.slow
def test_extend_with_poses_of_a_model_without_is_an_error(split, tmp_path, capsys, bad_input):
    old = tmp_path / "plain"
    assert main(["train", "--reference", str(split["old"]), "--out", str(old), *TINY]) == 0
    bad_input.watch(old, tmp_path / "x")
    capsys.readouterr()
    code = main(["extend", "--model", str(old), "--reference", str(split["new"]), "--poses", str(split["new_csv"]),
                 "--out", str(tmp_path / "x")])
    bad_input((code, capsys.readouterr().err), "the new places have poses", "has none")


def test_quaternion_tolerance_is_documented():
    assert QUATERNION_TOLERANCE == 0.01
    text = (Path(__file__).resolve().parents[1] / "docs" / "guides" / "poses.md").read_text()
    assert "0.01" in text and "normalised" in text
