"""FER2013DataModule: the Kaggle CSV's 48x48 gray faces, split by Usage or resplit at random."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from litlab.datamodules.base import LitlabDataModule, Parts, check_choice
from litlab.datamodules.batch_augment import AUGMENT_ON
from litlab.datamodules.embedded import embedded_fer2013_csv
from litlab.datamodules.fer2013_csv import (
    FER2013_CLASSES,
    USAGES,
    Fer2013Arrays,
    load_fer2013_cached,
)
from litlab.datamodules.splits import can_stratify, holdout_then_halve

from litlab.errors import BadInputError

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("usage", "random")


class FER2013DataModule(LitlabDataModule):
    """FER2013 from the Kaggle CSV, or an embedded drawn-faces CSV in the same format.

    Args:
        csv_path: The Kaggle ``fer2013.csv``; ``None`` uses the embedded dataset.
        split: ``"usage"`` (Training / PublicTest / PrivateTest as train / val / test) or
            ``"random"`` (the paper's seeded, stratified 80/10/10 resplit of all rows).
        augment: The paper's augmentation on the training split.
        augment_on: ``"sample"``: per image in the DataLoader workers (torchvision v2, the
            paper's path); ``"batch"``: the loaders move uint8 and the same augmentation runs
            on whole batches on their device after transfer (GPU-friendly).
        skip_bad_rows: Skip unusable CSV rows (counted in the log) instead of raising.
        synthetic_rows: Rows in the embedded dataset (ignored with ``csv_path``).
        batch_size: Images per batch per process.
        **loader: ``num_workers``, ``pin_memory``, ``seed``: see :class:`LitlabDataModule`.

    Shape:
        batch: ``image (B, 1, 48, 48)`` float in ``[-1, 1]``, ``target (B,)`` int64.
    """

    CLASS_NAMES = tuple(FER2013_CLASSES)
    IN_CHANS = 1
    INPUT_SIZE = 48

    def __init__(
        self,
        csv_path: str | None = None,
        split: str = "usage",
        augment: bool = True,
        augment_on: str = "sample",
        skip_bad_rows: bool = False,
        synthetic_rows: int = 3500,
        batch_size: int = 64,
        **loader: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **loader)
        check_choice("split", split, SPLITS)
        check_choice("augment_on", augment_on, AUGMENT_ON)

    def data_path(self) -> Path:
        """``csv_path``, or the embedded CSV (generated on first use)."""
        if self.hparams.csv_path:
            return Path(self.hparams.csv_path)
        return embedded_fer2013_csv(self.hparams.synthetic_rows)

    def prepare_data(self) -> None:
        """Parse the CSV into the cache once (local rank 0)."""
        self.load()

    def load(self) -> Fer2013Arrays:
        return load_fer2013_cached(self.data_path(), self.hparams.skip_bad_rows)

    def split(self, data: Fer2013Arrays) -> Parts:
        if self.hparams.split == "usage":
            train, val, test = (np.flatnonzero(data.usage == u) for u in USAGES)
            for name, idx in zip(USAGES, (train, val, test), strict=True):
                if len(idx) == 0:
                    raise ValueError(
                        f"{self.data_path()} has no {name} rows, so split='usage' cannot form all "
                        "three splits; use --data.split=random for a seeded 80/10/10 resplit"
                    )
        else:
            stratify = can_stratify(data.labels, 10)
            try:
                train, val, test = holdout_then_halve(data.labels, 0.2, self.seed, stratify)
            except BadInputError as err:
                raise BadInputError(
                    f"{self.data_path()} has too few usable rows for split='random': {err}; "
                    "add rows, or use --data.split=usage with Training, PublicTest and "
                    "PrivateTest rows"
                ) from err
        log.info(
            "FER2013 %s split: %d train / %d val / %d test images",
            self.hparams.split, len(train), len(val), len(test),
        )  # fmt: skip
        return train, val, test
