"""The timing engine behind ``glcf bench`` and ``benchmarks/``: backends side by side in one run."""
