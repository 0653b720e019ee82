"""The segmented arm's DataModule serves a background-removed copy and refuses one made otherwise."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from litlab.datamodules.autism import AutismSegmentedDataModule
from litlab.datamodules.autism_copy import (
    MANIFEST,
    SegmentedCopy,
    read_segmented_copy,
    write_manifest,
)
from litlab.datamodules.synthetic.autism import write_autism_folders

COUNTS = {"train": 4, "valid": 2, "test": 2}


def _copy(root: Path, out: Path, background: str = "zero", size: int = 32) -> SegmentedCopy:
    """A copy as the remove-background step writes one (a centred square stands in for the
    segmenter's mask: this side of the workflow never sees a model)."""
    n = 0
    for path in sorted(root.rglob("*.jpg")):
        rel = path.relative_to(root).with_suffix(".png")
        image = cv2.resize(cv2.imread(str(path)), (size, size))
        mask = np.zeros((size, size), np.uint8)
        mask[8:24, 8:24] = 255
        image[mask == 0] = 0
        for folder, pixels in (("images", image), ("masks", mask)):
            (out / folder / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / folder / rel), pixels)
        n += 1
    copy = SegmentedCopy(
        out, root.resolve(), size, background, 8.0, "seg.ckpt", "DeepLabV3Plus/resnet18", n
    )
    write_manifest(copy)
    return copy


def test_serves_the_copy_with_the_raw_arm_split_and_names_the_raw_files(tmp_path: Path) -> None:
    root = write_autism_folders(tmp_path / "faces", COUNTS)
    copy = _copy(root, tmp_path / "copy")
    assert read_segmented_copy(copy.root) == copy
    dm = AutismSegmentedDataModule(root=str(root), copy_root=str(copy.root), image_size=32,
                                   batch_size=4, num_workers=0)  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and float(x[:, :, 0, 0].max()) == -1.0  # black background
    info = dm.describe()
    assert info["arm"] == "segmented" and info["masks_root"] == str(copy.masks_root)
    assert info["data_root"] == str(copy.images_root) and info["segmenter"] == copy.segmenter
    assert all(Path(p).parent.parent.parent == root for p in info["source_test_paths"])
    assert info["duplicates"]["test"] == 4


def test_a_missing_or_mismatched_copy_is_refused_with_the_fix(tmp_path: Path) -> None:
    root = write_autism_folders(tmp_path / "faces", COUNTS)
    with pytest.raises(FileNotFoundError, match="litlab workflow segment-then-classify"):
        AutismSegmentedDataModule(root=str(root), image_size=32).prepare_data()
    with pytest.raises(FileNotFoundError, match=MANIFEST):
        AutismSegmentedDataModule(root=str(root), copy_root=str(tmp_path)).prepare_data()
    copy = _copy(root, tmp_path / "copy")
    blur = AutismSegmentedDataModule(root=str(root), copy_root=str(copy.root), image_size=32,
                                     background="blur")  # fmt: skip
    with pytest.raises(ValueError, match="background: the copy's is zero, the options say blur"):
        blur.prepare_data()
    other = write_autism_folders(tmp_path / "other", COUNTS)
    with pytest.raises(ValueError, match="source folder"):
        AutismSegmentedDataModule(root=str(other), copy_root=str(copy.root), image_size=32).setup()
    with pytest.raises(ValueError, match="background"):
        AutismSegmentedDataModule(background="grey")


def test_prediction_takes_a_copy_and_refuses_raw_faces(tmp_path: Path) -> None:
    root = write_autism_folders(tmp_path / "faces", COUNTS)
    copy = _copy(root, tmp_path / "copy")
    dm = AutismSegmentedDataModule(root=str(root), copy_root=str(copy.root), image_size=32)
    with pytest.raises(ValueError, match="litlab workflow remove-background --checkpoint seg.ckpt"):
        dm.predict_items(root / "test")
    wrong = _copy(root, tmp_path / "big", size=64)
    with pytest.raises(ValueError, match="64 px"):
        dm.predict_items(wrong.root)
