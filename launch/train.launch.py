"""Train a model from reference bags or image folders with the trainer node.

    ros2 launch vprsnn_ros train.launch.py params_file:=my_train.yaml
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from vprsnn_ros.nodes.launch_support import stop_launch_on_exit


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("vprsnn_ros")
    params = DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "train.yaml"),
                                   description="trainer parameters (reference, out, model options)")
    log_level = DeclareLaunchArgument("log_level", default_value="info", description="ROS log level")
    trainer = Node(package="vprsnn_ros", executable="trainer", name="vprsnn_trainer", output="screen",
                   parameters=[LaunchConfiguration("params_file")],
                   arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")])
    # The launch ends with the training; a failed training says why (e.g. a missing reference).
    return LaunchDescription([params, log_level, trainer] + stop_launch_on_exit(trainer, also_on_success=True))
