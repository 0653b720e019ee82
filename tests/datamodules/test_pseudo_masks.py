"""Pseudo-masks on drawn faces: the box detectors, GrabCut and its fallback, the cache."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from litlab.datamodules import pseudo_masks
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


class _WholeFrameFace:
    """Stands in for the Haar cascade on a tight crop: the face it finds fills the frame."""

    cache_token = "whole-frame"

    def detect(self, image: np.ndarray) -> tuple[int, int, int, int]:
        return 0, 0, image.shape[1], image.shape[0]


def _frame_filling_faces(n: int, size: int) -> np.ndarray:
    """Drawn faces cropped to the middle of the face, so skin runs to every edge (in some of
    them to every pixel outside the face ellipse: no background sample for GrabCut)."""
    images, truth = draw_autism_faces(np.arange(n) % 2, seed=5)
    out = []
    for image, mask in zip(images, truth, strict=True):
        ys, xs = np.nonzero(mask == 1)
        cy, cx, half = int(ys.mean()), int(xs.mean()), int(0.15 * np.ptp(xs))
        out.append(cv2.resize(image[cy - half : cy + half, cx - half : cx + half], (size, size)))
    return np.stack(out)


def test_grabcut_without_background_samples_is_not_run() -> None:
    skin = np.empty((64, 64, 3), np.uint8)
    skin[:] = (224, 172, 140)
    skin_map = SkinBoxDetector().skin_mask(skin)
    assert skin_map.all()  # every pixel starts as probable face: no background sample
    assert grabcut_mask(skin, (0, 0, 64, 64), skin_map, work_size=64) is None
    # with the border as sure background GrabCut has samples of both sides again
    assert (
        grabcut_mask(skin, (0, 0, 64, 64), skin_map, work_size=64, sure_outside=False) is not None
    )


def test_frame_filling_faces_and_an_all_skin_image_get_masks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pseudo_masks, "make_face_detector", lambda required: _WholeFrameFace())
    skin = np.empty((1, 96, 96, 3), np.uint8)
    skin[:] = (224, 172, 140)
    images = np.concatenate([_frame_filling_faces(6, 96), skin])
    with caplog.at_level(logging.INFO, logger="litlab.datamodules.pseudo_masks"):
        result = make_pseudo_masks(images, box_method="haar", work_size=64, cache_dir=tmp_path)
    assert result.masks.shape == (7, 96, 96) and sum(result.sources.values()) == 7
    frame_ellipse = pseudo_masks._box_ellipse((0, 0, 96, 96), 96, 96)
    np.testing.assert_array_equal(result.masks[-1], frame_ellipse)  # the all-skin image
    assert 2 <= result.no_grabcut <= result.sources.get("haar+ellipse", 0)
    assert f"{result.no_grabcut} left GrabCut no background or face samples" in caplog.text
    for mask in result.masks:  # every face gets a mask that holds the middle of the frame
        assert mask[40:56, 40:56].all() and 0.3 < mask.mean() < 1.0
    cached = make_pseudo_masks(images, box_method="haar", work_size=64, cache_dir=tmp_path)
    assert cached.no_grabcut == result.no_grabcut
