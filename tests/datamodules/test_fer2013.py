"""FER2013DataModule: Usage and random splits, batches, and the fix named when a split is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from litlab.datamodules.fer2013 import FER2013DataModule
from litlab.datamodules.fer2013_csv import FER2013_CLASSES
from litlab.datamodules.synthetic.fer2013 import write_fer2013_csv


def _training_only_csv(tmp_path: Path, rows: int = 5) -> Path:
    path = tmp_path / "fer.csv"
    path.write_text("emotion,pixels,Usage\n" + f"0,{' '.join(['7'] * 2304)},Training\n" * rows)
    return path


def test_datamodule_splits_and_batches(tmp_path):
    path = write_fer2013_csv(tmp_path / "e.csv", 400, seed=0)
    dm = FER2013DataModule(csv_path=str(path), batch_size=16, num_workers=0, augment=True)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("fit")  # safe twice
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (320, 40, 40)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 48, 48) and x.dtype.is_floating_point
    assert x.min() >= -1.0 and x.max() <= 1.0 and y.dtype.is_signed
    rnd = FER2013DataModule(csv_path=str(path), split="random", num_workers=0, seed=1)
    rnd.setup()
    sizes = (len(rnd.train_set), len(rnd.val_set), len(rnd.test_set))
    assert sizes == (320, 40, 40)
    assert dm.num_classes == 7 and dm.class_names == FER2013_CLASSES


def test_usage_split_without_public_rows_says_use_random(tmp_path):
    path = _training_only_csv(tmp_path)
    dm = FER2013DataModule(csv_path=str(path), num_workers=0)
    with pytest.raises(ValueError, match="--data.split=random"):
        dm.setup()
