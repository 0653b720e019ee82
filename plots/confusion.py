"""Confusion-matrix heatmaps: counts in the cells, colour normalised per true class."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_figure(matrix: np.ndarray, class_names: list[str], title: str) -> plt.Figure:
    """A confusion-matrix heatmap with counts and row-normalised colour.

    Args:
        matrix: ``(C, C)`` counts, rows the true class, columns the predicted one.
        class_names: ``C`` tick labels.
        title: Figure title.

    Returns:
        The figure (the caller saves and closes it, e.g. with ``log_image``).
    """
    n = len(class_names)
    norm = matrix / np.clip(matrix.sum(1, keepdims=True), 1, None)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * n, 0.8 + 0.7 * n), dpi=100)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(n):
        for j in range(n):
            colour = "white" if norm[i, j] > 0.5 else "black"
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", color=colour, fontsize=8)
    fig.tight_layout()
    return fig
