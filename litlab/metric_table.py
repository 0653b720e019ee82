"""The test-metric table that ``litlab fit`` and the workflows print at the end of a run.

Kept apart from :mod:`litlab.lightning_cli` so that a light process (a workflow reading its
steps' results) prints the same table without importing torch or Lightning.
"""

from __future__ import annotations


def print_metric_table(metrics: dict[str, float]) -> None:
    """Print ``metrics`` as a two-column table sorted by name (nothing when there are none)."""
    if not metrics:
        return
    width = max(len(k) for k in metrics)
    print("\n" + "test metric".ljust(width) + "   value")
    print("-" * (width + 11))
    for name, value in sorted(metrics.items()):
        print(f"{name.ljust(width)}   {value:.4f}")
