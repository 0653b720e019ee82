"""Shared test setup: caches and logs go to a temporary directory, never to $HOME."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# One intra-op thread: tests run small tensors, where extra threads mostly contend with
# DataLoader workers and other processes (measured ~10x slower steps on a busy 2-core box).
torch.set_num_threads(int(os.environ.get("LITLAB_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    cache = tmp_path_factory.getbasetemp() / "litlab-cache"
    monkeypatch.setenv("LITLAB_CACHE", str(cache))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield


@pytest.fixture
def shared_data() -> Path:
    """The real sample data folder (shared/data beside the checkout); skips when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"sample data folder {SHARED_DATA} is not present")
    return SHARED_DATA


@pytest.fixture
def cpu_trainer() -> Callable[..., pl.Trainer]:
    """A quiet CPU ``Trainer`` factory: no logger, progress bar or model summary; ``**options``
    are passed on (and may override those)."""

    def make(**options: Any) -> pl.Trainer:
        quiet = {
            "accelerator": "cpu",
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
        }
        return pl.Trainer(**{**quiet, **options})

    return make
