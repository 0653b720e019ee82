"""Face masks for segment-then-classify: a user mask folder, background removal, a preview grid.

Masks mirror the image layout (``<split>/<class>/<name>.png``, nonzero = face). Without a mask
folder, :mod:`litlab.datamodules.pseudo_masks` makes them. :func:`mask_preview_grid` draws rows of
image / mask overlay / segmented image so a user can judge masks before training on them, and
:class:`litlab.datamodules.face_segmentation.FaceMaskDataModule` serves ``(image, mask)`` pairs
for the segmenter.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from litlab.datamodules.folders import IMAGE_EXTENSIONS, decode_image

log = logging.getLogger(__name__)

BACKGROUND_MODES: tuple[str, ...] = ("zero", "blur")
MASK_CLASSES: tuple[str, ...] = ("background", "face")


def load_mask_folder(
    mask_root: str | Path, image_root: str | Path, paths: list[Path], size: int
) -> np.ndarray:
    """Masks for ``paths`` from a folder mirroring the image folder's layout.

    ``image_root/train/autistic/001.jpg`` takes its mask from ``mask_root/train/autistic/001.*``
    (any image extension); any nonzero pixel is face.

    Returns:
        ``(N, size, size)`` uint8, 1 on the face (resized with nearest neighbour).

    Raises:
        FileNotFoundError: ``mask_root`` is missing, or an image has no mask (the first few named).
    """
    mask_root, image_root = Path(mask_root).expanduser(), Path(image_root).expanduser()
    if not mask_root.is_dir():
        raise FileNotFoundError(f"mask folder {mask_root} does not exist")
    found, missing = [], []
    for path in paths:
        rel = Path(path).relative_to(image_root).with_suffix("")
        hits = [
            mask_root / rel.with_suffix(ext)
            for ext in IMAGE_EXTENSIONS
            if (mask_root / rel.with_suffix(ext)).is_file()
        ]
        (found.append(hits[0]) if hits else missing.append(str(rel)))
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) have no mask under {mask_root}, e.g. {missing[:3]}; masks "
            "must mirror the image layout (<split>/<class>/<name>.png), or leave data.mask_root "
            "unset to make pseudo-masks"
        )
    masks = np.stack([decode_image(p, "gray") for p in found]) if found else np.zeros((0,))
    out = np.stack([cv2.resize(m, (size, size), interpolation=cv2.INTER_NEAREST) for m in masks])
    return (out > 0).astype(np.uint8)


def remove_background(
    images: np.ndarray, masks: np.ndarray, mode: str = "zero", blur_sigma: float = 8.0
) -> np.ndarray:
    """Keep face pixels, remove the rest: set to zero or replace by a strong Gaussian blur.

    Args:
        images: ``(N, H, W, 3)`` or one ``(H, W, 3)`` uint8 image.
        masks: ``(N, H, W)`` / ``(H, W)``, nonzero on the face.
        mode: ``"zero"`` (black background, as a segmentation cut-out) or ``"blur"`` (keeps the
            background's coarse colour, removes its detail).
        blur_sigma: Gaussian sigma in pixels for ``"blur"``.

    Returns:
        Same shape and dtype as ``images``; face pixels unchanged.
    """
    if mode not in BACKGROUND_MODES:
        raise ValueError(f"background mode must be one of {BACKGROUND_MODES}, got {mode!r}")
    if images.shape[:-1] != masks.shape:
        raise ValueError(f"images {images.shape} and masks {masks.shape} do not match")
    keep = (masks > 0)[..., None]
    if mode == "zero":
        return np.where(keep, images, 0).astype(np.uint8)
    batch = images[None] if images.ndim == 3 else images
    blurred = np.stack([cv2.GaussianBlur(im, (0, 0), blur_sigma) for im in batch])
    blurred = blurred[0] if images.ndim == 3 else blurred
    return np.where(keep, images, blurred).astype(np.uint8)


def mask_preview_grid(
    images: np.ndarray,
    masks: np.ndarray,
    segmented: np.ndarray | None = None,
    max_rows: int = 8,
    gap: int = 2,
) -> np.ndarray:
    """Rows of image / mask overlay / segmented image (the last column only when given).

    Args:
        images: ``(N, H, W, 3)`` RGB uint8.
        masks: ``(N, H, W)``, nonzero on the face.
        segmented: ``(N, H, W, 3)`` background-removed images, or ``None`` to compute the
            zero-background cut-out.
        max_rows: At most this many samples.
        gap: White pixels between tiles.

    Returns:
        RGB uint8 ``(rows * (H + gap) - gap, 3 * (W + gap) - gap, 3)``.
    """
    rows = min(max_rows, len(images))
    if rows == 0:
        raise ValueError("mask_preview_grid got no images")
    h, w = images.shape[1:3]
    if segmented is None:
        segmented = remove_background(images[:rows], masks[:rows], "zero")
    grid = np.full((rows * (h + gap) - gap, 3 * (w + gap) - gap, 3), 255, np.uint8)
    for r in range(rows):
        overlay = images[r].astype(np.float32)
        face = (masks[r] > 0)[..., None]
        overlay = np.where(face, 0.55 * overlay + 0.45 * np.array([42, 157, 143]), overlay * 0.6)
        contours, _ = cv2.findContours(
            (masks[r] > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        overlay = overlay.round().astype(np.uint8)
        cv2.drawContours(overlay, contours, -1, (255, 255, 0), 1)
        tiles = (images[r], overlay, segmented[r])
        for c, tile in enumerate(tiles):
            y, x = r * (h + gap), c * (w + gap)
            grid[y : y + h, x : x + w] = tile
    return grid


def save_rgb_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB (or gray) uint8 image as PNG with OpenCV; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(path), bgr):
        raise OSError(f"could not write {path}")
    return path
