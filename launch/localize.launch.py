"""Start the vprsnn localizer on a camera topic.

    ros2 launch vprsnn_ros localize.launch.py image_topic:=/camera/image_raw model:=/path/to/model
    ros2 launch vprsnn_ros localize.launch.py autostart:=false   # then: ros2 lifecycle set /vprsnn_localizer configure
    ros2 launch vprsnn_ros localize.launch.py model:=/path/to/model_with_poses relocalize:=auto   # feeds AMCL
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from vprsnn_ros.nodes.launch_support import stop_launch_on_exit


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("vprsnn_ros")
    args = [
        DeclareLaunchArgument("model", default_value=os.path.join("models", "demo"),
                              description="model directory (default: what `vprsnn demo` writes, "
                                          "relative to the working directory)"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic to localize"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "localize.yaml"),
                              description="parameters of the localizer node"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate at start-up; false: a lifecycle "
                                          "manager (or `ros2 lifecycle set`) drives ~/change_state"),
        DeclareLaunchArgument("relocalize", default_value="off",
                              description="publish confident matches' poses on initialpose for nav2's AMCL: "
                                          "off, auto or on_request (a ~/relocalize call each); needs a "
                                          "model with place poses"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock"),
        DeclareLaunchArgument("log_level", default_value="info", description="ROS log level"),
    ]
    localizer = Node(
        package="vprsnn_ros",
        executable="localizer",
        name="vprsnn_localizer",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            # Given after the file, so that the launch arguments win.
            {"model_path": LaunchConfiguration("model"),
             "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
             # A string: YAML would read a bare off as false.
             "relocalize": ParameterValue(LaunchConfiguration("relocalize"), value_type=str),
             "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)},
        ],
        remappings=[("image", LaunchConfiguration("image_topic"))],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
    )
    # With autostart an unusable model makes the node exit 2: the launch stops and says why.
    return LaunchDescription(args + [localizer] + stop_launch_on_exit(localizer))
