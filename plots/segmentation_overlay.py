"""Segmentation overlays: image, true mask and predicted mask side by side, classes tinted.

:func:`overlay_grid` lays the tiles out as one array; :func:`overlay_figure` draws them as a
figure with the columns titled image / truth / prediction and each row's slice Dice.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from litlab.metrics.functional.volume_scores import dice_iou, slice_counts  # noqa: E402

# One colour per class for overlays (RGB uint8); class 0 (background) is left uncoloured.
_PALETTE = np.array(
    [
        [0, 0, 0],
        [230, 57, 70],
        [42, 157, 143],
        [233, 196, 106],
        [69, 123, 157],
        [244, 162, 97],
        [131, 56, 236],
        [255, 0, 110],
    ],
    dtype=np.uint8,
)


def _to_display(image: np.ndarray) -> np.ndarray:
    """Float image ``(C, H, W)`` -> uint8 RGB ``(H, W, 3)``, min-max scaled for visibility."""
    gray = image[0] if image.shape[0] != 3 else image.transpose(1, 2, 0)
    lo, hi = float(gray.min()), float(gray.max())
    scaled = (gray - lo) / (hi - lo) if hi > lo else np.zeros_like(gray)
    rgb = (scaled * 255).round().astype(np.uint8)
    return np.repeat(rgb[..., None], 3, axis=-1) if rgb.ndim == 2 else rgb


def _blend(rgb: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Tint the pixels of each non-background class in ``mask`` ``(H, W)`` with its palette colour."""
    colours = _PALETTE[np.asarray(mask) % len(_PALETTE)].astype(np.float32)
    out = rgb.astype(np.float32)
    fg = (mask > 0)[..., None]
    out = np.where(fg, (1 - alpha) * out + alpha * colours, out)
    return out.round().astype(np.uint8)


def overlay_grid(
    images: torch.Tensor,
    targets: torch.Tensor,
    preds: torch.Tensor,
    max_rows: int = 4,
    gap: int = 2,
) -> np.ndarray:
    """Lay out image / truth / prediction side by side, one sample per row.

    Args:
        images: ``(B, C, H, W)`` float images (any range; each is min-max scaled).
        targets: ``(B, H, W)`` integer truth masks.
        preds: ``(B, H, W)`` integer predicted masks.
        max_rows: Show at most this many samples.
        gap: White pixels between tiles.

    Returns:
        RGB uint8 array ``(rows * (H + gap) - gap, 3 * (W + gap) - gap, 3)``.
    """
    imgs = images.detach().float().cpu().numpy()
    truth = targets.detach().cpu().numpy()
    pred = preds.detach().cpu().numpy()
    rows = min(max_rows, imgs.shape[0])
    h, w = imgs.shape[-2:]
    grid = np.full((rows * (h + gap) - gap, 3 * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for r in range(rows):
        base = _to_display(imgs[r])
        tiles = (base, _blend(base, truth[r]), _blend(base, pred[r]))
        for c, tile in enumerate(tiles):
            y, x = r * (h + gap), c * (w + gap)
            grid[y : y + h, x : x + w] = tile
    return grid


def slice_dice(targets: torch.Tensor, preds: torch.Tensor, num_classes: int) -> list[float]:
    """Dice of the foreground (class 1 for 2 classes, every class above 0 otherwise) per slice;
    NaN where neither mask has any.

    Args:
        targets: ``(B, H, W)`` integer truth masks.
        preds: ``(B, H, W)`` integer predicted masks.
        num_classes: Number of classes, background included.
    """
    dice, _ = dice_iou(slice_counts(preds.long().cpu(), targets.long().cpu(), num_classes)[:, 0])
    return [float(d) for d in dice]


def overlay_figure(
    images: torch.Tensor,
    targets: torch.Tensor,
    preds: torch.Tensor,
    num_classes: int,
    row_titles: list[str] | None = None,
    title: str = "",
) -> plt.Figure:
    """Image / truth / prediction per row, columns titled, each prediction titled with its Dice.

    Args:
        images: ``(B, C, H, W)`` float images (each min-max scaled for display).
        targets: ``(B, H, W)`` integer truth masks.
        preds: ``(B, H, W)`` integer predicted masks.
        num_classes: Number of classes, for the per-slice Dice (:func:`slice_dice`).
        row_titles: One label per row (e.g. ``"volume-3, slice 41"``), written left of the row.
        title: Figure title.

    Returns:
        The figure (the caller saves and closes it, e.g. with ``log_image``).
    """
    imgs = images.detach().float().cpu().numpy()
    truth, pred = targets.detach().cpu().numpy(), preds.detach().cpu().numpy()
    dice = slice_dice(targets, preds, num_classes)
    rows = imgs.shape[0]
    fig, axes = plt.subplots(rows, 3, figsize=(7.5, 2.5 * rows + 0.4), dpi=100, squeeze=False)
    for r in range(rows):
        base = _to_display(imgs[r])
        score = "both empty" if math.isnan(dice[r]) else f"Dice {dice[r]:.3f}"
        tiles = (
            ("image", base),
            ("truth", _blend(base, truth[r])),
            (f"prediction ({score})", _blend(base, pred[r])),
        )
        for c, (name, tile) in enumerate(tiles):
            ax = axes[r, c]
            ax.imshow(tile)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name, fontsize=9)
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
