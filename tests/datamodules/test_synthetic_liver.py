"""The liver phantoms: both layouts written, deterministic, CT-like, and not thresholdable."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
from litlab.datamodules.synthetic.liver import PNG_WINDOW, phantom_patient, write_liver_phantoms


def _iou(pred: np.ndarray, truth: np.ndarray) -> float:
    return float((pred & truth).sum() / max((pred | truth).sum(), 1))


def test_writes_both_layouts(tmp_path: Path) -> None:
    root = write_liver_phantoms(tmp_path / "d", n_patients=5, n_slices=3, size=32, seed=1)
    volumes = sorted((root / "nifti").glob("volume-*.nii.gz"))
    segmentations = sorted((root / "nifti").glob("segmentation-*.nii.gz"))
    images = sorted((root / "slices" / "images").glob("*.png"))
    masks = sorted((root / "slices" / "masks").glob("*.png"))
    assert [p.name for p in volumes] == ["volume-0.nii.gz", "volume-1.nii.gz"]
    assert len(segmentations) == 2
    assert len(images) == len(masks) == 3 * 3
    assert [p.name for p in images] == [p.name for p in masks]
    assert images[0].name == "phantom-02_slice000.png"

    volume = nib.load(volumes[0])
    assert volume.get_data_dtype() == np.int16
    assert volume.shape == (32, 32, 3)
    assert nib.aff2axcodes(volume.affine) == ("L", "P", "S")
    assert volume.header.get_zooms()[0] == pytest.approx(380.0 / 32)
    for mask_path in masks:
        mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and mask.shape == (32, 32)
        assert set(np.unique(mask)) <= {0, 255}
    params = json.loads((root / "phantoms.json").read_text())
    assert params["nifti_patients"] == 2 and params["seed"] == 1


def test_png_slices_are_the_windowed_drawing(tmp_path: Path) -> None:
    root = write_liver_phantoms(tmp_path, n_patients=1, n_slices=2, size=32, nifti_patients=0)
    hu, labels = phantom_patient(0, n_slices=2, size=32, seed=0)
    png = cv2.imread(str(root / "slices/images/phantom-00_slice001.png"), cv2.IMREAD_UNCHANGED)
    low, high = PNG_WINDOW
    expected = np.rint(np.clip((hu[1] - low) / (high - low), 0, 1) * 255)
    assert np.abs(png.astype(int) - expected).max() <= 1
    mask = cv2.imread(str(root / "slices/masks/phantom-00_slice001.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask > 0, labels[1] > 0)


def test_deterministic_for_a_seed() -> None:
    a_hu, a_labels = phantom_patient(3, n_slices=4, size=48, seed=7, tumour=True)
    b_hu, b_labels = phantom_patient(3, n_slices=4, size=48, seed=7, tumour=True)
    np.testing.assert_array_equal(a_hu, b_hu)
    np.testing.assert_array_equal(a_labels, b_labels)
    c_hu, _ = phantom_patient(3, n_slices=4, size=48, seed=8, tumour=True)
    d_hu, _ = phantom_patient(4, n_slices=4, size=48, seed=7, tumour=True)
    assert not np.array_equal(a_hu, c_hu)
    assert not np.array_equal(a_hu, d_hu)


@pytest.fixture(scope="module")
def drawn() -> tuple[np.ndarray, np.ndarray]:
    pairs = [phantom_patient(p, n_slices=10, size=64, seed=0) for p in range(8)]
    return np.stack([hu for hu, _ in pairs]), np.stack([labels for _, labels in pairs])


def test_ct_like_intensities(drawn: tuple[np.ndarray, np.ndarray]) -> None:
    hu, labels = drawn
    assert hu.dtype == np.int16
    assert np.median(hu[:, :, 0, 0]) < -900  # air in the corners
    assert (hu > 600).any()  # vertebral cortex
    assert ((hu > -150) & (hu < -50)).mean() > 0.02  # fat
    liver_means = [hu[p][labels[p] == 1].mean() for p in range(len(hu))]
    assert all(40 < m < 120 for m in liver_means)
    # Liver on the image's left (the patient's right in radiological display).
    columns = np.nonzero(labels == 1)[-1]
    assert columns.mean() < 64 / 2 - 5


def test_liver_present_in_most_slices_and_varies(drawn: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = drawn
    with_liver = (labels > 0).any(axis=(2, 3))
    assert with_liver.mean() > 0.8
    areas = (labels > 0).sum(axis=(2, 3)).astype(float)
    assert areas.std(axis=1).min() > 0  # changes along z
    assert areas.max(axis=1).std() > 0  # and between patients


def test_a_single_threshold_cannot_segment_the_liver(drawn: tuple[np.ndarray, np.ndarray]) -> None:
    hu, labels = drawn
    values, liver = hu.ravel(), labels.ravel() > 0
    best_threshold = max(_iou(values > t, liver) for t in range(-100, 300, 5))
    best_band = max(
        _iou((values > low) & (values < high), liver)
        for low in range(-50, 200, 10)
        for high in range(low + 10, 300, 10)
    )
    assert best_threshold < 0.6
    assert best_band < 0.65


def test_tumour_is_inside_liver_and_darker() -> None:
    hu, labels = phantom_patient(1, n_slices=12, size=64, seed=0, tumour=True)
    assert (labels == 2).sum() > 0
    assert hu[labels == 2].mean() < hu[labels == 1].mean() - 15
    _, no_tumour = phantom_patient(1, n_slices=12, size=64, seed=0, tumour=False)
    assert not (no_tumour == 2).any()
    np.testing.assert_array_equal(no_tumour > 0, labels > 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_patients": 0}, "n_patients"),
        ({"n_patients": 2, "nifti_patients": 3}, "nifti_patients"),
    ],
)
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_liver_phantoms(tmp_path, **kwargs)
