"""A tiny LightningModule whose validation metric follows a script, for testing callbacks that
watch it (early stopping, best-checkpoint tracking)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


class ScriptedMetric(pl.LightningModule):
    """Logs ``values[current_epoch]`` as ``key`` at each validation, whatever the weights do.

    Attributes:
        val_epochs: The epochs validated, in order (the sanity check is not one).
    """

    def __init__(self, key: str, values: list[float]) -> None:
        super().__init__()
        self.key = key
        self.values = values
        self.layer = torch.nn.Linear(1, 1)
        self.val_epochs: list[int] = []

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        if not self.trainer.sanity_checking:
            self.val_epochs.append(self.current_epoch)
        self.log(self.key, self.values[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(2, 1)), batch_size=2)

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(2, 1)), batch_size=2)
