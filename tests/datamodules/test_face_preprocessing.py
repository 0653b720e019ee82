"""Each OpenCV preprocessing step on images whose right answer is known."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from litlab.datamodules import face_preprocessing as fp


class _StubDetector:
    """Returns a fixed box for images with a bright pixel, nothing for the rest."""

    def __init__(self, box: fp.Box) -> None:
        self.box = box
        self.calls = 0

    def detect(self, image: np.ndarray) -> fp.Box | None:
        self.calls += 1
        return self.box if image.max() > 200 else None


def test_equalize_spreads_the_histogram() -> None:
    rng = np.random.default_rng(0)
    dull = rng.integers(100, 121, (48, 48)).astype(np.uint8)
    out = fp.equalize(dull)
    assert out.dtype == np.uint8 and out.shape == dull.shape
    assert int(dull.max()) - int(dull.min()) <= 20
    assert out.min() <= 15 and out.max() == 255
    assert out.std() > 4 * dull.std()
    # Monotone: brighter input pixels never become darker ones.
    order = np.argsort(dull, axis=None, kind="stable")
    assert np.all(np.diff(out.ravel()[order].astype(int)) >= 0)


def test_canny_finds_a_drawn_edge() -> None:
    image = np.zeros((48, 48), np.uint8)
    cv2.rectangle(image, (12, 12), (35, 35), 255, -1)
    edges = fp.canny_edges(image)
    assert set(np.unique(edges)) <= {0, 255}
    border = np.zeros_like(image, bool)
    border[9:39, 9:39] = True
    border[15:33, 15:33] = False  # the flat inside has no edge
    assert edges[border].sum() > 0
    assert edges[~border].sum() == 0
    assert fp.canny_edges(np.full((48, 48), 90, np.uint8)).sum() == 0
    with pytest.raises(ValueError, match="low <= high"):
        fp.canny_edges(image, low=200, high=100)


def test_input_modes_and_channels() -> None:
    images = np.random.default_rng(1).integers(0, 256, (3, 60, 60)).astype(np.uint8)
    gray = fp.preprocess_images(images, size=48, detect_face=False, input_mode="gray")
    edges = fp.preprocess_images(images, size=48, detect_face=False, input_mode="edges")
    both = fp.preprocess_images(images, size=48, detect_face=False, input_mode="both")
    assert gray.images.shape == (3, 48, 48) and edges.images.shape == (3, 48, 48)
    assert both.images.shape == (3, 48, 48, 2)
    np.testing.assert_array_equal(both.images[..., 0], gray.images)
    np.testing.assert_array_equal(both.images[..., 1], edges.images)
    assert gray.fallbacks == 0 and gray.detector == "none"
    assert (fp.input_channels("gray"), fp.input_channels("edges"), fp.input_channels("both")) == (
        1,
        1,
        2,
    )
    with pytest.raises(ValueError, match="input_mode"):
        fp.input_channels("rgb")


def test_detector_crops_and_counts_fallbacks(caplog: pytest.LogCaptureFixture) -> None:
    images = np.zeros((3, 96, 96), np.uint8)
    images[0, 20:60, 30:70] = 255  # the "face" region the stub reports
    images[2, 20:60, 30:70] = 255
    stub = _StubDetector((30, 20, 40, 40))
    with caplog.at_level(logging.INFO, logger="litlab.datamodules.face_preprocessing"):
        out = fp.preprocess_images(images, size=48, equalize_hist=False, detector=stub)
    assert stub.calls == 3
    assert out.fallbacks == 1
    assert out.boxes[:, 0].tolist() == [30, -1, 30]
    assert np.all(out.images[0] == 255)  # the crop is the white square alone
    assert np.all(out.images[1] == 0)  # the fallback is the whole (black) image
    assert "no face found in 1 of 3" in caplog.text


def test_crop_box_margin_is_clipped() -> None:
    image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    assert fp.crop_box(image, (2, 3, 4, 5)).shape == (5, 4)
    assert fp.crop_box(image, (0, 0, 4, 4), margin=0.5).shape == (6, 6)
    with pytest.raises(ValueError, match="outside"):
        fp.crop_box(image, (20, 20, 4, 4))


def test_missing_cascade_fails_clearly_or_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(cv2, "CascadeClassifier", raising=False)
    with pytest.raises(fp.FaceDetectorUnavailableError, match="detect_face=false"):
        fp.make_face_detector(True)
    assert not fp.haar_available()
    blank = np.zeros((2, 48, 48), np.uint8)
    with caplog.at_level(logging.INFO, logger="litlab.datamodules.face_preprocessing"):
        out = fp.preprocess_images(blank, detect_face="auto")
    assert out.detector == "none" and out.fallbacks == 2
    assert "face cropping is off" in caplog.text
    assert fp.make_face_detector(False) is None
    with pytest.raises(ValueError, match="detect_face"):
        fp.make_face_detector("yes")  # type: ignore[arg-type]


def test_cascade_env_override_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(fp.CASCADE_ENV, str(tmp_path / "none.xml"))
    with pytest.raises(fp.FaceDetectorUnavailableError, match="none.xml"):
        fp.find_cascade_file()


def test_preprocessing_cache(tmp_path: Path) -> None:
    images = np.random.default_rng(2).integers(0, 256, (4, 48, 48)).astype(np.uint8)
    first = fp.preprocess_images(images, detect_face=False, input_mode="both", cache_dir=tmp_path)
    files = list(tmp_path.glob("preprocessed-*.npz"))
    assert len(files) == 1
    again = fp.preprocess_images(images, detect_face=False, input_mode="both", cache_dir=tmp_path)
    np.testing.assert_array_equal(first.images, again.images)
    fp.preprocess_images(images, detect_face=False, input_mode="gray", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("preprocessed-*.npz"))) == 2


@pytest.mark.skipif(not fp.haar_available(), reason="this OpenCV build has no Haar face cascade")
def test_haar_falls_back_on_a_blank_image() -> None:
    assert fp.HaarFaceDetector().detect(np.full((96, 96), 128, np.uint8)) is None


@pytest.mark.shared_data
@pytest.mark.skipif(not fp.haar_available(), reason="this OpenCV build has no Haar face cascade")
def test_haar_finds_a_real_face(shared_data: Path) -> None:
    from litlab.datamodules.folders import index_class_folders, load_images

    index = index_class_folders(shared_data / "ckplus48")
    images = load_images(index.paths[::50], size=None)
    # CK+48 images are already tight face crops at 48 px; upsampling gives the cascade room.
    big = np.stack([cv2.resize(im, (144, 144), interpolation=cv2.INTER_LINEAR) for im in images])
    found = sum(fp.HaarFaceDetector().detect(im) is not None for im in big)
    assert found >= len(big) // 2
