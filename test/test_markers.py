"""The route and the match in RViz: the plain geometry and colours of :mod:`vprsnn_ros.nodes.markers`
(the node's ``~/places`` and ``~/match`` over DDS: ``test_localizer_nav.py``)."""

from __future__ import annotations

import numpy as np

from vprsnn_ros.nodes.markers import (
    PALETTE,
    PLACE_SIZE,
    UNASSIGNED,
    confidence_colour,
    module_colours,
    place_modules,
    place_points,
    places_marker,
    spacing,
)


def poses(n: int, step: float = 2.0) -> np.ndarray:
    p = np.zeros((n, 7))
    p[:, 0] = step * np.arange(n)
    p[:, 1] = np.cos(np.arange(n))
    p[:, 2] = 0.5
    p[:, 6] = 1.0
    return p


def test_with_poses_one_point_per_place_at_its_position_in_the_pose_frame():
    regions = [np.array([0, 1, 2]), np.array([3, 4]), np.array([5])]
    spec = places_marker(6, regions, poses(6), "odom", "route")
    assert spec.frame_id == "odom"
    assert spec.points.shape == (6, 3) and np.array_equal(spec.points, poses(6)[:, :3])
    assert spec.colours.shape == (6, 4)
    assert places_marker(6, regions, poses(6), None, "route").frame_id == "map"


def test_without_poses_places_lie_along_x_by_id_in_frame_id():
    spec = places_marker(5, [np.arange(5)], None, None, "route")
    assert spec.frame_id == "route"
    assert np.array_equal(spec.points, np.column_stack([np.arange(5), np.zeros(5), np.zeros(5)]))
    assert spec.size == PLACE_SIZE  # spacing 1 place


def test_places_are_coloured_by_module():
    regions = [np.array([4, 0]), np.array([1, 3]), np.array([2])]
    modules = place_modules(5, regions)
    assert modules.tolist() == [0, 1, 2, 1, 0]
    colours = module_colours(modules)
    assert np.array_equal(colours[0], colours[4]) and np.array_equal(colours[1], colours[3])
    assert len({tuple(c) for c in colours}) == 3
    assert np.allclose(colours[:, :3], PALETTE[modules])
    assert np.all(colours[:, 3] == 1.0)
    # More modules than colours: the palette repeats; a place of no module is grey.
    many = module_colours(np.array([0, len(PALETTE), -1]))
    assert np.array_equal(many[0], many[1]) and tuple(many[2, :3]) == UNASSIGNED
    assert place_modules(3, [np.array([0, 1])]).tolist() == [0, 0, -1]


def test_sphere_size_follows_the_spacing_of_places():
    assert spacing(poses(4, step=5.0)[:, :3]) > 5.0  # the cosine in y adds a little
    assert spacing(np.zeros((3, 3))) == 1.0 and spacing(np.zeros((1, 3))) == 1.0
    spec = places_marker(4, [np.arange(4)], poses(4, step=5.0), "map", "route")
    assert np.isclose(spec.size, PLACE_SIZE * spacing(poses(4, step=5.0)[:, :3]))


def test_confidence_colour_runs_from_red_to_green():
    assert confidence_colour(0.0) == (1.0, 0.0, 0.0, 1.0)
    assert confidence_colour(0.5) == (1.0, 1.0, 0.0, 1.0)
    assert confidence_colour(1.0) == (0.0, 1.0, 0.0, 1.0)
    assert confidence_colour(-3.0) == confidence_colour(0.0) == confidence_colour(float("nan"))
    assert confidence_colour(7.0) == confidence_colour(1.0)
    greens = [confidence_colour(c)[1] for c in np.linspace(0, 1, 11)]
    reds = [confidence_colour(c)[0] for c in np.linspace(0, 1, 11)]
    assert greens == sorted(greens) and reds == sorted(reds, reverse=True)


def test_place_points_copy_the_poses():
    p = poses(3)
    points = place_points(3, p)
    points[0, 0] = 99.0
    assert p[0, 0] == 0.0


def test_the_plain_modules_of_the_node_import_no_ros():
    """The node's logic is testable without ROS: its plain modules pull in no ROS package."""
    import subprocess
    import sys

    modules = ["markers", "relocalize", "diagnostics", "estimate", "kernel_cache", "localizer_params"]
    code = ("import sys\n" + "".join(f"import vprsnn_ros.nodes.{m}\n" for m in modules) +
            "ros = ('rclpy', 'std_msgs', 'geometry_msgs', 'visualization_msgs', 'diagnostic_msgs', 'std_srvs')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ros))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout
