"""ROS 2 nodes: thin adapters over the rclpy-free core."""
