"""Autism faces: the drawn stand-in, the Kaggle layout, both splits and the dHash duplicate check."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from litlab.datamodules.autism import (
    AutismDataModule,
    count_near_duplicates,
    dhash,
    embedded_autism_folder,
    index_autism_layout,
    paper_split,
)
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


def test_paper_split_is_a_seeded_stratified_70_30() -> None:
    labels = np.repeat([0, 1], 50)
    train, val, test = paper_split(labels, 0.3, 0.1, seed=7)
    assert len(test) == 30 and len(train) + len(val) == 70
    assert not set(train) & set(test) and not set(val) & set(test) and not set(train) & set(val)
    assert labels[test].sum() == 15  # stratified
    again = paper_split(labels, 0.3, 0.1, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    _, val0, test0 = paper_split(labels, 0.3, 0.0, seed=7)
    assert np.array_equal(val0, test0)  # the paper's protocol: validation is the test part


def test_dhash_matches_reencoded_copies_and_separates_other_faces() -> None:
    images, _ = draw_autism_faces(np.array([0, 1, 0]), seed=5, size=224)
    ok, data = cv2.imencode(".jpg", images[0], [cv2.IMWRITE_JPEG_QUALITY, 60])
    copy = cv2.resize(cv2.imdecode(data, cv2.IMREAD_UNCHANGED), (150, 150))
    hashes = dhash(images)
    copy_hash = dhash(copy[None])
    assert np.bitwise_count(hashes[0] ^ copy_hash[0]) <= 4
    assert np.bitwise_count(hashes[1] ^ hashes[2]) > 10
    assert count_near_duplicates(hashes[1:], copy_hash, 4) == 0
    assert count_near_duplicates(hashes, copy_hash, 4) == 1
    assert count_near_duplicates(hashes, hashes[:2], 0) == 2


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
    with caplog.at_level(logging.INFO, logger="litlab.datamodules.autism"):
        first = embedded_autism_folder(TINY, seed=2)
        second = embedded_autism_folder(TINY, seed=2)
    assert first == second and caplog.text.count("generating") == 1
    assert len(index_autism_layout(first).pooled()[0]) == 2 * sum(TINY.values())


def test_wrong_model_shape_fails_with_the_fix(tmp_path: Path) -> None:
    class _Model:
        hparams = {"in_chans": 1, "num_classes": 2}

    class _Trainer:
        lightning_module = _Model()

    dm = AutismDataModule(root=str(write_autism_folders(tmp_path / "f", TINY)), image_size=32)
    dm.trainer = _Trainer()
    with pytest.raises(ValueError, match="in_chans=3"):
        dm.setup("fit")
    with pytest.raises(ValueError, match="split"):
        AutismDataModule(split="70:30")
