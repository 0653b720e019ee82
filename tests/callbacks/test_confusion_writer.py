"""TestConfusionWriter: the JSON a test run leaves for reports matches the predictions."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from litlab.callbacks import confusion_writer
from sklearn.metrics import confusion_matrix
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassConfusionMatrix

PREDS = torch.tensor([0, 1, 1, 2, 2, 2, 0, 1, 0, 2])
TARGETS = torch.tensor([0, 1, 2, 2, 1, 2, 0, 0, 0, 2])


class _FixedPredictions(pl.LightningModule):
    """Predicts the class stored in each input, and keeps a test confusion matrix as modules do."""

    def __init__(self) -> None:
        super().__init__()
        self.class_names = ["a", "b", "c"]
        self.test_confusion = MulticlassConfusionMatrix(3)
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def test_step(self, batch, batch_idx):
        x, y = batch
        preds = x.long()
        self.test_confusion.update(preds, y)
        self.log("test/acc", (preds == y).float().mean())

    def on_test_epoch_end(self) -> None:
        self.test_confusion.reset()  # the writer must read it before this


class _Described(pl.LightningDataModule):
    def test_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(PREDS.float(), TARGETS), batch_size=4)

    def describe(self) -> dict:
        return {"test": len(TARGETS), "duplicates": {"exact": 1}}


def _trainer(tmp_path: Path) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", default_root_dir=str(tmp_path), logger=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      callbacks=[confusion_writer.TestConfusionWriter()])  # fmt: skip


def test_writes_the_matrix_metrics_and_data_description(tmp_path: Path) -> None:
    _trainer(tmp_path).test(_FixedPredictions(), datamodule=_Described(), verbose=False)
    written = json.loads((tmp_path / confusion_writer.CONFUSION_FILE).read_text())
    np.testing.assert_array_equal(written["matrix"], confusion_matrix(TARGETS, PREDS))
    assert written["classes"] == ["a", "b", "c"]
    assert written["metrics"]["test/acc"] == float((PREDS == TARGETS).float().mean())
    assert written["data"] == {"test": 10, "duplicates": {"exact": 1}}
    assert written["fast_dev_run"] is False


def test_a_module_without_a_test_confusion_is_warned_about(tmp_path: Path, caplog) -> None:
    class _NoConfusion(_FixedPredictions):
        def __init__(self) -> None:
            super().__init__()
            del self.test_confusion

        def test_step(self, batch, batch_idx):
            pass

        def on_test_epoch_end(self) -> None:
            pass

    with caplog.at_level(logging.WARNING, logger=confusion_writer.__name__):
        _trainer(tmp_path).test(_NoConfusion(), datamodule=_Described(), verbose=False)
    assert "_NoConfusion has no test_confusion metric; nothing written" in caplog.text
    assert not (tmp_path / confusion_writer.CONFUSION_FILE).exists()
