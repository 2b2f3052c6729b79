"""Benchmarks; each script writes its section of BENCHMARKS.md through :mod:`bench._report`."""
