"""The DataModule base: hyperparameters, the setup skeleton, and the contract valid after __init__."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from litlab.datamodules.arrays import ArrayDataset, LabelledImages
from litlab.datamodules.autism import AutismDataModule, AutismSegmentedDataModule
from litlab.datamodules.base import LitlabDataModule, Parts
from litlab.datamodules.cache import cache_root
from litlab.datamodules.ckplus import CKPlusDataModule
from litlab.datamodules.face_expression import FaceExpressionDataModule
from litlab.datamodules.face_segmentation import FaceMaskDataModule
from litlab.datamodules.fer2013 import FER2013DataModule
from litlab.datamodules.liver import LiverDataModule


class _Counting(LitlabDataModule):
    """12 gray 8x8 images of 3 classes, split 6/3/3 in order."""

    def __init__(self, augment: bool = False, **loader) -> None:
        super().__init__(**loader)
        self.loads = 0

    @property
    def class_names(self) -> list[str]:
        return ["a", "b", "c"]

    @property
    def in_chans(self) -> int:
        return 1

    def load(self) -> LabelledImages:
        self.loads += 1
        images = np.arange(12 * 64, dtype=np.uint8).reshape(12, 8, 8)
        return LabelledImages(images, np.arange(12) % 3)

    def split(self, data: LabelledImages) -> Parts:
        return np.arange(6), np.arange(6, 9), np.arange(9, 12)


def test_every_argument_is_a_hyperparameter_and_setup_runs_once() -> None:
    dm = _Counting(augment=True, batch_size=4, num_workers=0, seed=3)
    assert dict(dm.hparams) == {
        "augment": True, "batch_size": 4, "num_workers": 0, "pin_memory": None, "seed": 3,
    }  # fmt: skip
    assert (dm.batch_size, dm.num_workers, dm.seed) == (4, 0, 3)
    assert dm.pin_memory == torch.cuda.is_available()
    dm.setup("fit")
    first = dm.train_set
    dm.setup("test")
    assert dm.loads == 1 and dm.train_set is first
    assert isinstance(first, ArrayDataset) and [
        len(s) for s in (first, dm.val_set, dm.test_set)
    ] == [6, 3, 3]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 1, 8, 8) and x.dtype == torch.float32 and x.min() >= -1
    assert dm.num_classes == 3
    with pytest.raises(ValueError, match="batch_size"):
        _Counting(batch_size=0)


def test_a_lone_last_training_image_is_dropped_and_other_splits_keep_every_image() -> None:
    dm = _Counting(batch_size=5, num_workers=0)  # 6 training images: batches of 5 and 1
    dm.setup("fit")
    assert [len(y) for _, y in dm.train_dataloader()] == [5]
    assert sum(len(y) for _, y in dm.val_dataloader()) == 3
    dm = _Counting(batch_size=4, num_workers=0)  # 6 = 4 + 2: nothing dropped
    dm.setup("fit")
    assert sorted(len(y) for _, y in dm.train_dataloader()) == [2, 4]
    dm.trainer = SimpleNamespace(world_size=2)  # DDP: 3 images per process = 2 + a lone 1
    dm.hparams.batch_size = 2
    assert dm.train_dataloader().drop_last


def test_subclass_hyperparameters_hold_their_own_and_the_loader_settings() -> None:
    dm = FER2013DataModule(split="random", num_workers=0, seed=5)
    assert dm.hparams.split == "random" and dm.hparams.batch_size == 64  # FER2013's own default
    assert dm.hparams.num_workers == 0 and dm.seed == 5
    seg = AutismSegmentedDataModule(root="faces", background="blur", image_size=32, seed=2)
    assert seg.hparams.root == "faces" and seg.hparams.background == "blur" and seg.seed == 2


CONTRACT = [
    (FER2013DataModule, {}, 7, 1, "angry"),
    (CKPlusDataModule, {}, 7, 1, "anger"),
    (CKPlusDataModule, {"input_mode": "both"}, 7, 2, "anger"),
    (FaceExpressionDataModule, {}, 7, 1, "angry"),
    (AutismDataModule, {}, 2, 3, "autistic"),
    (AutismSegmentedDataModule, {}, 2, 3, "autistic"),
    (FaceMaskDataModule, {}, 2, 3, "background"),
    (LiverDataModule, {}, 2, 1, "background"),
    (LiverDataModule, {"num_classes": 3}, 3, 1, "background"),
]


@pytest.mark.parametrize(("cls", "kwargs", "num_classes", "in_chans", "first"), CONTRACT)
def test_contract_is_known_right_after_init_without_touching_data(
    cls: type, kwargs: dict, num_classes: int, in_chans: int, first: str
) -> None:
    before = sorted(cache_root().rglob("*")) if cache_root().is_dir() else []
    dm = cls(**kwargs)
    assert (dm.num_classes, dm.in_chans) == (num_classes, in_chans)
    assert len(dm.class_names) == num_classes and dm.class_names[0] == first
    after = sorted(cache_root().rglob("*")) if cache_root().is_dir() else []
    assert after == before  # nothing generated or decoded


def _folders(root: Path, names: list[str]) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
        cv2.imwrite(str(root / name / "S001_001_00000001.png"), np.zeros((8, 8), np.uint8))
    return root


def test_class_names_of_a_folder_root_are_its_class_folders(tmp_path: Path) -> None:
    ck = CKPlusDataModule(root=str(_folders(tmp_path / "ck", ["sad", "angry", "happy"])))
    assert ck.class_names == ["angry", "happy", "sad"] and ck.num_classes == 3
    kaggle = _folders(tmp_path / "fe" / "train", ["x", "y"]).parent
    _folders(kaggle / "validation", ["x", "y"])
    assert FaceExpressionDataModule(root=str(kaggle)).class_names == ["x", "y"]
    chosen = FaceExpressionDataModule(root=str(kaggle), classes=["y", "x"])
    assert chosen.class_names == ["y", "x"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _ = CKPlusDataModule(root=str(tmp_path / "missing")).class_names


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: CKPlusDataModule(split="bogus"),
            r"split must be 'random' or 'subject', got 'bogus'",
        ),
        (
            lambda: FaceExpressionDataModule(source="csv"),
            r"source must be 'folders' or 'fer2013_csv', got 'csv' "
            r"\(--data.source=folders\|fer2013_csv\)",
        ),
        (
            lambda: FaceMaskDataModule(box_method="dlib"),
            r"box_method must be 'auto', 'haar', 'skin' or 'centre', got 'dlib'",
        ),
        (lambda: AutismDataModule(image_size=8), r"image_size must be >= 16, got 8"),
        (lambda: LiverDataModule(image_size=4), r"image_size must be >= 8, got 4"),
        (lambda: FER2013DataModule(batch_size=0), r"batch_size must be >= 1, got 0"),
    ],
)
def test_an_option_outside_its_values_is_refused_naming_option_value_and_choices(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make()
