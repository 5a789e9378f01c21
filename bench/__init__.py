"""Benchmarks of vprsnn_ros, run from the repository root as modules.

``python -m bench.perf.NAME`` (speed, latency, memory, cost; ``--baseline REV`` on
``speed`` and ``training_profile``) and ``python -m bench.accuracy.NAME`` (Nordland
accuracy studies); shared helpers in :mod:`bench.common`.
"""
