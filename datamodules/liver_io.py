"""Liver CT readers: find slice folders and NIfTI volumes, decode them once into cached arrays.

Two real layouts are understood, alone or side by side under one root:

* **Slice folders**: ``images/*.png`` with ``masks/*.png`` of the same names. Images are
  display-windowed 8-bit slices (0..255 -> 0..1); masks hold 0 = background, 255 or 1 =
  liver (2 = tumour is accepted and merged into liver for the 2-class task).
* **NIfTI volumes** (LiTS naming): ``volume-<id>.nii[.gz]`` with ``segmentation-<id>.nii[.gz]``
  (labels 0 background, 1 liver, 2 tumour). Each volume is cut along its axial axis (found from
  the affine) into slices in radiological display orientation (anterior at the top, the
  patient's right on the image's left, as PNG exports show them), HU-windowed to [0, 1].

Patients, which the split keeps together:

* a NIfTI volume is one patient, ``volume-<id>``;
* slice folders: when several ``<name>/images`` + ``<name>/masks`` folders share a parent
  directory, each ``<name>`` is one patient. A slice folder alone in its directory (for example
  ``root/images`` or ``root/slices/images``) is flat: the patient is read from each file stem with
  ``patient_regex`` (default :data:`DEFAULT_PATIENT_REGEX`: everything before an optional
  ``_slice``/``-slice`` and the trailing number, so ``p07_slice012.png`` and ``volume-3_45.png``
  belong to ``p07`` and ``volume-3``).
* the same id anywhere under the root is the same patient, so a volume also exported as PNG
  slices named ``volume-<id>_<n>.png`` can never land in two splits.

Decoded slices are cached as uint8 arrays under ``cache_root()/liver/<key>/``; the key hashes the
file list (path, size, mtime) and every decoding option, so a changed file or option re-decodes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
from litlab.datamodules.base import cache_root
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

#: Bump when decoding changes, so stale caches are not reused.
CACHE_VERSION = 1
#: Patient = the file stem before an optional ``_slice``/``-slice`` and the trailing number.
DEFAULT_PATIENT_REGEX = r"(?P<patient>.+?)(?:[_ -]?slice)?[_ -]?(?<!\d)\d+"
LAYOUTS = ("auto", "slices", "nifti")

_VOLUME_RE = re.compile(r"volume-(?P<id>.+?)\.nii(?:\.gz)?", re.IGNORECASE)
_SEGMENTATION_RE = re.compile(r"segmentation-(?P<id>.+?)\.nii(?:\.gz)?", re.IGNORECASE)
# PNG mask value -> label; 255 marks values outside the classes.
_PNG_MASK_LUT = np.full(256, 255, dtype=np.uint8)
_PNG_MASK_LUT[[0, 1, 2, 255]] = [0, 1, 2, 1]
# Slabs of axial slices read at once from a volume: bounded memory for 512x512x900 volumes.
_SLAB = 32


@dataclass(frozen=True)
class LiverSource:
    """One decodable unit: a PNG image/mask pair or a NIfTI volume/segmentation pair."""

    kind: str  # "png" or "nifti"
    patient: str
    image: Path
    mask: Path


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


# ----------------------------------------------------------------------------- discovery


def discover_sources(
    root: Path, layout: str = "auto", patient_regex: str = DEFAULT_PATIENT_REGEX
) -> list[LiverSource]:
    """Every image/mask pair under ``root`` in the requested layout(s), sorted.

    Raises:
        FileNotFoundError: ``root`` is missing or holds no data of the layout.
        ValueError: an image without mask (or the reverse), duplicate volume ids, a file name
            the patient regex cannot read.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"liver data root {root} does not exist or is not a directory; pass the folder that "
            "holds images/ + masks/ slice folders or volume-*.nii[.gz] files (or root=None for "
            "the generated phantoms)"
        )
    sources: list[LiverSource] = []
    if layout in ("auto", "nifti"):
        sources += _nifti_sources(root)
    if layout in ("auto", "slices"):
        sources += _png_sources(root, patient_regex)
    if not sources:
        wanted = {
            "auto": "slice folders (images/*.png + masks/*.png) or NIfTI volumes "
            "(volume-*.nii[.gz] + segmentation-*.nii[.gz])",
            "slices": "slice folders (images/*.png + masks/*.png with the same names)",
            "nifti": "NIfTI volumes (volume-*.nii[.gz] + segmentation-*.nii[.gz])",
        }[layout]
        raise FileNotFoundError(f"no liver data under {root}: expected {wanted}")
    return sources


