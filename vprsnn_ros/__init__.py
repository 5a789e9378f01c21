"""vprsnn_ros: Modular Spiking Neural Networks for visual place recognition.

The SNN core (everything in this package outside ``vprsnn_ros.nodes``) imports
and runs without ROS.
"""

__version__ = "0.1.0"
