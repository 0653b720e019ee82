"""Face masks: mask folders, background removal, the preview grid."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from litlab.datamodules.face_masks import load_mask_folder, mask_preview_grid, remove_background
from litlab.datamodules.synthetic.autism import write_autism_folders


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