def _nifti_sources(root: Path) -> list[LiverSource]:
    volumes: dict[str, Path] = {}
    segmentations: dict[str, Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        for pattern, found in ((_VOLUME_RE, volumes), (_SEGMENTATION_RE, segmentations)):
            match = pattern.fullmatch(path.name)
            if match:
                key = match["id"]
                if key in found:
                    raise ValueError(
                        f"two files for id {key!r}: {found[key]} and {path}; keep one "
                        "(volume ids must be unique under the root)"
                    )
                found[key] = path
    for key in sorted(volumes.keys() - segmentations.keys()):
        raise ValueError(
            f"volume {volumes[key]} has no segmentation-{key}.nii[.gz]; add the segmentation "
            "or move the volume out of the data root"
        )
    for key in sorted(segmentations.keys() - volumes.keys()):
        raise ValueError(
            f"segmentation {segmentations[key]} has no volume-{key}.nii[.gz]; add the volume "
            "or move the segmentation out of the data root"
        )
    return [
        LiverSource("nifti", f"volume-{key}", volumes[key], segmentations[key])
        for key in sorted(volumes, key=_natural_key)
    ]


def _png_sources(root: Path, patient_regex: str) -> list[LiverSource]:
    try:
        pattern = re.compile(patient_regex)
    except re.error as err:
        raise ValueError(f"patient_regex {patient_regex!r} is not a valid regex: {err}") from err
    folders = []
    for candidate in sorted([root, *(p for p in root.rglob("*") if p.is_dir())]):
        images, masks = candidate / "images", candidate / "masks"
        if images.is_dir() and masks.is_dir():
            folders.append(candidate)
        elif images.is_dir() != masks.is_dir() and _pngs(images if images.is_dir() else masks):
            present, absent = (images, masks) if images.is_dir() else (masks, images)
            raise ValueError(
                f"{present} has no sibling {absent.name}/ folder; slice folders need both "
                f"images/ and masks/ (same file names) — add {absent}"
            )
    siblings: dict[Path, int] = defaultdict(int)
    for folder in folders:
        siblings[folder.parent] += 1
    sources = []
    for folder in folders:
        per_patient = siblings[folder.parent] > 1
        sources += _pair_pngs(folder, folder.name if per_patient else None, pattern)
    return sources


def _pngs(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png"}


def _pair_pngs(folder: Path, patient: str | None, pattern: re.Pattern) -> list[LiverSource]:
    images, masks = _pngs(folder / "images"), _pngs(folder / "masks")
    for names, have, lack, what in (
        (sorted(images.keys() - masks.keys()), "image", "masks", "mask"),
        (sorted(masks.keys() - images.keys()), "mask", "images", "image"),
    ):
        if names:
            more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            raise ValueError(
                f"{have} {folder / (have + 's') / names[0]}{more} has no {what} "
                f"{folder / lack / names[0]}; add the {what} with the same file name or remove "
                f"the {have}"
            )
    sources = []
    for name in sorted(images, key=_natural_key):
        sources.append(
            LiverSource(
                "png",
                patient if patient is not None else _patient_from_name(images[name], pattern),
                images[name],
                masks[name],
            )
        )
    return sources


def _patient_from_name(path: Path, pattern: re.Pattern) -> str:
    match = pattern.fullmatch(path.stem)
    patient = None
    if match:
        patient = match.groupdict().get("patient") or (match.group(1) if match.re.groups else None)
    if not patient:
        raise ValueError(
            f"cannot tell the patient of {path}: patient_regex {pattern.pattern!r} does not "
            "find one in its name. Name slices '<patient>_slice<N>.png', put each patient in "
            "'<patient>/images' + '<patient>/masks', or pass patient_regex with a named group "
            "'patient' ('(?P<patient>.+)' makes every slice its own patient, which leaks "
            "neighbouring slices of one scan into different splits)"
        )
    return patient


def _natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


# ----------------------------------------------------------------------------- decoding


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


# ----------------------------------------------------------------------------- cache


def cache_key(sources: Iterable[LiverSource], options: dict) -> str:
    """Hash of the file list (path, size, mtime) and decoding options."""
    files = []
    for src in sources:
        for path in (src.image, src.mask):
            stat = path.stat()
            files.append([str(path.resolve()), src.patient, stat.st_size, stat.st_mtime_ns])
    blob = json.dumps({"version": CACHE_VERSION, "options": options, "files": files})
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_or_decode(
    sources: Sequence[LiverSource],
    image_size: int,
    hu_window: Sequence[float],
    empty_slice_fraction: float,
    seed: int,
) -> LiverSlices:
    """Decoded slices from the cache, decoding (and caching) them on a miss.

    The cache is written to a temporary folder and renamed into place, so processes that
    decode at the same time (DDP ranks, sweep workers) never read a half-written cache.
    """
    options = {
        "image_size": int(image_size),
        "hu_window": [float(v) for v in hu_window],
        "empty_slice_fraction": float(empty_slice_fraction),
        "seed": int(seed),
    }
    folder = cache_root() / "liver" / cache_key(sources, options)
    if (folder / "meta.json").is_file():
        try:
            return _read_cache(folder)
        except (OSError, ValueError, KeyError) as err:
            log.warning("ignoring unreadable liver cache %s (%s); decoding again", folder, err)
    slices = decode_sources(sources, image_size, hu_window, empty_slice_fraction, seed)
    _write_cache(folder, slices, options)
    return slices


def _read_cache(folder: Path) -> LiverSlices:
    meta = json.loads((folder / "meta.json").read_text())
    slices = LiverSlices(
        images=np.load(folder / "images.npy", mmap_mode="r"),
        masks=np.load(folder / "masks.npy", mmap_mode="r"),
        patients=np.asarray(meta["patients"], dtype=str),
        names=np.asarray(meta["names"], dtype=str),
    )
    if not len(slices.images) == len(slices.masks) == len(slices.patients):
        raise ValueError("array lengths differ")
    log.info("loaded %d cached liver slices from %s", len(slices.images), folder)
    return slices


def _write_cache(folder: Path, slices: LiverSlices, options: dict) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        np.save(tmp / "images.npy", slices.images)
        np.save(tmp / "masks.npy", slices.masks)
        meta = {
            "options": options,
            "patients": slices.patients.tolist(),
            "names": slices.names.tolist(),
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        # Losing the race to another process is fine: it wrote the same data.
        with contextlib.suppress(OSError):
            tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
