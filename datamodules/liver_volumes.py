"""Liver CT inputs to predict on, and predicted masks put back on each input's own grid.

A NIfTI volume is cut into axial slices exactly as training decodes it
(:mod:`litlab.datamodules.liver_decode`: display orientation, HU window, resize to
``image_size`` or resampling to a common ``spacing`` then crop/pad); :class:`VolumeGrid` keeps
what is needed to undo each step, so the slice masks reassemble into a volume with the input's
shape, affine and header. A PNG slice is read as the slice folders are (8-bit, windowed) and its
mask is written back at the PNG's own size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import torch
from litlab.datamodules.arrays import ArrayDataset

# The training decoder's own steps, reused so a prediction sees exactly what training saw.
from litlab.datamodules.liver_decode import (
    _SLAB,
    _display_ornt,
    _display_spacing,
    _fit_to_spacing,
    _load_nifti,
    _read_png,
    _read_slab,
    _resize_image,
    _to_display,
    unit_to_uint8,
    window_to_unit,
)
from litlab.datamodules.predict_inputs import PredictItems, find_files, output_name
from torchvision.transforms import v2

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class SliceGeometry:
    """How a ``(rows, cols)`` slice became a ``size x size`` model input, to undo it.

    Attributes:
        rows, cols: The slice's own size.
        size: The model input's side.
        resampled: ``(rows, cols)`` after resampling to the target spacing, before the centre
            crop/pad; ``None`` when the slice was resized straight to ``size``.
    """

    rows: int
    cols: int
    size: int
    resampled: tuple[int, int] | None = None

    def restore(self, mask: np.ndarray) -> np.ndarray:
        """A ``(size, size)`` label mask back on the slice's ``(rows, cols)`` pixels (nearest).

        Pixels the centre crop cut away are background.
        """
        if self.resampled is not None:
            new_h, new_w = self.resampled
            full = np.zeros((new_h, new_w), mask.dtype)
            sy, dy = max(0, (new_h - self.size) // 2), max(0, (self.size - new_h) // 2)
            sx, dx = max(0, (new_w - self.size) // 2), max(0, (self.size - new_w) // 2)
            ch, cw = min(self.size, new_h), min(self.size, new_w)
            full[sy : sy + ch, sx : sx + cw] = mask[dy : dy + ch, dx : dx + cw]
            mask = full
        if mask.shape == (self.rows, self.cols):
            return mask
        return cv2.resize(mask, (self.cols, self.rows), interpolation=cv2.INTER_NEAREST_EXACT)


def fit_slice(
    unit: np.ndarray, size: int, pixel_mm: tuple[float, float], spacing: float | None
) -> tuple[np.ndarray, SliceGeometry]:
    """A ``[0, 1]`` slice as the uint8 model input training makes of it, and how to undo it."""
    rows, cols = unit.shape
    if spacing is None:
        return unit_to_uint8(_resize_image(unit, size)), SliceGeometry(rows, cols, size)
    image, _, _ = _fit_to_spacing(unit, np.zeros(unit.shape, np.uint8), pixel_mm, size, spacing)
    new_h = max(1, round(rows * pixel_mm[0] / spacing))
    new_w = max(1, round(cols * pixel_mm[1] / spacing))
    return unit_to_uint8(image), SliceGeometry(rows, cols, size, (new_h, new_w))


@dataclass(frozen=True)
class VolumeGrid:
    """A NIfTI volume's voxel grid and the steps from its axial slices to model inputs.

    Attributes:
        path: The volume file.
        image: The loaded image (header and affine; voxels are read lazily).
        ornt: Orientation of its axes to display order (``liver_decode._display_ornt``).
        axial: Which array axis is axial.
        geometry: How each axial slice became a model input.
    """

    path: Path
    image: nib.Nifti1Image
    ornt: np.ndarray
    axial: int
    geometry: SliceGeometry

    @property
    def depth(self) -> int:
        """Number of axial slices."""
        return int(self.image.shape[self.axial])

    def to_volume(self, masks: np.ndarray) -> np.ndarray:
        """``(depth, size, size)`` slice masks -> an array with the volume's shape and axes.

        Undoes the decoder's steps in reverse: the resize (or resampling and crop), the
        display flips and transpose, then the reorientation.
        """
        if len(masks) != self.depth:
            raise ValueError(f"{len(masks)} slice masks for {self.path}, which has {self.depth}")
        display = np.stack([self.geometry.restore(m) for m in masks])
        ras = display.transpose(2, 1, 0)[::-1, ::-1, :]
        inverse = np.zeros_like(self.ornt)
        for axis, (target, flip) in enumerate(self.ornt):
            inverse[int(target)] = (axis, flip)
        return np.ascontiguousarray(nib.orientations.apply_orientation(ras, inverse))

    def mask_image(self, masks: np.ndarray) -> nib.Nifti1Image:
        """The slice masks as a uint8 label volume with the input's affine and header."""
        header = self.image.header.copy()
        out = type(self.image)(self.to_volume(masks).astype(np.uint8), self.image.affine, header)
        out.set_data_dtype(np.uint8)
        out.header.set_slope_inter(1.0, 0.0)  # labels, not rescaled intensities
        return out


