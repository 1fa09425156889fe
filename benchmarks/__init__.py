"""Benchmarks: `make bench` (python -m benchmarks) runs each and prints its table."""
