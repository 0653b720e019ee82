"""Confusion heatmaps and embedding projections: what they draw, from what they are given."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from litlab.plots.confusion import confusion_figure
from litlab.plots.embedding_projection import projection_figure
from litlab.plots.run_images import figure_to_array


def test_confusion_figure_writes_every_count_and_normalises_rows() -> None:
    matrix = np.array([[3, 1], [0, 0]])
    fig = confusion_figure(matrix, ["cat", "dog"], "val confusion")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["3", "1", "0", "0"]
    shown = ax.images[0].get_array()
    np.testing.assert_allclose(shown, [[0.75, 0.25], [0.0, 0.0]])  # an empty row stays 0
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog"]
    assert figure_to_array(fig).shape[-1] == 3
    plt.close(fig)


def test_projection_separates_classes_along_the_first_component() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 2
    emb = torch.randn(40, 16, generator=g) * 0.1
    emb[:, 0] += labels.float() * 5  # the classes differ along one axis
    fig = projection_figure(emb, labels, ["a", "b"], title="t")
    ax = fig.axes[0]
    xs = [coll.get_offsets()[:, 0] for coll in ax.collections]
    assert len(xs) == 2 and (xs[0].max() < xs[1].min() or xs[1].max() < xs[0].min())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    plt.close(fig)
