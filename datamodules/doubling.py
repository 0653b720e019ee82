"""The triplet paper's training-set doubling: every image plus one seeded augmented copy, cached.

The paper doubles its training set with rotated, cropped and shifted copies (its example: a
45-degree rotation, then a shift of 5 px right and 10 px down). :func:`augmented_copy` makes one
such copy; :func:`double_training_set` appends one copy of every image, drawn once from a seed
and cached by the pixels, so every epoch sees the same copies, as a doubled dataset on disk would.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
from litlab.datamodules.cache import write_atomically
from tqdm.auto import tqdm

# Bump when the copies change, so stale caches are never reused.
_DOUBLING_VERSION = 1


def augmented_copy(
    image: np.ndarray,
    rng: np.random.Generator,
    max_rotation: float = 45.0,
    max_shift: float = 10.0,
    min_crop: float = 0.8,
) -> np.ndarray:
    """One rotated, cropped and shifted copy of a gray uint8 image (same size).

    The angle is uniform in ``[-max_rotation, max_rotation]``, the crop keeps a square of side
    ``U(min_crop, 1)`` of the image (scaled back up), and the shift is uniform in
    ``[-max_shift, max_shift]`` px on each axis. Borders are filled by reflection.
    """
    h, w = image.shape[:2]
    angle = rng.uniform(-max_rotation, max_rotation)
    crop = rng.uniform(min_crop, 1.0)
    dx, dy = rng.uniform(-max_shift, max_shift, size=2)
    # rotation about the centre with zoom 1/crop == rotate then crop a centred square and resize
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0 / crop)
    # the crop's centre moves too, by up to the margin it leaves
    margin = (1 - crop) / 2
    cx, cy = rng.uniform(-margin, margin, size=2) * (w, h)
    matrix[:, 2] += (dx + cx, dy + cy)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)  # fmt: skip


def double_training_set(
    images: np.ndarray, labels: np.ndarray, seed: int, cache_dir: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The paper's doubling: originals followed by one augmented copy of each, cached by content.

    Args:
        images: ``(N, H, W)`` uint8.
        labels: ``(N,)`` int64.
        seed: Seed of the copies.
        cache_dir: Where the ``(2N, H, W)`` array is cached (keyed by pixels, seed and version).

    Returns:
        ``(2N, H, W)`` uint8 images and ``(2N,)`` labels.
    """
    digest = hashlib.sha1(np.ascontiguousarray(images).tobytes())
    digest.update(f"|{seed}|v{_DOUBLING_VERSION}".encode())
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"doubled-{digest.hexdigest()[:20]}.npy"
        if cache_file.is_file():
            return np.load(cache_file), np.concatenate([labels, labels])
    rng = np.random.default_rng(seed)
    copies = np.stack(
        [augmented_copy(im, rng) for im in tqdm(images, desc="doubling train set", leave=False)]
    )
    doubled = np.concatenate([images, copies])
    if cache_file is not None:
        write_atomically(cache_file, lambda tmp: np.save(tmp, doubled))
    return doubled, np.concatenate([labels, labels])
