"""Liver CT decoding: PNG slices and NIfTI volumes to windowed, resized uint8 slices with labels.

* **Slice folders**: images are display-windowed 8-bit slices (0..255 -> 0..1); masks hold
  0 = background, 255 or 1 = liver (2 = tumour is accepted and merged into liver for the 2-class
  task).
* **NIfTI volumes**: labels 0 background, 1 liver, 2 tumour. Each volume is cut along its axial
  axis (found from the affine) into slices in radiological display orientation (anterior at the
  top, the patient's right on the image's left, as PNG exports show them), HU-windowed to [0, 1].
  The voxel spacing comes from the affine and is recorded per slice as served (after resizing).

Geometry: by default every slice is resized to ``image_size`` square, whatever its field of view.
With a target in-plane ``spacing`` (mm), NIfTI slices are resampled so a pixel is that many
millimetres in every volume, then centre-cropped or padded (air, background) to ``image_size``;
PNG slices carry no spacing, so they cannot be resampled.

Every slice is kept (empty ones too): which slices training skips is the DataModule's choice, and
per-volume scores need whole volumes.

Every fault names the file and what to do about it.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
from litlab.datamodules.liver_sources import LiverSource
from litlab.datamodules.nifti_checks import check_affine, check_labels, check_resampling
from tqdm.auto import tqdm

from litlab.errors import BadInputError

log = logging.getLogger(__name__)

# PNG mask value -> label; 255 marks values outside the classes.
_PNG_MASK_LUT = np.full(256, 255, dtype=np.uint8)
_PNG_MASK_LUT[[0, 1, 2, 255]] = [0, 1, 2, 1]
# Slabs of axial slices read at once from a volume: bounded memory for 512x512x900 volumes.
_SLAB = 32


@dataclass
class LiverSlices:
    """Decoded 2-D slices of every patient.

    Shape:
        images: ``(N, S, S)`` uint8, the windowed image scaled to 0..255.
        masks: ``(N, S, S)`` uint8 labels 0 background, 1 liver, 2 tumour.
        patients: ``(N,)`` patient id of each slice.
        names: ``(N,)`` where each slice came from (``file`` or ``file:axial index``).
        spacing: ``(N, 3)`` float32 millimetres of a pixel row, a pixel column and the slice
            thickness, as served (after resizing); NaN for PNG slices, which carry none.
        foreground: ``(N,)`` bool, whether the slice's mask holds liver (or tumour).
    """

    images: np.ndarray
    masks: np.ndarray
    patients: np.ndarray
    names: np.ndarray
    spacing: np.ndarray
    foreground: np.ndarray


def window_to_unit(hu: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """Clip Hounsfield units to ``window = (low, high)`` and scale to [0, 1] (float32)."""
    low, high = float(window[0]), float(window[1])
    if not high > low:
        raise BadInputError(f"hu_window must be (low, high) with low < high, got {tuple(window)}")
    return np.clip((np.asarray(hu, dtype=np.float32) - low) / (high - low), 0.0, 1.0)


def unit_to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 0..255, rounded."""
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def keep_empty_slice(name: str, fraction: float, seed: int) -> bool:
    """Whether the slice called ``name`` without liver is kept at ``fraction``: a seeded draw per
    slice, so the same slices are kept whatever order the files decode in."""
    if fraction >= 1.0:
        return True
    if fraction <= 0.0:
        return False
    return np.random.default_rng([seed, zlib.crc32(name.encode())]).random() < fraction


