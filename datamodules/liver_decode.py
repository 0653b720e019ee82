"""Liver CT decoding: PNG slices and NIfTI volumes to windowed, resized uint8 slices with labels.

* **Slice folders**: images are display-windowed 8-bit slices (0..255 -> 0..1); masks hold
  0 = background, 255 or 1 = liver (2 = tumour is accepted and merged into liver for the 2-class
  task).
* **NIfTI volumes**: labels 0 background, 1 liver, 2 tumour. Each volume is cut along its axial
  axis (found from the affine) into slices in radiological display orientation (anterior at the
  top, the patient's right on the image's left, as PNG exports show them), HU-windowed to [0, 1].

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
from tqdm.auto import tqdm

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
    """

    images: np.ndarray
    masks: np.ndarray
    patients: np.ndarray
    names: np.ndarray


def window_to_unit(hu: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """Clip Hounsfield units to ``window = (low, high)`` and scale to [0, 1] (float32)."""
    low, high = float(window[0]), float(window[1])
    if not high > low:
        raise ValueError(f"hu_window must be (low, high) with low < high, got {tuple(window)}")
    return np.clip((np.asarray(hu, dtype=np.float32) - low) / (high - low), 0.0, 1.0)


def unit_to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 0..255, rounded."""
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _keep_empty(name: str, fraction: float, seed: int) -> bool:
    # A per-slice seeded draw: the same slices are kept whatever order files decode in.
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


def _read_png(path: Path, what: str, partner: Path) -> np.ndarray:
    try:
        data = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except (OSError, cv2.error) as err:
        raise ValueError(f"cannot read {what} {path}: {err}") from err
    if data is None:
        raise ValueError(
            f"cannot read {what} {path}: not a readable PNG (corrupt, truncated or another "
            f"format); re-export it as PNG or remove it together with {partner}"
        )
    if data.dtype != np.uint8:
        raise ValueError(
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
            raise ValueError(
                f"mask {path} is a colour image with differing channels; save it as a "
                "single-channel PNG with 0 = background and 255 (or 1) = liver"
            )
    return np.ascontiguousarray(data)


def _png_labels(mask: np.ndarray, path: Path) -> np.ndarray:
    labels = _PNG_MASK_LUT[mask]
    if (labels == 255).any():
        bad = sorted(int(v) for v in np.unique(mask[labels == 255]))
        shown = ", ".join(map(str, bad[:8])) + (", ..." if len(bad) > 8 else "")
        raise ValueError(
            f"mask {path} holds value(s) {shown} outside the classes; slice-folder masks use "
            "0 = background and 255 (or 1) = liver (2 = tumour). Save masks as lossless PNG "
            "with only those values (JPEG or anti-aliased masks have in-between values)"
        )
    return labels


_Decoded = tuple[list[np.ndarray], list[np.ndarray], list[str], int, int]


def _decode_png(src: LiverSource, size: int, empty_fraction: float, seed: int) -> _Decoded:
    mask = _read_png(src.mask, "mask", src.image)
    image = _read_png(src.image, "image", src.mask)
    if image.shape != mask.shape:
        raise ValueError(
            f"image {src.image} is {image.shape[1]}x{image.shape[0]} but its mask {src.mask} "
            f"is {mask.shape[1]}x{mask.shape[0]}; the mask must have the image's size"
        )
    labels = _png_labels(mask, src.mask)
    name = str(src.image)
    empty = not labels.any()
    if empty and not _keep_empty(name, empty_fraction, seed):
        return [], [], [], 1, 0
    return [_resize_image(image, size)], [_resize_mask(labels, size)], [name], 0, int(empty)


def _load_nifti(path: Path, what: str) -> nib.Nifti1Image:
    try:
        img = nib.load(path)
    except Exception as err:  # nibabel raises many types for a damaged header
        raise ValueError(
            f"cannot read {what} {path}: {err}; the file is not a readable NIfTI image — "
            "re-export it or remove the volume/segmentation pair"
        ) from err
    if len(img.shape) != 3:
        raise ValueError(
            f"{what} {path} has shape {img.shape}; expected a 3-D CT volume (x, y, z) — "
            "split 4-D series into one file per volume"
        )
    return img


def _read_slab(img: nib.Nifti1Image, index: tuple, path: Path, what: str) -> np.ndarray:
    try:
        return np.asarray(img.dataobj[index])
    except Exception as err:  # truncated gzip: EOFError, zlib.error, OSError...
        raise ValueError(
            f"cannot read the voxels of {what} {path}: {err}; the file is truncated or "
            "corrupt — re-download or re-export it"
        ) from err


def _check_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.rint(labels)):
        raise ValueError(
            f"segmentation {path} holds non-integer labels; expected 0 background, 1 liver, "
            "2 tumour (LiTS) — save it with an integer label type"
        )
    low, high = labels.min(), labels.max()
    if low < 0 or high > 2:
        bad = sorted({int(v) for v in np.unique(labels) if v < 0 or v > 2})
        raise ValueError(
            f"segmentation {path} holds label(s) {bad} outside the classes; expected "
            "0 background, 1 liver, 2 tumour (LiTS) — remap other labels before loading"
        )
    return labels.astype(np.uint8)


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
    src: LiverSource, size: int, window: Sequence[float], empty_fraction: float, seed: int
) -> _Decoded:
    volume = _load_nifti(src.image, "volume")
    segmentation = _load_nifti(src.mask, "segmentation")
    if volume.shape != segmentation.shape:
        raise ValueError(
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
    images, masks, names = [], [], []
    dropped = kept_empty = 0
    depth = volume.shape[axial]
    for start in range(0, depth, _SLAB):
        index = tuple(
            slice(start, min(start + _SLAB, depth)) if axis == axial else slice(None)
            for axis in range(3)
        )
        hu = _to_display(_read_slab(volume, index, src.image, "volume").astype(np.float32), ornt)
        labels = _to_display(
            _check_labels(_read_slab(segmentation, index, src.mask, "segmentation"), src.mask),
            ornt,
        )
        for offset in range(hu.shape[0]):
            name = f"{src.image}:{start + offset}"
            empty = not labels[offset].any()
            if empty and not _keep_empty(name, empty_fraction, seed):
                dropped += 1
                continue
            kept_empty += int(empty)
            images.append(unit_to_uint8(_resize_image(window_to_unit(hu[offset], window), size)))
            masks.append(_resize_mask(labels[offset], size))
            names.append(name)
    return images, masks, names, dropped, kept_empty


def decode_sources(
    sources: Sequence[LiverSource],
    image_size: int,
    hu_window: Sequence[float],
    empty_slice_fraction: float,
    seed: int,
    workers: int | None = None,
) -> LiverSlices:
    """Decode every source to ``image_size`` slices (threads; cv2, zlib release the GIL).

    Slices without liver are kept with probability ``empty_slice_fraction`` (a seeded draw per
    slice); slices with liver are always kept.
    """
    workers = workers or min(8, os.cpu_count() or 1)

    def decode(src: LiverSource) -> _Decoded:
        if src.kind == "nifti":
            return _decode_nifti(src, image_size, hu_window, empty_slice_fraction, seed)
        return _decode_png(src, image_size, empty_slice_fraction, seed)

    images: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    names: list[str] = []
    patients: list[str] = []
    dropped = kept_empty = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(decode, sources)
        for src, (imgs, msks, nms, n_dropped, n_empty) in zip(
            sources,
            tqdm(results, total=len(sources), desc="decoding liver slices", unit="file"),
            strict=True,
        ):
            images += imgs
            masks += msks
            names += nms
            patients += [src.patient] * len(nms)
            dropped += n_dropped
            kept_empty += n_empty
    if not images:
        raise ValueError(
            f"no slice was kept from {len(sources)} file(s): none holds liver and "
            f"empty_slice_fraction={empty_slice_fraction}; check the masks or raise the fraction"
        )
    log.info(
        "decoded %d slices of %d patients (%d without liver kept, %d dropped by "
        "empty_slice_fraction=%g)",
        len(images),
        len(set(patients)),
        kept_empty,
        dropped,
        empty_slice_fraction,
    )
    return LiverSlices(
        images=np.stack(images),
        masks=np.stack(masks),
        patients=np.asarray(patients, dtype=str),
        names=np.asarray(names, dtype=str),
    )
