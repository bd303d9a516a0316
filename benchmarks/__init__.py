"""Benchmarks: speed and memory measured by commands whose results are committed as JSON."""
