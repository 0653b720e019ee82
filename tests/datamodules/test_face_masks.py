"""Face masks: pseudo-masks on drawn faces, mask folders, background removal, the segmenter data."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from litlab.datamodules.face_masks import (
    SkinBoxDetector,
    grabcut_mask,
    load_mask_folder,
    make_pseudo_masks,
    mask_preview_grid,
    remove_background,
)
from litlab.datamodules.face_segmentation import FaceMaskDataModule
from litlab.datamodules.synthetic.autism import draw_autism_faces, write_autism_folders
from litlab.datamodules.transforms import FaceDetectorUnavailableError, haar_available


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    return draw_autism_faces(np.arange(24) % 2, seed=11, size=128)


def _coverage(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of face-skin pixels found, share of background pixels wrongly taken, per image."""
    skin, background = truth == 1, truth == 0
    found = (pred.astype(bool) & skin).sum((1, 2)) / skin.sum((1, 2))
    wrong = (pred.astype(bool) & background).sum((1, 2)) / background.sum((1, 2))
    return found, wrong


def test_pseudo_masks_cover_the_drawn_face_and_little_background(faces) -> None:
    images, truth = faces
    result = make_pseudo_masks(images, box_method="auto", work_size=96)
    found, wrong = _coverage(result.masks, truth)
    assert np.median(found) > 0.9, found
    assert np.median(wrong) < 0.03, wrong
    assert (found > 0.8).mean() >= 0.75  # most faces are found, not just the median one
    assert sum(result.sources.values()) == len(images)
    assert result.masks.dtype == np.uint8 and set(np.unique(result.masks)) <= {0, 1}


def test_skin_box_lies_on_the_face(faces) -> None:
    images, truth = faces
    hits = 0
    for image, mask in zip(images, truth, strict=True):
        box = SkinBoxDetector().detect(image)
        if box is None:
            continue
        x, y, w, h = box
        ys, xs = np.nonzero(mask == 1)
        cx, cy = xs.mean(), ys.mean()
        hits += x <= cx <= x + w and y <= cy <= y + h
    assert hits >= 0.75 * len(images)


def test_grabcut_refines_a_loose_box_to_the_face() -> None:
    images, truth = draw_autism_faces(np.array([0]), seed=2, size=128)
    mask = grabcut_mask(images[0], (10, 5, 108, 118), iterations=5, work_size=96)
    found, wrong = _coverage(mask[None], truth)
    assert found[0] > 0.85 and wrong[0] < 0.05


def test_haar_box_method_fails_with_the_fix_when_opencv_lacks_it(faces) -> None:
    if haar_available():
        result = make_pseudo_masks(faces[0][:2], box_method="haar", work_size=64)
        assert result.masks.shape == (2, 128, 128)
    else:
        with pytest.raises(FaceDetectorUnavailableError, match="opencv"):
            make_pseudo_masks(faces[0][:2], box_method="haar")
    with pytest.raises(ValueError, match="box_method"):
        make_pseudo_masks(faces[0][:2], box_method="yolo")


def test_pseudo_masks_are_cached_by_pixels_and_options(faces, tmp_path: Path, caplog) -> None:
    images = faces[0][:3]
    first = make_pseudo_masks(images, work_size=64, cache_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="litlab.datamodules.face_masks"):
        again = make_pseudo_masks(images, work_size=64, cache_dir=tmp_path)
    assert "reusing cached pseudo-masks" in caplog.text
    np.testing.assert_array_equal(first.masks, again.masks)
    assert again.sources == first.sources
    make_pseudo_masks(images, work_size=64, iterations=2, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("pseudo-masks-*.npz"))) == 2  # other options, other entry


@pytest.mark.parametrize("mode", ["zero", "blur"])
def test_background_removal_keeps_face_pixels_and_removes_background(mode: str) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((2, 32, 32), np.uint8)
    masks[:, 8:24, 10:22] = 1
    out = remove_background(images, masks, mode, blur_sigma=4.0)
    face, bg = masks.astype(bool), ~masks.astype(bool)
    np.testing.assert_array_equal(out[face], images[face])
    if mode == "zero":
        assert not out[bg].any()
    else:  # blurred: the background's detail (pixel-to-pixel variation) is gone
        assert out[bg].astype(float).std() < 0.5 * images[bg].astype(float).std()
        assert not np.array_equal(out[bg], images[bg])
    single = remove_background(images[0], masks[0], mode)
    assert single.shape == images[0].shape
    with pytest.raises(ValueError, match="background mode"):
        remove_background(images, masks, "grey")


def test_mask_folder_mirrors_the_layout_and_missing_masks_are_named(tmp_path: Path) -> None:
    root = write_autism_folders(tmp_path / "img", {"train": 2, "valid": 1, "test": 1})
    paths = sorted(root.rglob("*.jpg"))
    masks_root = tmp_path / "masks"
    for path in paths:
        out = masks_root / path.relative_to(root).with_suffix(".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        mask = np.zeros((50, 50), np.uint8)
        mask[10:40, 15:35] = 255
        cv2.imwrite(str(out), mask)
    masks = load_mask_folder(masks_root, root, paths, size=25)
    assert (
        masks.shape == (len(paths), 25, 25) and masks[:, 12, 12].all() and not masks[:, 0, 0].any()
    )
    (masks_root / paths[0].relative_to(root).with_suffix(".png")).unlink()
    with pytest.raises(FileNotFoundError, match="no mask"):
        load_mask_folder(masks_root, root, paths, size=25)


def test_preview_grid_has_image_mask_and_cutout_columns(faces) -> None:
    images, truth = faces
    grid = mask_preview_grid(images[:3], (truth[:3] > 0).astype(np.uint8), gap=2)
    assert grid.shape == (3 * 130 - 2, 3 * 130 - 2, 3)
    assert not grid[:128, 2 * 130 :][(truth[0] == 0)].any()  # cut-out column: background black


def test_face_mask_datamodule_serves_image_mask_pairs(tmp_path: Path) -> None:
    dm = FaceMaskDataModule(
        root=str(write_autism_folders(tmp_path / "f", {"train": 3, "valid": 1, "test": 1})),
        image_size=32,
        grabcut_size=32,
        batch_size=2,
        num_workers=0,
    )
    dm.prepare_data()
    dm.setup("fit")
    x, m = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 3, 32, 32) and m.shape == (2, 32, 32) and m.dtype == torch.int64
    assert set(m.unique().tolist()) <= {0, 1} and len(dm.val_set) == 2
    assert dm.preview_path is not None and dm.preview_path.is_file()
    smoke = FaceMaskDataModule(root=dm.root, image_size=32, grabcut_size=32, limit_per_class=1)
    smoke.setup("fit")
    assert (len(smoke.train_set), len(smoke.val_set)) == (2, 2)
