"""Benchmarks of colddiff (run them all with ``python -m benchmarks`` from the repository root)."""
