"""The localizer's ROS messages, built from plain results: scores, estimate, markers, diagnostics.

The node (:mod:`vprsnn_ros.nodes.localizer_node`) decides what to publish and
when; this module only lays plain values out as messages.
"""

from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, PoseWithCovarianceStamped
from sensor_msgs.msg import Image
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from vprsnn_ros.nodes import markers
from vprsnn_ros.nodes.estimate import PlacePose

SCORES_FRAME = "vprsnn_place_scores"


def scores_image(scores: np.ndarray, stamp) -> Image:
    """Every place's score as a one-row 32FC1 image: a standard message with a header."""
    row = np.ascontiguousarray(scores, dtype=np.float32)
    msg = Image(height=1, width=row.size, encoding="32FC1", is_bigendian=0, step=4 * row.size, data=row.tobytes())
    msg.header.stamp = stamp
    msg.header.frame_id = SCORES_FRAME
    return msg


def pose_message(pose: PlacePose, stamp) -> PoseWithCovarianceStamped:
    """``~/estimate`` (and ``initialpose``): the place's pose with its covariance."""
    out = PoseWithCovarianceStamped()
    out.header.stamp = stamp
    out.header.frame_id = pose.frame_id
    p, q = out.pose.pose.position, out.pose.pose.orientation
    p.x, p.y, p.z = pose.position
    q.x, q.y, q.z, q.w = pose.orientation
    out.pose.covariance = list(pose.covariance)
    return out


def places_markers(spec: markers.PlacesMarker, stamp) -> MarkerArray:
    """``~/places``: one SPHERE_LIST marker, a sphere per place, coloured by module."""
    marker = Marker(ns="places", id=0, type=Marker.SPHERE_LIST, action=Marker.ADD)
    marker.header.frame_id = spec.frame_id
    marker.header.stamp = stamp
    marker.pose.orientation.w = 1.0
    marker.scale.x = marker.scale.y = marker.scale.z = spec.size
    marker.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in spec.points]
    marker.colors = [ColorRGBA(r=float(r), g=float(g), b=float(b), a=float(a)) for r, g, b, a in spec.colours]
    marker.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
    return MarkerArray(markers=[marker])


def match_marker(pose: PlacePose, confidence: float, place_size: float, stamp) -> Marker:
    """``~/match``: a sphere at the best place, red (confidence 0) to green (1)."""
    marker = Marker(ns="match", id=0, type=Marker.SPHERE, action=Marker.ADD)
    marker.header.stamp = stamp
    marker.header.frame_id = pose.frame_id
    marker.pose.position.x, marker.pose.position.y, marker.pose.position.z = pose.position
    marker.pose.orientation.w = 1.0
    marker.scale.x = marker.scale.y = marker.scale.z = markers.MATCH_SIZE * place_size
    r, g, b, a = markers.confidence_colour(confidence)
    marker.color = ColorRGBA(r=r, g=g, b=b, a=a)
    return marker


def diagnostic_array(level: str, message: str, values: dict, name: str, hardware_id: str, stamp) -> DiagnosticArray:
    """``/diagnostics``: one status (level 'OK', 'WARN' or 'ERROR') with its key/values."""
    status = DiagnosticStatus(level=getattr(DiagnosticStatus, level), name=name, hardware_id=hardware_id,
                              message=message, values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = stamp
    return msg
