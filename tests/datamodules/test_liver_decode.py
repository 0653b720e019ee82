"""Liver decoding: NIfTI and PNG slices give the same pixels, orientation from the affine, the
HU window, resizing and resampling to a spacing."""

from __future__ import annotations

from pathlib import Path

import litlab.datamodules.liver_decode as liver_decode
import litlab.datamodules.liver_sources as liver_sources
import nibabel as nib
import numpy as np
from litlab.datamodules.synthetic.liver import write_liver_phantoms

SIZE = 32


def _write_volume(folder: Path, key: str, volume: np.ndarray, seg: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), folder / f"volume-{key}.nii.gz")
    nib.save(nib.Nifti1Image(seg, np.eye(4)), folder / f"segmentation-{key}.nii.gz")


def test_nifti_and_png_show_the_same_slices(tmp_path: Path) -> None:
    """One drawing written as NIfTI and as PNG loads identically: orientation and window agree."""
    nifti = write_liver_phantoms(
        tmp_path / "n", n_patients=1, n_slices=3, size=SIZE, nifti_patients=1
    )
    png = write_liver_phantoms(
        tmp_path / "p", n_patients=1, n_slices=3, size=SIZE, nifti_patients=0
    )
    sources_n = liver_sources.discover_sources(nifti, "nifti")
    sources_p = liver_sources.discover_sources(png, "slices")
    a = liver_decode.decode_sources(sources_n, SIZE, (-100, 400))
    b = liver_decode.decode_sources(sources_p, SIZE, (-100, 400))
    assert np.abs(a.images.astype(int) - b.images.astype(int)).max() <= 1
    np.testing.assert_array_equal(a.masks > 0, b.masks > 0)
    # The liver sits on the image's left, as in radiological display.
    assert np.nonzero(a.masks)[-1].mean() < SIZE / 2


def test_nifti_orientation_follows_the_affine(tmp_path: Path) -> None:
    """The same anatomy stored RAS or with the axial axis first loads as the same slices."""
    write_liver_phantoms(tmp_path / "lps", n_patients=1, n_slices=3, size=SIZE, nifti_patients=1)
    ref = liver_decode.decode_sources(
        liver_sources.discover_sources(tmp_path / "lps", "nifti"), SIZE, (-100, 400)
    )
    lps_vol = nib.load(tmp_path / "lps/nifti/volume-0.nii.gz")
    lps_seg = nib.load(tmp_path / "lps/nifti/segmentation-0.nii.gz")
    vol, seg = np.asarray(lps_vol.dataobj), np.asarray(lps_seg.dataobj)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [SIZE - 1, SIZE - 1]  # voxel i -> SIZE-1-i on the flipped axes
    ras_affine = lps_vol.affine @ flip
    permute = np.eye(4)[:, [2, 0, 1, 3]]  # new voxel axes (z, x, y) -> old (x, y, z)
    variants = {
        "ras": (vol[::-1, ::-1], seg[::-1, ::-1], ras_affine),
        "zfirst": (vol.transpose(2, 0, 1), seg.transpose(2, 0, 1), lps_vol.affine @ permute),
    }
    for name, (v, s, affine) in variants.items():
        folder = tmp_path / name
        folder.mkdir()
        nib.save(nib.Nifti1Image(np.ascontiguousarray(v), affine), folder / "volume-0.nii.gz")
        nib.save(nib.Nifti1Image(np.ascontiguousarray(s), affine), folder / "segmentation-0.nii.gz")
        got = liver_decode.decode_sources(
            liver_sources.discover_sources(folder, "nifti"), SIZE, (-100, 400)
        )
        np.testing.assert_array_equal(got.images, ref.images, err_msg=name)
        np.testing.assert_array_equal(got.masks, ref.masks, err_msg=name)


def test_hu_window_and_resize(tmp_path: Path) -> None:
    volume = np.full((40, 40, 2), -1000, np.int16)
    volume[10:30, 10:30, :] = 150  # mid-window: (150 + 100) / 500 = 0.5
    seg = np.zeros((40, 40, 2), np.uint8)
    seg[10:30, 10:30, :] = 1
    _write_volume(tmp_path, "0", volume, seg)
    got = liver_decode.decode_sources(liver_sources.discover_sources(tmp_path), 20, (-100, 400))
    assert got.images.shape == (2, 20, 20)
    assert got.images.max() == 128 and got.images.min() == 0
    assert got.masks.sum() == 2 * 10 * 10
    np.testing.assert_array_equal(got.masks[0] > 0, got.images[0] > 64)


def test_spacing_is_read_from_the_affine_and_recorded_as_served(tmp_path: Path) -> None:
    volume = np.full((40, 20, 3), -1000, np.int16)
    volume[10:30, 5:15, :] = 150
    seg = (volume > 0).astype(np.uint8)
    affine = np.diag([0.5, 2.0, 4.0, 1.0])  # x 0.5 mm, y 2 mm, slices 4 mm
    tmp_path.mkdir(exist_ok=True)
    nib.save(nib.Nifti1Image(volume, affine), tmp_path / "volume-0.nii.gz")
    nib.save(nib.Nifti1Image(seg, affine), tmp_path / "segmentation-0.nii.gz")
    sources = liver_sources.discover_sources(tmp_path)
    resized = liver_decode.decode_sources(sources, 10, (-100, 400))
    # display rows run along y (20 voxels of 2 mm), columns along x (40 of 0.5 mm): to 10 px
    np.testing.assert_allclose(resized.spacing, [[4.0, 2.0, 4.0]] * 3)
    assert resized.foreground.all()
    resampled = liver_decode.decode_sources(sources, 16, (-100, 400), spacing=2.0)
    np.testing.assert_allclose(resampled.spacing, [[2.0, 2.0, 4.0]] * 3)
    # liver 20 mm along y (rows) by 10 mm along x (columns): 10 x 5 pixels at 2 mm; the 40 x 20 mm
    # field of view becomes 20 x 10 pixels, cropped (rows) and padded (columns) to 16 x 16
    assert resampled.images.shape == (3, 16, 16)
    rows, cols = np.nonzero(resampled.masks[0])
    assert (np.ptp(rows) + 1, np.ptp(cols) + 1) == (10, 5)
    assert resampled.images[0, 0, 0] == 0  # padding is air
