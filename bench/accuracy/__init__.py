"""Accuracy benches on Nordland: ``python -m bench.accuracy.NAME --help``."""