def read_volume(
    path: Path, size: int, window: Sequence[float], spacing: float | None
) -> tuple[np.ndarray, VolumeGrid]:
    """Every axial slice of a CT volume as uint8 model inputs ``(depth, size, size)``, and its grid.

    Raises:
        ValueError: The file is not a readable 3-D NIfTI image (the message names it).
    """
    volume = _load_nifti(path, "volume")
    ornt, axial = _display_ornt(volume.affine)
    row_mm, col_mm, _ = _display_spacing(volume.affine, ornt, axial)
    depth = volume.shape[axial]
    slices, geometry = [], None
    for start in range(0, depth, _SLAB):
        index = tuple(
            slice(start, min(start + _SLAB, depth)) if axis == axial else slice(None)
            for axis in range(3)
        )
        hu = _to_display(_read_slab(volume, index, path, "volume").astype(np.float32), ornt)
        for plane in hu:
            image, geometry = fit_slice(
                window_to_unit(plane, window), size, (row_mm, col_mm), spacing
            )
            slices.append(image)
    assert geometry is not None  # _load_nifti refuses volumes that are not 3-D
    return np.stack(slices), VolumeGrid(Path(path), volume, ornt, axial, geometry)


def read_png_slice(
    path: Path, size: int, spacing: float | None
) -> tuple[np.ndarray, SliceGeometry]:
    """An 8-bit windowed PNG slice as a uint8 ``(size, size)`` model input, and its geometry.

    Raises:
        ValueError: An unreadable or 16-bit PNG, or ``spacing`` set (PNGs record no spacing).
    """
    if spacing is not None:
        raise ValueError(
            f"data.spacing={spacing} resamples to a common pixel spacing, but {path} is a PNG "
            "slice, which records no spacing; predict on NIfTI volumes, or use a model trained "
            "without data.spacing"
        )
    image = _read_png(path, "image", None)
    return _resize_image(image, size), SliceGeometry(*image.shape, size)


#: Accepted ``--predict_from`` inputs of the liver presets, for error messages.
LIVER_INPUTS = "a NIfTI volume, a folder of volumes, or liver slice PNGs (a file or a folder)"


def _is_truth(file: Path, root: Path) -> bool:
    """A LiTS segmentation or a slice-folder mask: ground truth beside the inputs, not an input."""
    rel = file.relative_to(root).parts if root.is_dir() else (file.name,)
    return file.name.lower().startswith("segmentation-") or "masks" in rel[:-1]


def liver_predict_items(
    path: Path, size: int, window: Sequence[float], spacing: float | None
) -> PredictItems:
    """Every CT input under ``path``: NIfTI volumes slice by slice, PNG slices one by one.

    ``segmentation-*`` volumes and files in ``masks/`` folders are ground truth, not inputs, and
    are skipped (logged).

    Shape:
        item: ``(image float32 (1, size, size) in [0, 1], index)``.
    """
    path = Path(path).expanduser()
    files = find_files(path, (*NIFTI_SUFFIXES, ".png"), LIVER_INPUTS)
    truth = [f for f in files if _is_truth(f, path)]
    if truth:
        log.info("%s: skipping %d ground-truth file(s) (segmentation-*, masks/)", path, len(truth))
    files = [f for f in files if not _is_truth(f, path)]
    if not files:
        raise FileNotFoundError(
            f"--predict_from {path} holds only ground truth; pass {LIVER_INPUTS}"
        )
    images, sources, names, sizes, volume_of, grids = [], [], [], [], [], []
    for file in files:
        name = output_name(file, path)
        if file.name.lower().endswith(NIFTI_SUFFIXES):
            slices, grid = read_volume(file, size, window, spacing)
            images += list(slices)
            sources += [f"{file}:{z}" for z in range(len(slices))]
            names += [name] * len(slices)
            sizes += [(grid.geometry.rows, grid.geometry.cols)] * len(slices)
            volume_of += [len(grids)] * len(slices)
            grids.append(grid)
        else:
            image, geometry = read_png_slice(file, size, spacing)
            images.append(image)
            sources.append(str(file))
            names.append(name)
            sizes.append((geometry.rows, geometry.cols))
            volume_of.append(-1)
    log.info("predicting %d slice(s): %d volume(s), %d PNG slice(s)",
             len(images), len(grids), volume_of.count(-1))  # fmt: skip
    to_unit = v2.ToDtype(torch.float32, scale=True)  # uint8 -> [0, 1], as the slice datasets
    inputs = ArrayDataset(np.stack(images), np.zeros(len(images), np.int64), to_unit)
    return PredictItems(
        inputs, sources, names, None, np.asarray(sizes, np.int64), grids, np.asarray(volume_of)
    )
