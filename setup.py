from glob import glob

from setuptools import find_packages, setup

package_name = "vprsnn_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    # What ament (ros2 launch, get_package_share_directory) looks for under the prefix.
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "numba>=0.58",
        "opencv-python-headless>=4.6",
        "PyYAML>=6",
        "tqdm>=4.60",
        "matplotlib>=3.6",
        "rosbags>=0.10",
    ],
    extras_require={
        # ROS 2 Kilted from PyPI wheels, for machines without an apt ROS install.
        "ros": [
            "ros-rclpy", "ros-rmw-fastrtps-cpp", "ros-std-msgs", "ros-sensor-msgs",
            "ros-geometry-msgs", "ros-diagnostic-msgs", "ros-std-srvs", "ros-nav-msgs",
            "ros-lifecycle-msgs", "ros-visualization-msgs",
        ],
        # The tests, and the lint that CI runs before them (ruff.toml, setup.cfg [importlinter]).
        "test": ["pytest>=8,<9", "hypothesis>=6", "ruff>=0.5", "import-linter>=2.1"],
        # Distributed training and evaluation (--cluster); dask-jobqueue for PBS/SLURM is the
        # user's choice and not required here.
        "cluster": ["distributed>=2023.1"],
    },
    zip_safe=True,
    maintainer="vprsnn_ros founders",
    maintainer_email="founders@vprsnn.dev",
    description="Modular Spiking Neural Networks for visual place recognition on ROS 2",
    license="MIT",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "vprsnn = vprsnn_ros.cli:main",
            # The node modules are imported inside the entry point, so that a Ctrl-C while
            # they import exits quietly (vprsnn_ros/nodes/entry.py).
            "localizer = vprsnn_ros.nodes.entry:localizer",
            "trainer = vprsnn_ros.nodes.entry:trainer",
            "bag_player = vprsnn_ros.nodes.entry:bag_player",
            "evaluator = vprsnn_ros.nodes.entry:evaluator",
        ],
    },
)
