"""Liver inputs to predict on: sliced exactly as training decodes, masks back on the input's grid."""

from __future__ import annotations

from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
from litlab.datamodules import liver_decode, liver_sources
from litlab.datamodules.liver_volumes import liver_predict_items, read_png_slice, read_volume

WINDOW = (-100.0, 400.0)
LPS = np.diag([-0.8, -0.8, 2.5, 1.0])
# Axial axis first (array axes z, y, x), and a plain RAS grid with an offset.
ZFIRST = np.array([[0, 0, 0.8, 5], [0, -0.8, 0, 7], [2.5, 0, 0, -3], [0, 0, 0, 1.0]])
RAS = np.diag([0.8, 0.8, 2.5, 1.0])
RAS[:3, 3] = [10, -20, 30]


def _ct(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Hounsfield units with structure: a bright block over noise across the window."""
    rng = np.random.default_rng(seed)
    hu = rng.integers(-300, 600, shape).astype(np.int16)
    hu[tuple(slice(s // 4, 3 * s // 4) for s in shape)] = 150
    return hu


def _write(folder: Path, key: str, hu: np.ndarray, affine: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    seg = (hu == 150).astype(np.uint8)  # only needed by the training decoder
    nib.save(nib.Nifti1Image(hu, affine), folder / f"volume-{key}.nii.gz")
    nib.save(nib.Nifti1Image(seg, affine), folder / f"segmentation-{key}.nii.gz")
    return folder / f"volume-{key}.nii.gz"


@pytest.mark.parametrize("spacing", [None, 1.0])
@pytest.mark.parametrize("affine", [LPS, ZFIRST, RAS], ids=["lps", "zfirst", "ras"])
def test_slices_are_the_training_decoders(tmp_path: Path, affine, spacing) -> None:
    shape = (4, 30, 26) if affine is ZFIRST else (30, 26, 4)
    path = _write(tmp_path, "0", _ct(shape), affine)
    sources = liver_sources.discover_sources(tmp_path, "nifti")
    trained = liver_decode.decode_sources(sources, 24, WINDOW, spacing)
    slices, grid = read_volume(path, 24, WINDOW, spacing)
    np.testing.assert_array_equal(slices, trained.images)
    assert grid.depth == 4 and slices.shape == (4, 24, 24)


@pytest.mark.parametrize("affine", [LPS, ZFIRST, RAS], ids=["lps", "zfirst", "ras"])
def test_masks_go_back_to_the_voxels_they_came_from(tmp_path: Path, affine) -> None:
    """Without resizing, thresholding the slices and reassembling them is thresholding the volume."""
    shape = (3, 32, 32) if affine is ZFIRST else (32, 32, 3)
    hu = _ct(shape)
    slices, grid = read_volume(_write(tmp_path, "0", hu, affine), 32, WINDOW, None)
    back = grid.to_volume((slices > 127).astype(np.uint8))
    expected = liver_decode.unit_to_uint8(liver_decode.window_to_unit(hu, WINDOW)) > 127
    np.testing.assert_array_equal(back, expected)


def test_resampled_and_padded_slices_come_back_exactly(tmp_path: Path) -> None:
    """A target spacing equal to the volume's leaves pixels as they are: the pad is undone."""
    hu = _ct((20, 28, 2))
    affine = np.diag([1.0, 1.0, 3.0, 1.0])
    slices, grid = read_volume(_write(tmp_path, "0", hu, affine), 32, WINDOW, spacing=1.0)
    assert grid.geometry.resampled == (28, 20)  # display rows are RAS y, columns RAS x
    back = grid.to_volume((slices > 127).astype(np.uint8))
    expected = liver_decode.unit_to_uint8(liver_decode.window_to_unit(hu, WINDOW)) > 127
    np.testing.assert_array_equal(back, expected)


def test_resized_masks_keep_the_inputs_grid_affine_and_header(tmp_path: Path) -> None:
    hu = _ct((50, 70, 5))
    path = tmp_path / "volume-3.nii.gz"
    image = nib.Nifti1Image(hu, LPS)
    image.header.set_slope_inter(1.0, -1024.0)  # a stored CT scaling must not touch the labels
    nib.save(image, path)
    slices, grid = read_volume(path, 32, WINDOW, None)
    labels = (slices > 127).astype(np.uint8)
    out_path = tmp_path / "mask.nii.gz"
    nib.save(grid.mask_image(labels), out_path)
    mask = nib.load(out_path)
    source = nib.load(path)
    assert mask.shape == source.shape and mask.get_data_dtype() == np.uint8
    np.testing.assert_allclose(mask.affine, source.affine)
    assert mask.header.get_zooms() == source.header.get_zooms()
    data = np.asarray(mask.dataobj)
    assert set(np.unique(data)) <= {0, 1}
    truth = liver_decode.window_to_unit(np.asarray(source.dataobj), WINDOW) > 127 / 255
    assert (data == truth).mean() > 0.85  # nearest-neighbour resizing down and back up


def test_predict_items_read_volumes_and_slices_but_not_ground_truth(tmp_path: Path) -> None:
    _write(tmp_path / "scans", "1", _ct((30, 30, 3)), LPS)
    for folder in ("images", "masks"):
        (tmp_path / "scans" / folder).mkdir()
        cv2.imwrite(
            str(tmp_path / "scans" / folder / "p1_slice002.png"),
            np.eye(40, 60, dtype=np.uint8) * 255,
        )
    items = liver_predict_items(tmp_path / "scans", 32, WINDOW, None)
    assert items.names == ["images/p1_slice002", "volume-1", "volume-1", "volume-1"]
    assert items.sources[0].endswith("images/p1_slice002.png")
    assert items.sources[1:] == [f"{tmp_path / 'scans' / 'volume-1.nii.gz'}:{z}" for z in range(3)]
    assert items.volume_of.tolist() == [-1, 0, 0, 0]
    assert items.sizes[0].tolist() == [40, 60]
    image, index = items[0]
    assert image.shape == (1, 32, 32) and index == 0 and 0.0 <= image.min() <= image.max() <= 1.0


def test_png_slices_refuse_a_spacing_and_name_a_damaged_file(tmp_path: Path) -> None:
    png = tmp_path / "s.png"
    cv2.imwrite(str(png), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="records no spacing"):
        read_png_slice(png, 8, spacing=1.0)
    png.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=f"cannot read image {png}"):
        read_png_slice(png, 8, None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no .nii.gz, .nii, .png file"):
        liver_predict_items(tmp_path / "empty", 8, WINDOW, None)
