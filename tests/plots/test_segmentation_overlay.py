"""Segmentation overlays: only foreground classes are tinted, tiles laid out with gaps."""

from __future__ import annotations

import numpy as np
import torch
from litlab.plots.segmentation_overlay import overlay_grid


def test_overlay_grid_colours_only_foreground():
    images = torch.linspace(0, 1, 16).reshape(1, 1, 4, 4)
    targets = torch.zeros(1, 4, 4, dtype=torch.long)
    targets[0, :2] = 1
    preds = torch.zeros(1, 4, 4, dtype=torch.long)
    grid = overlay_grid(images, targets, preds, gap=1)
    assert grid.shape == (4, 14, 3) and grid.dtype == np.uint8
    image, truth, pred = grid[:, 0:4], grid[:, 5:9], grid[:, 10:14]
    assert np.array_equal(image[..., 0], image[..., 1])  # gray image
    assert not np.array_equal(truth[:2], image[:2])  # liver rows tinted
    assert np.array_equal(truth[2:], image[2:])  # background untouched
    assert np.array_equal(pred, image)  # nothing predicted, nothing tinted
    assert np.all(grid[:, 4] == 255)  # white gap


def test_rows_are_capped_and_rgb_images_kept() -> None:
    images = torch.rand(5, 3, 6, 8)
    masks = torch.randint(0, 3, (5, 6, 8))
    grid = overlay_grid(images, masks, masks, max_rows=2, gap=2)
    assert grid.shape == (2 * 8 - 2, 3 * 10 - 2, 3)
    # truth and prediction agree, so their tiles are identical
    assert np.array_equal(grid[:6, 10:18], grid[:6, 20:28])
