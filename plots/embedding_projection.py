"""Embeddings seen from above: a 2-D PCA scatter coloured by class."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def projection_figure(
    embeddings: torch.Tensor, labels: torch.Tensor, class_names: list[str], title: str = ""
) -> plt.Figure:
    """Scatter of the first two principal components, one colour per class.

    Args:
        embeddings: ``(N, D)`` float, ``N >= 3``.
        labels: ``(N,)`` int class indices into ``class_names``.
        class_names: Legend labels.
        title: Figure title.
    """
    centred = embeddings - embeddings.mean(dim=0, keepdim=True)
    _, _, v = torch.pca_lowrank(centred, q=2, center=False)
    xy = (centred @ v[:, :2]).numpy()
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    cmap = plt.get_cmap("tab10")
    for c, name in enumerate(class_names):
        mask = (labels == c).numpy()
        if mask.any():
            ax.scatter(xy[mask, 0], xy[mask, 1], s=8, alpha=0.7, color=cmap(c % 10), label=name)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, markerscale=2, loc="best")
    fig.tight_layout()
    return fig
