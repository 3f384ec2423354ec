"""Benchmarks of swarmpod: figures as ratios, measured side by side in one run."""
