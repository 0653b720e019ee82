"""The base of every litlab DataModule: loader settings as hyperparameters and the setup skeleton.

A subclass says where its data is (:meth:`LitlabDataModule.data_path`), how to load it
(:meth:`~LitlabDataModule.load`) and how to split it (:meth:`~LitlabDataModule.split`); the base
saves every constructor argument with ``save_hyperparameters``, builds the three splits once in
``setup`` (every later call, on every rank, keeps them) and serves them with the loader settings.
A subclass whose data is uint8 images with class labels keeps the default
:meth:`~LitlabDataModule.datasets`: :class:`~litlab.datamodules.arrays.ArrayDataset` with the
shared classification transforms.

The model<->data contract is read from three properties, valid right after ``__init__`` (the CLI
links them to the model): ``num_classes``, ``in_chans`` and ``class_names``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from litlab.datamodules.arrays import ArrayDataset, ImageArrays
from litlab.datamodules.augment import classification_transforms
from torch.utils.data import DataLoader, Dataset, Sampler

#: ``(train, val, test)`` index arrays; ``val`` may be the same array as ``test``.
Parts = tuple[np.ndarray, np.ndarray, np.ndarray]


class LitlabDataModule(pl.LightningDataModule):
    """Loader settings, the ``setup`` skeleton and the loaders every litlab DataModule shares.

    Subclasses take these four settings through ``**loader`` (passing a default of their own
    where the paper's differs) and read every argument back from ``self.hparams``. A dataset
    whose classes or channels are fixed states them in :attr:`CLASS_NAMES` and :attr:`IN_CHANS`;
    one whose options decide them overrides the properties.

    Args:
        batch_size: Images per batch per process.
        num_workers: DataLoader worker processes (0 loads in the main process).
        pin_memory: Pin host memory for faster host-to-GPU copies; on by default when CUDA exists.
        seed: Seed of the splits (the embedded datasets have seeds of their own).
    """

    #: The dataset's class names in label order, when they are fixed.
    CLASS_NAMES: tuple[str, ...] = ()
    #: The image channels, when they are fixed.
    IN_CHANS: int = 0

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
        # Records this constructor's arguments and those of every subclass constructor above it.
        self.save_hyperparameters()
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    @property
    def batch_size(self) -> int:
        """Images per batch per process."""
        return int(self.hparams.batch_size)

    @property
    def num_workers(self) -> int:
        """DataLoader worker processes."""
        return int(self.hparams.num_workers)

    @property
    def pin_memory(self) -> bool:
        """Whether loaders pin host memory (``None`` resolves to whether CUDA exists)."""
        pin = self.hparams.pin_memory
        return torch.cuda.is_available() if pin is None else bool(pin)

    @property
    def seed(self) -> int:
        """Seed of the splits."""
        return int(self.hparams.seed)

    @property
    def class_names(self) -> list[str]:
        """Class names in label order (the CLI links them to the model's ``class_names``)."""
        if not self.CLASS_NAMES:
            raise AttributeError(f"{type(self).__name__} does not name its classes")
        return list(self.CLASS_NAMES)

    @property
    def num_classes(self) -> int:
        """Number of classes: ``len(class_names)``."""
        return len(self.class_names)

    @property
    def in_chans(self) -> int:
        """Channels of the images served (the CLI links them to the model's input channels)."""
        if not self.IN_CHANS:
            raise AttributeError(f"{type(self).__name__} does not state its image channels")
        return self.IN_CHANS

    def data_path(self) -> Path:
        """The dataset this module reads: the user's path, or the embedded one (made on first use)."""
        raise NotImplementedError(f"{type(self).__name__} does not say where its data is")

    def prepare_data(self) -> None:
        """Generate the embedded dataset once, before any process reads it (local rank 0)."""
        self.data_path()

    def load(self) -> Any:
        """Read the whole dataset (from caches where it can); called once by :meth:`setup`."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to load its data")

    def split(self, data: Any) -> Any:
        """The train / val / test parts of what :meth:`load` returned (usually :data:`Parts`)."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to split its data")

    def transforms(self) -> tuple[Any, Any]:
        """``(train, eval)`` transforms of the default :meth:`datasets`."""
        return classification_transforms(self.in_chans, bool(self.hparams.get("augment", False)))

    def datasets(self, data: ImageArrays, parts: Parts) -> tuple[Dataset, Dataset, Dataset]:
        """The train / val / test datasets: uint8 images and labels with the classification
        transforms (augmentation on training images only)."""
        train_tf, eval_tf = self.transforms()
        tfs = (train_tf, eval_tf, eval_tf)
        out = [
            ArrayDataset(data.images[i], data.labels[i], tf)
            for i, tf in zip(parts, tfs, strict=True)
        ]
        return out[0], out[1], out[2]

    def setup(self, stage: str | None = None) -> None:
        """Load, split and wrap the data once; later calls (any stage) keep the same splits."""
        if self.train_set is not None:
            return
        data = self.load()
        self.train_set, self.val_set, self.test_set = self.datasets(data, self.split(data))

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
