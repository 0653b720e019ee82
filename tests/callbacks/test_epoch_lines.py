"""EpochLines: one plain line per epoch with its metrics, and bounded progress lines for predict."""

from __future__ import annotations

import io
import re

import lightning.pytorch as pl
import torch
from litlab.callbacks.epoch_lines import EpochLines, format_metrics
from torch.utils.data import DataLoader, TensorDataset


class LogsAtEpochEnd(pl.LightningModule):
    """Logs val/loss in validation and train/score in its own on_train_epoch_end."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def on_train_epoch_end(self):
        self.log("train/score", float(self.current_epoch) + 0.5, prog_bar=True)

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", 1.0 / (self.current_epoch + 1), prog_bar=True)

    def predict_step(self, batch, batch_idx):
        return self.layer(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _loader(n: int = 4) -> DataLoader:
    return DataLoader(TensorDataset(torch.ones(n, 1)), batch_size=1)


def test_one_line_per_epoch_with_the_modules_epoch_end_metrics(tmp_path) -> None:
    out = io.StringIO()
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False,
                         default_root_dir=tmp_path, callbacks=[EpochLines(out)])  # fmt: skip
    trainer.fit(LogsAtEpochEnd(), _loader(), _loader())
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split()[:2] for line in lines] == [["epoch", "0"], ["epoch", "1"], ["epoch", "2"]]
    for epoch, line in enumerate(lines):
        assert f"train/score={epoch + 0.5:.4g}" in line  # logged after callbacks' epoch end
        assert f"val/loss={1.0 / (epoch + 1):.4g}" in line
        assert "train/loss=" in line and "_step" not in line and "_epoch" not in line
        assert re.search(r"\(\d+\.\d s\)$", line)


def test_prediction_progress_is_a_bounded_number_of_lines(tmp_path) -> None:
    out = io.StringIO()
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                         default_root_dir=tmp_path, callbacks=[EpochLines(out, predict_lines=4)])  # fmt: skip
    trainer.predict(LogsAtEpochEnd(), _loader(23), return_predictions=False)
    lines = out.getvalue().splitlines()
    assert 4 <= len(lines) <= 5
    assert lines[-1].startswith("predict  23/23 batches (100 %)")


def test_metrics_are_formatted_by_name_without_step_values() -> None:
    text = format_metrics({"val/acc": torch.tensor(0.5), "train/loss_step": 1.0, "a/b_epoch": 2})
    assert text == "a/b=2 val/acc=0.5"
