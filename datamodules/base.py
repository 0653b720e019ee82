"""What every litlab DataModule shares: loaders, cache location, seeded splits."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """Directory for generated datasets and parsed-data caches.

    ``$LITLAB_CACHE`` wins; otherwise ``$XDG_CACHE_HOME/litlab`` or ``~/.cache/litlab``.
    """
    env = os.environ.get("LITLAB_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "litlab"


def seeded_permutation(n: int, seed: int) -> np.ndarray:
    """A permutation of ``range(n)`` drawn from a seeded ``torch.Generator``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g).numpy()


def split_by_fractions(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split ``range(n)`` into seeded, disjoint index arrays of the given fractions.

    The fractions must sum to 1; rounding error goes to the last part.
    """
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {list(fractions)}")
    perm = seeded_permutation(n, seed)
    bounds = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    return [np.sort(p) for p in np.split(perm, bounds)]


class LitlabDataModule(pl.LightningDataModule):
    """Base DataModule: subclasses fill ``train_set``/``val_set``/``test_set`` in ``setup``.

    Args:
        batch_size: Images per batch per process.
        num_workers: DataLoader worker processes (0 loads in the main process).
        pin_memory: Pin host memory for faster host-to-GPU copies; on by default when CUDA exists.
        seed: Seed for splits and synthetic data.
    """

    def __init__(
        self,
        batch_size: int = 32,
        num_workers: int = 2,
        pin_memory: bool | None = None,
        seed: int = 42,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.seed = seed
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def _loader(
        self,
        dataset: Dataset | None,
        shuffle: bool,
        sampler: Sampler | None = None,
        batch_sampler: Sampler | None = None,
    ) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not built this split yet")
        if batch_sampler is not None:
            return DataLoader(
                dataset,
                batch_sampler=batch_sampler,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                persistent_workers=self.num_workers > 0,
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
