"""Saving a run's images: PNG files under the run folder, and the same image in W&B when it logs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

if TYPE_CHECKING:  # Lightning loads where a run logs, not where a report draws a figure
    import lightning.pytorch as pl

log = logging.getLogger(__name__)


def figure_to_array(fig: Figure) -> np.ndarray:
    """Render a matplotlib figure to an RGB uint8 array of shape ``(H, W, 3)``."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def image_dir(module: pl.LightningModule) -> Path:
    """``<trainer.default_root_dir>/images``, where a run's pictures go."""
    return Path(module.trainer.default_root_dir) / "images"


def log_image(module: pl.LightningModule, key: str, image: np.ndarray | Figure) -> Path | None:
    """Save an image as ``<default_root_dir>/images/<key>-epoch<N>.png`` and send it to W&B.

    Only rank zero writes. Figures are closed after saving.

    Args:
        module: The LightningModule whose trainer owns the run directory and loggers.
        key: Logged name, e.g. ``"val/confusion_matrix"``; ``/`` becomes ``_`` in the file name.
        image: An RGB/gray uint8 array ``(H, W[, 3])`` or a matplotlib figure.

    Returns:
        The PNG path on rank zero, else ``None``.
    """
    trainer = module.trainer
    if not trainer.is_global_zero:
        if isinstance(image, Figure):
            plt.close(image)
        return None
    array = figure_to_array(image) if isinstance(image, Figure) else image
    if isinstance(image, Figure):
        plt.close(image)
    out = image_dir(module)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{key.replace('/', '_')}-epoch{trainer.current_epoch:03d}.png"
    plt.imsave(path, array, cmap="gray" if array.ndim == 2 else None)
    from lightning.pytorch.loggers import WandbLogger

    for logger in module.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[array], step=trainer.global_step)
    return path
