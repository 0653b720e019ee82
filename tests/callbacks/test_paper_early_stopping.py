"""PaperEarlyStopping: the paper's patience-5 rule on a scripted val/loss sequence."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import lightning.pytorch as pl
import pytest
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from litlab.callbacks.paper_early_stopping import PaperEarlyStopping

from tests.callbacks.scripted_metric import ScriptedMetric

LOGGER = "litlab.callbacks.paper_early_stopping"
PRESETS = Path(__file__).resolve().parents[2] / "litlab" / "presets"


def _fit(tmp_path: Path, losses: list[float], max_epochs: int, **es_kwargs):
    stopper = PaperEarlyStopping(**es_kwargs)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/loss", mode="min", save_top_k=1)
    module = ScriptedMetric("val/loss", losses)
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        callbacks=[stopper, ckpt],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=1,  # the sanity check must not count as an epoch
        accelerator="cpu",
    )
    trainer.fit(module)
    return trainer, stopper, ckpt, module


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


@pytest.mark.parametrize("check_on_train_epoch_end", [None, False])
def test_stops_five_epochs_after_best_and_keeps_best(tmp_path, caplog, check_on_train_epoch_end):
    caplog.set_level(logging.INFO, logger=LOGGER)
    losses = [1.0, 0.8, 0.9, 0.85, 0.95, 0.9, 0.99, 0.5, 0.4, 0.3]
    trainer, stopper, ckpt, module = _fit(
        tmp_path, losses, max_epochs=len(losses), check_on_train_epoch_end=check_on_train_epoch_end
    )

    # Best at epoch 1 (0.8); epochs 2..6 do not improve; the 5th miss stops the run.
    assert module.val_epochs == [0, 1, 2, 3, 4, 5, 6]
    assert stopper.stopped_epoch == 6
    assert trainer.current_epoch == 7  # the loop counted epoch 6 as finished, then stopped
    assert _messages(caplog) == [
        "Loss decreased from inf to 1.000!",
        "Loss decreased from 1.000 to 0.800!",
        "Loss did not decrease for 1 epoch(s)!",
        "Loss did not decrease for 2 epoch(s)!",
        "Loss did not decrease for 3 epoch(s)!",
        "Loss did not decrease for 4 epoch(s)!",
        "Loss did not decrease for 5 epoch(s)!",
        "Stopping training process because loss value did not decrease for 5 epochs!",
    ]
    assert re.search(r"epoch=1-", Path(ckpt.best_model_path).name), ckpt.best_model_path
    assert ckpt.best_model_score.item() == pytest.approx(0.8)


def test_improvement_resets_the_count(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    losses = [1.0, 1.1, 1.2, 0.9, 1.0, 0.95]
    _, stopper, ckpt, module = _fit(tmp_path, losses, max_epochs=len(losses), patience=3)

    assert module.val_epochs == [0, 1, 2, 3, 4, 5]  # never 3 misses in a row
    assert stopper.stopped_epoch == 0
    assert _messages(caplog) == [
        "Loss decreased from inf to 1.000!",
        "Loss did not decrease for 1 epoch(s)!",
        "Loss did not decrease for 2 epoch(s)!",
        "Loss decreased from 1.000 to 0.900!",
        "Loss did not decrease for 1 epoch(s)!",
        "Loss did not decrease for 2 epoch(s)!",
    ]
    assert re.search(r"epoch=3-", Path(ckpt.best_model_path).name), ckpt.best_model_path


def test_silent_under_fast_dev_run(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    trainer = pl.Trainer(
        fast_dev_run=True,
        callbacks=[PaperEarlyStopping()],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        accelerator="cpu",
    )
    trainer.fit(ScriptedMetric("val/loss", [1.0]))
    assert _messages(caplog) == []


def test_defaults_are_the_papers():
    stopper = PaperEarlyStopping()
    assert (stopper.monitor, stopper.mode, stopper.patience) == ("val/loss", "min", 5)


@pytest.mark.parametrize("preset", ["liver-deeplabv3plus", "liver-resnet"])
def test_liver_presets_use_the_papers_rule(preset):
    config = yaml.safe_load((PRESETS / f"{preset}.yaml").read_text())
    (callback,) = [
        c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("PaperEarlyStopping")
    ]
    assert callback["class_path"] == "litlab.callbacks.paper_early_stopping.PaperEarlyStopping"
    stopper = PaperEarlyStopping(**callback.get("init_args", {}))
    assert (stopper.monitor, stopper.mode, stopper.patience) == ("val/loss", "min", 5)


@pytest.mark.parametrize(
    ("losses", "kwargs", "reason"),
    [
        ([1.0, float("nan"), 0.5], {}, "val/loss = nan is not finite"),
        ([1.0, 0.2, 0.1], {"stopping_threshold": 0.3}, "Stopping threshold reached"),
    ],
)
def test_a_stop_for_another_reason_says_why(tmp_path, caplog, losses, kwargs, reason):
    caplog.set_level(logging.INFO, logger=LOGGER)
    _, stopper, _, module = _fit(tmp_path, losses, max_epochs=len(losses), **kwargs)

    assert module.val_epochs == [0, 1]  # stopped after epoch 1, not at patience
    (warning,) = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert warning.getMessage().startswith("Stopping training process: ")
    assert reason in warning.getMessage(), warning.getMessage()
