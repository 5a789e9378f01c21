"""Speed, latency, memory and cost benches: ``python -m bench.perf.NAME --help``."""
