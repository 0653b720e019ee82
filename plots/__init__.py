"""Plots: every figure litlab writes, and the one place that saves them beside a run and to W&B."""
