"""Pseudo-masks on drawn faces: the box detectors, GrabCut, the cache."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from litlab.datamodules.face_preprocessing import FaceDetectorUnavailableError, haar_available
from litlab.datamodules.pseudo_masks import SkinBoxDetector, grabcut_mask, make_pseudo_masks
from litlab.datamodules.synthetic.autism import draw_autism_faces


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
    with caplog.at_level(logging.INFO, logger="litlab.datamodules.pseudo_masks"):
        again = make_pseudo_masks(images, work_size=64, cache_dir=tmp_path)
    assert "reusing cached pseudo-masks" in caplog.text
    np.testing.assert_array_equal(first.masks, again.masks)
    assert again.sources == first.sources
    make_pseudo_masks(images, work_size=64, iterations=2, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("pseudo-masks-*.npz"))) == 2  # other options, other entry
