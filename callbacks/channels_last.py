"""ChannelsLast: the model's 4-D weights in channels-last memory order, for GPU convolutions.

With bf16/fp16 on tensor-core GPUs, cuDNN runs convolutions fastest on NHWC tensors; a
convolution whose weight is channels-last computes (and returns) channels-last, so converting
the module once is enough. On a CPU it changes nothing but memory layout.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch


class ChannelsLast(pl.Callback):
    """Convert the LightningModule to ``torch.channels_last`` before any loop runs."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)