def _resize_image(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape == (size, size):
        return image
    shrink = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(
        image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    if mask.shape == (size, size):
        return mask
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST_EXACT)


def _fit_to_spacing(
    image: np.ndarray, mask: np.ndarray, pixel_mm: tuple[float, float], size: int, target: float
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Resample to ``target`` mm per pixel, then centre-crop or pad (0 = air, background) to
    ``size``; returns the image, the mask and the spacing achieved (rows, columns)."""
    h, w = image.shape
    new_h = max(1, round(h * pixel_mm[0] / target))
    new_w = max(1, round(w * pixel_mm[1] / target))
    shrink = new_h < h or new_w < w
    image = cv2.resize(
        image, (new_w, new_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
    mask = cv2.resize(mask, (new_w, new_h), interpolation=cv2.INTER_NEAREST_EXACT)
    out_image = np.zeros((size, size), image.dtype)
    out_mask = np.zeros((size, size), mask.dtype)
    sy, dy = max(0, (new_h - size) // 2), max(0, (size - new_h) // 2)
    sx, dx = max(0, (new_w - size) // 2), max(0, (size - new_w) // 2)
    ch, cw = min(size, new_h), min(size, new_w)
    out_image[dy : dy + ch, dx : dx + cw] = image[sy : sy + ch, sx : sx + cw]
    out_mask[dy : dy + ch, dx : dx + cw] = mask[sy : sy + ch, sx : sx + cw]
    return out_image, out_mask, (pixel_mm[0] * h / new_h, pixel_mm[1] * w / new_w)


def _read_png(path: Path, what: str, partner: Path | None) -> np.ndarray:
    try:
        data = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except (OSError, cv2.error) as err:
        raise BadInputError(f"cannot read {what} {path}: {err}") from err
    if data is None:
        raise BadInputError(
            f"cannot read {what} {path}: not a readable PNG (corrupt, truncated or another "
            f"format); re-export it as PNG or remove it"
            + (f" together with {partner}" if partner else "")
        )
    if data.dtype != np.uint8:
        raise BadInputError(
            f"{what} {path} is a {data.dtype} PNG; slice folders hold 8-bit display-windowed "
            "slices — convert it to 8-bit, or load the CT volumes as NIfTI to apply an HU window"
        )
    if data.ndim == 3:
        colour = data[..., :3]
        if (colour == colour[..., :1]).all():
            data = colour[..., 0]
        elif what == "image":
            data = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
        else:
            raise BadInputError(
                f"mask {path} is a colour image with differing channels; save it as a "
                "single-channel PNG with 0 = background and 255 (or 1) = liver"
            )
    return np.ascontiguousarray(data)


def _png_labels(mask: np.ndarray, path: Path) -> np.ndarray:
    labels = _PNG_MASK_LUT[mask]
    if (labels == 255).any():
        bad = sorted(int(v) for v in np.unique(mask[labels == 255]))
        shown = ", ".join(map(str, bad[:8])) + (", ..." if len(bad) > 8 else "")
        raise BadInputError(
            f"mask {path} holds value(s) {shown} outside the classes; slice-folder masks use "
            "0 = background and 255 (or 1) = liver (2 = tumour). Save masks as lossless PNG "
            "with only those values (JPEG or anti-aliased masks have in-between values)"
        )
    return labels


#: images, masks, names and (row, column, thickness) spacing of the slices of one source
_Decoded = tuple[list[np.ndarray], list[np.ndarray], list[str], list[tuple[float, float, float]]]
_NO_SPACING = (float("nan"),) * 3


def _decode_png(src: LiverSource, size: int, spacing: float | None) -> _Decoded:
    if spacing is not None:
        raise BadInputError(
            f"data.spacing={spacing} resamples to a common pixel spacing, but {src.image} is a "
            "PNG slice, which records no spacing; drop data.spacing, or load NIfTI volumes only "
            "(data.layout=nifti)"
        )
    mask = _read_png(src.mask, "mask", src.image)
    image = _read_png(src.image, "image", src.mask)
    if image.shape != mask.shape:
        raise BadInputError(
            f"image {src.image} is {image.shape[1]}x{image.shape[0]} but its mask {src.mask} "
            f"is {mask.shape[1]}x{mask.shape[0]}; the mask must have the image's size"
        )
    labels = _png_labels(mask, src.mask)
    resized = [_resize_image(image, size)], [_resize_mask(labels, size)]
    return resized[0], resized[1], [str(src.image)], [_NO_SPACING]


def _load_nifti(path: Path, what: str) -> nib.Nifti1Image:
    try:
        img = nib.load(path)
    except Exception as err:  # nibabel raises many types for a damaged header
        raise BadInputError(
            f"cannot read {what} {path}: {err}; the file is not a readable NIfTI image — "
            "re-export it or remove the volume/segmentation pair"
        ) from err
    if len(img.shape) != 3:
        raise BadInputError(
            f"{what} {path} has shape {img.shape}; expected a 3-D CT volume (x, y, z) — "
            "split 4-D series into one file per volume"
        )
    if what == "volume":
        check_affine(img, path)
    return img


def _read_slab(img: nib.Nifti1Image, index: tuple, path: Path, what: str) -> np.ndarray:
    try:
        return np.asarray(img.dataobj[index])
    except Exception as err:  # truncated gzip: EOFError, zlib.error, OSError...
        raise BadInputError(
            f"cannot read the voxels of {what} {path}: {err}; the file is truncated or "
            "corrupt — re-download or re-export it"
        ) from err


def _display_spacing(
    affine: np.ndarray, ornt: np.ndarray, axial: int
) -> tuple[float, float, float]:
    # Millimetres of a display row step (RAS y), a column step (RAS x) and the slice thickness.
    sizes = nib.affines.voxel_sizes(affine)
    by_ras = {int(ornt[axis, 0]): float(sizes[axis]) for axis in range(3)}
    return by_ras[1], by_ras[0], float(sizes[axial])


def _display_ornt(affine: np.ndarray) -> tuple[np.ndarray, int]:
    # Orientation to RAS, but keep the array's own z order: slices are independent.
    ornt = nib.io_orientation(affine)
    axial = int(np.flatnonzero(ornt[:, 0] == 2)[0])
    ornt[axial, 1] = 1
    return ornt, axial


def _to_display(slab: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    # RAS (x right, y anterior, z) -> (z, rows anterior->posterior, cols patient right->left).
    ras = nib.orientations.apply_orientation(slab, ornt)
    return np.ascontiguousarray(ras[::-1, ::-1, :].transpose(2, 1, 0))


def _decode_nifti(
    src: LiverSource, size: int, window: Sequence[float], spacing: float | None
) -> _Decoded:
    volume = _load_nifti(src.image, "volume")
    segmentation = _load_nifti(src.mask, "segmentation")
    if volume.shape != segmentation.shape:
        raise BadInputError(
            f"volume {src.image} has shape {volume.shape} but segmentation {src.mask} has "
            f"{segmentation.shape}; the segmentation must be on the volume's voxel grid"
        )
    if not np.allclose(volume.affine, segmentation.affine, atol=1e-3):
        log.warning(
            "%s and %s have different affines; using the volume's orientation for both",
            src.image,
            src.mask,
        )
    ornt, axial = _display_ornt(volume.affine)
    row_mm, col_mm, thickness = _display_spacing(volume.affine, ornt, axial)
    if spacing is not None:
        check_resampling(src.image, volume.shape, axial, max(row_mm, col_mm), spacing)
    images, masks, names, spacings = [], [], [], []
    depth = volume.shape[axial]
    for start in range(0, depth, _SLAB):
        index = tuple(
            slice(start, min(start + _SLAB, depth)) if axis == axial else slice(None)
            for axis in range(3)
        )
        hu = _to_display(_read_slab(volume, index, src.image, "volume").astype(np.float32), ornt)
        labels = _to_display(
            check_labels(_read_slab(segmentation, index, src.mask, "segmentation"), src.mask),
            ornt,
        )
        for offset in range(hu.shape[0]):
            unit, label = window_to_unit(hu[offset], window), labels[offset]
            h, w = unit.shape
            if spacing is None:
                unit, label = _resize_image(unit, size), _resize_mask(label, size)
                served = (row_mm * h / size, col_mm * w / size)
            else:
                unit, label, served = _fit_to_spacing(unit, label, (row_mm, col_mm), size, spacing)
            images.append(unit_to_uint8(unit))
            masks.append(label)
            names.append(f"{src.image}:{start + offset}")
            spacings.append((*served, thickness))
    return images, masks, names, spacings


def decode_sources(
    sources: Sequence[LiverSource],
    image_size: int,
    hu_window: Sequence[float],
    spacing: float | None = None,
    workers: int | None = None,
) -> LiverSlices:
    """Decode every slice of every source to ``image_size`` (threads; cv2, zlib release the GIL).

    Args:
        sources: From :func:`~litlab.datamodules.liver_sources.discover_sources`.
        image_size: Side of the square slices served.
        hu_window: Hounsfield window scaled to [0, 1] for NIfTI volumes.
        spacing: ``None`` resizes every slice to ``image_size``; millimetres resample NIfTI
            slices to that in-plane pixel spacing and crop or pad them to ``image_size``.
        workers: Decoding threads (default: up to 8).

    Raises:
        BadInputError: A file cannot be decoded, ``spacing`` is given with PNG slices, or no mask
            holds liver.
    """
    if spacing is not None and not spacing > 0:
        raise BadInputError(f"spacing must be a positive number of millimetres, got {spacing}")
    workers = workers or min(8, os.cpu_count() or 1)

    def decode(src: LiverSource) -> _Decoded:
        if src.kind == "nifti":
            return _decode_nifti(src, image_size, hu_window, spacing)
        return _decode_png(src, image_size, spacing)

    images: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    names: list[str] = []
    patients: list[str] = []
    spacings: list[tuple[float, float, float]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(decode, sources)
        for src, (imgs, msks, nms, sps) in zip(
            sources,
            tqdm(results, total=len(sources), desc="decoding liver slices", unit="file"),
            strict=True,
        ):
            images += imgs
            masks += msks
            names += nms
            spacings += sps
            patients += [src.patient] * len(nms)
    foreground = np.array([m.any() for m in masks], dtype=bool)
    if not foreground.any():
        raise BadInputError(
            f"no mask of the {len(sources)} file(s) under {sources[0].image.parent} holds liver "
            "(every label is 0); check that the masks belong to the images and use 1 or 255 "
            "for liver"
        )
    log.info(
        "decoded %d slices of %d patients (%d without liver)",
        len(images),
        len(set(patients)),
        int((~foreground).sum()),
    )
    return LiverSlices(
        images=np.stack(images),
        masks=np.stack(masks),
        patients=np.asarray(patients, dtype=str),
        names=np.asarray(names, dtype=str),
        spacing=np.asarray(spacings, dtype=np.float32).reshape(-1, 3),
        foreground=foreground,
    )
