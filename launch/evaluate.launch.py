"""Replay a bag through the localizer and write an evaluation report; ends when the bag is done.

    ros2 launch vprsnn_ros evaluate.launch.py model:=models/route bag:=query.mcap report_dir:=reports/q
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from vprsnn_ros.nodes.launch_support import stop_launch_on_exit

IMAGE_TOPIC = "/vprsnn_replay/image"


def generate_launch_description() -> LaunchDescription:
    arg = LaunchConfiguration
    args = [
        DeclareLaunchArgument("model", description="model directory"),
        DeclareLaunchArgument("bag", description="query bag to replay"),
        DeclareLaunchArgument("topic", default_value="", description="image topic in the bag ('' = the only one)"),
        DeclareLaunchArgument("mode", default_value="lockstep", description="lockstep or realtime"),
        DeclareLaunchArgument("rate_factor", default_value="1.0", description="realtime speed-up"),
        DeclareLaunchArgument("sequence_length", default_value="1", description="online sequence matching"),
        DeclareLaunchArgument("sequence_matcher", default_value="diagonal", description="diagonal or seqslam"),
        DeclareLaunchArgument("preselect_k", default_value="-1",
                              description="modules run per frame (-1: the model's K, 0: every module)"),
        DeclareLaunchArgument("readout", default_value="",
                              description="place readout ('' = the model's profile, mean or zscore)"),
        DeclareLaunchArgument("hyperactive_threshold", default_value="-1",
                              description="hyperactivity threshold T (-1: the model's, 0: no masking)"),
        DeclareLaunchArgument("report_dir", default_value="replay_report", description="report folder"),
    ]
    sequence_length = ParameterValue(arg("sequence_length"), value_type=int)
    localizer = Node(
        package="vprsnn_ros", executable="localizer", name="vprsnn_localizer", output="screen",
        parameters=[{"model_path": arg("model"), "reliable": True, "publish_scores": True,
                     "sequence_length": sequence_length, "sequence_matcher": arg("sequence_matcher"),
                     "preselect_k": ParameterValue(arg("preselect_k"), value_type=int),
                     "readout": ParameterValue(arg("readout"), value_type=str),
                     "hyperactive_threshold": ParameterValue(arg("hyperactive_threshold"), value_type=int)}],
        remappings=[("image", IMAGE_TOPIC)])
    evaluator = Node(
        package="vprsnn_ros", executable="evaluator", name="vprsnn_evaluator", output="screen",
        parameters=[{"bag": arg("bag"), "topic": arg("topic"), "model": arg("model"),
                     "sequence_length": sequence_length, "sequence_matcher": arg("sequence_matcher"),
                     "readout": ParameterValue(arg("readout"), value_type=str),
                     "hyperactive_threshold": ParameterValue(arg("hyperactive_threshold"), value_type=int),
                     "preselect_k": ParameterValue(arg("preselect_k"), value_type=int),
                     "report_dir": arg("report_dir")}],
        remappings=[("image", IMAGE_TOPIC)])
    player = Node(
        package="vprsnn_ros", executable="bag_player", name="vprsnn_bag_player", output="screen",
        parameters=[{"bag": arg("bag"), "topic": arg("topic"), "mode": arg("mode"),
                     "rate_factor": ParameterValue(arg("rate_factor"), value_type=float),
                     "min_subscribers": 2, "start_signal": "/vprsnn_evaluator/ready"}],
        remappings=[("image", IMAGE_TOPIC)])
    # The report is written when the evaluator exits; then everything stops. Any of the three
    # failing (e.g. a missing model or bag) stops the launch at once with a line saying why.
    handlers = (stop_launch_on_exit(localizer) + stop_launch_on_exit(player)
                + stop_launch_on_exit(evaluator, also_on_success=True))
    return LaunchDescription(args + [localizer, evaluator, player] + handlers)
