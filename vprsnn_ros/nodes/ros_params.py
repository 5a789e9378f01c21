"""Parameter helpers shared by the nodes: descriptors with ranges from a plain table."""

from __future__ import annotations

from typing import Iterable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from vprsnn_ros.nodes.localizer_params import Param


def descriptor(p: Param) -> ParameterDescriptor:
    """The ROS descriptor of ``p``: its description, read-only flag and integer or float range."""
    d = ParameterDescriptor(description=p.description, read_only=p.read_only)
    if p.lo is not None and isinstance(p.default, int) and not isinstance(p.default, bool):
        d.integer_range = [IntegerRange(from_value=int(p.lo), to_value=int(p.hi), step=1)]
    elif p.lo is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(p.lo), to_value=float(p.hi), step=0.0)]
    return d


def declare(node, params: Iterable[Param]) -> None:
    """Declare every parameter of ``params`` on ``node``."""
    for p in params:
        node.declare_parameter(p.name, p.default, descriptor(p))
