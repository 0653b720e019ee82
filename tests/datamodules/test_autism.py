"""Autism faces: the drawn stand-in, the Kaggle layout, both splits and the logged duplicates."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from litlab.datamodules.autism import AutismDataModule, index_autism_layout
from litlab.datamodules.embedded import embedded_autism_folder
from litlab.datamodules.synthetic.autism import (
    AUTISM_CLASSES,
    draw_autism_faces,
    write_autism_folders,
)

TINY = {"train": 6, "valid": 2, "test": 3}


def test_drawn_faces_are_reproducible_rgb_with_face_and_hair_masks() -> None:
    labels = np.array([0, 1, 0, 1])
    images, masks = draw_autism_faces(labels, seed=1, size=64)
    again, _ = draw_autism_faces(labels, seed=1, size=64)
    assert images.shape == (4, 64, 64, 3) and images.dtype == np.uint8
    assert masks.shape == (4, 64, 64) and set(np.unique(masks)) <= {0, 1, 2}
    np.testing.assert_array_equal(images, again)
    assert 0.1 < (masks > 0).mean() < 0.6  # a face with background around it
    with pytest.raises(ValueError, match="labels"):
        draw_autism_faces(np.array([2]), seed=0)


def test_label_lives_in_face_geometry_not_in_the_background() -> None:
    """Eye spacing relative to face width separates the classes; background colour does not."""
    n = 40
    labels = np.repeat([0, 1], n)
    images, masks = draw_autism_faces(labels, seed=3, size=224)
    spacing, bg_mean = [], []
    for image, mask in zip(images, masks, strict=True):
        face = mask == 1
        cols = np.flatnonzero(face.any(0))
        # sclera pixels: near-white inside the face
        white = face & (image.min(-1) > 215)
        xs = np.flatnonzero(white.any(0))
        spacing.append((xs.max() - xs.min()) / (cols.max() - cols.min()) if xs.size else np.nan)
        bg_mean.append(image[mask == 0].mean())
    spacing, bg_mean = np.array(spacing), np.array(bg_mean)
    assert np.nanmean(spacing[:n]) > np.nanmean(spacing[n:]) + 0.03  # autistic: wider-set eyes
    assert abs(bg_mean[:n].mean() - bg_mean[n:].mean()) < 20


def test_layout_is_indexed_and_a_missing_split_is_named(tmp_path: Path) -> None:
    root = write_autism_folders(tmp_path / "faces", TINY, seed=0)
    layout = index_autism_layout(root)
    assert list(layout.splits) == ["train", "valid", "test"]
    assert layout.split("train").counts() == {"autistic": 6, "non_autistic": 6}
    assert all(p.suffix == ".jpg" for p in layout.pooled()[0])
    shutil.rmtree(root / "valid")
    with pytest.raises(FileNotFoundError, match="valid"):
        index_autism_layout(root)


def test_kaggle_split_serves_rgb_batches_in_unit_range(tmp_path: Path) -> None:
    dm = AutismDataModule(
        root=str(write_autism_folders(tmp_path / "f", TINY)),
        image_size=32,
        batch_size=4,
        num_workers=0,
    )
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("fit")  # safe twice
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (12, 4, 6)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    assert set(y.tolist()) <= {0, 1} and dm.class_names == list(AUTISM_CLASSES)
    assert dm.duplicates == {"exact": 0, "near": 0, "test": 6}


def test_paper_split_serves_the_seeded_70_30(tmp_path: Path) -> None:
    root = write_autism_folders(tmp_path / "f", TINY)
    dm = AutismDataModule(root=str(root), split="paper", image_size=32, num_workers=0, seed=7)
    dm.setup("fit")
    sizes = {k: len(v) for k, v in dm.split_paths.items()}
    assert sizes["test"] == 7 and sum(sizes.values()) == 22  # ceil(0.3 * 22): sklearn rounds up
    assert not set(dm.split_paths["train"]) & set(dm.split_paths["test"])


def test_a_train_image_copied_into_test_is_counted_and_logged(tmp_path: Path, caplog) -> None:
    root = write_autism_folders(tmp_path / "f", TINY)
    shutil.copy(root / "train/autistic/0000.jpg", root / "test/autistic/dup.jpg")
    dm = AutismDataModule(root=str(root), image_size=32, num_workers=0)
    with caplog.at_level(logging.INFO, logger="litlab.datamodules.autism"):
        dm.setup("fit")
    assert dm.duplicates["exact"] >= 1 and dm.duplicates["near"] >= 1
    assert "duplicates by dHash" in caplog.text
    info = dm.describe()
    assert info["sizes"]["test"] == 7 and info["duplicates"] == dm.duplicates


def test_embedded_folder_is_written_once(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="litlab.datamodules.embedded"):
        first = embedded_autism_folder(TINY, seed=2)
        second = embedded_autism_folder(TINY, seed=2)
    assert first == second and caplog.text.count("generating") == 1
    assert len(index_autism_layout(first).pooled()[0]) == 2 * sum(TINY.values())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        AutismDataModule(split="70:30")
    with pytest.raises(ValueError, match="image_size"):
        AutismDataModule(image_size=8)
