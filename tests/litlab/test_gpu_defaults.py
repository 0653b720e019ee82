"""GPU-ready defaults: chosen when CUDA is present, shown by --print_config, overridable."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from litlab.callbacks.channels_last import ChannelsLast
from litlab.datamodules.fer2013 import FER2013DataModule

from litlab.cli import main


def _printed_config(capsys, *overrides: str) -> str:
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", "fer2013-resnet50", *overrides, "--print_config"])
    assert done.value.code in (0, None)
    return capsys.readouterr().out


@pytest.fixture
def cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


def test_with_cuda_the_preset_picks_bf16_and_channels_last(cuda, capsys):
    config = _printed_config(capsys)
    assert "precision: bf16-mixed" in config and "channels_last: true" in config
    assert FER2013DataModule().pin_memory  # pin_memory: null means on with CUDA


def test_each_gpu_default_can_be_overridden(cuda, capsys):
    config = _printed_config(
        capsys, "--trainer.precision=32-true", "--channels_last=false", "--data.pin_memory=false"
    )
    assert "precision: 32-true" in config and "channels_last: false" in config
    assert "pin_memory: false" in config


def test_without_cuda_the_defaults_stay_fp32(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = _printed_config(capsys)
    assert "precision: 32-true" in config and "channels_last: false" in config
    assert not FER2013DataModule().pin_memory


def test_channels_last_converts_the_model_weights():
    model = pl.LightningModule()
    model.conv = torch.nn.Conv2d(3, 8, 3)
    ChannelsLast().setup(None, model, "fit")
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not model.conv.weight.is_contiguous()


def test_with_cuda_the_loaders_pin_memory_and_keep_their_workers(cuda, tmp_path, monkeypatch):
    monkeypatch.setenv("LITLAB_CACHE", str(tmp_path))
    dm = FER2013DataModule(synthetic_rows=60, batch_size=8, num_workers=1)
    dm.setup("fit")
    for loader in (dm.train_dataloader(), dm.val_dataloader()):  # built, not iterated: no GPU
        assert loader.pin_memory and loader.persistent_workers
    off = FER2013DataModule(synthetic_rows=60, batch_size=8, num_workers=1, pin_memory=False)
    off.setup("fit")
    assert not off.train_dataloader().pin_memory
