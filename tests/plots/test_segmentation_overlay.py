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


def test_slice_dice_and_titled_figure() -> None:
    from litlab.plots.segmentation_overlay import overlay_figure, slice_dice

    targets = torch.zeros(2, 8, 8, dtype=torch.long)
    targets[:, 2:6, 2:6] = 1  # 16 pixels
    preds = targets.clone()
    preds[0, 2:4] = 0  # 8 of 16 found: Dice 2*8 / (8 + 16)
    preds[1] = 0
    targets[1] = 0  # nothing in truth or prediction
    dice = slice_dice(targets, preds, 2)
    assert dice[0] == 2 * 8 / 24 and np.isnan(dice[1])
    fig = overlay_figure(torch.rand(2, 1, 8, 8), targets, preds, 2, ["a, slice 1", "b, slice 4"])
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["image", "truth", "prediction (Dice 0.667)"]
    assert titles[5] == "prediction (both empty)"
    assert [fig.axes[0].get_ylabel(), fig.axes[3].get_ylabel()] == ["a, slice 1", "b, slice 4"]


def test_selection_keeps_the_fullest_slice_of_each_first_volume() -> None:
    from litlab.plots.overlay_selection import OverlaySelection

    selection = OverlaySelection(max_rows=2)
    masks = torch.zeros(5, 4, 4, dtype=torch.long)
    for i, area in enumerate([0, 3, 1, 5, 2]):
        masks[i].view(-1)[:area] = 1
    meta = {
        "volume": torch.tensor([0, 0, 1, 1, 2]),
        "slice": torch.tensor([10, 11, 12, 13, 14]),
        "patient": ["p0", "p0", "p1", "p1", "p2"],
    }
    selection.offer(
        torch.rand(3, 1, 4, 4), masks[:3], masks[:3], {k: v[:3] for k, v in meta.items()}
    )
    selection.offer(
        torch.rand(2, 1, 4, 4), masks[3:], masks[3:], {k: v[3:] for k, v in meta.items()}
    )
    images, targets, preds, labels = selection.take()
    assert labels == ["p0, slice 11", "p1, slice 13"]  # volume 2 came third: left out
    assert targets.flatten(1).sum(1).tolist() == [3, 5]
    assert selection.take() is None  # taken: the next epoch starts afresh
    plain = OverlaySelection(max_rows=2)
    plain.offer(torch.rand(3, 1, 4, 4), masks[:3], masks[:3])
    assert plain.take()[3] == ["sample 0", "sample 1"]
