"""Image identity: exact ids from the md5 of the pixels, near-duplicates from difference hashes.

Two questions are asked of held-out images: is this exact image also in the training data
(:func:`count_duplicates`, md5 of the pixel bytes), and is a re-encoded or resized copy of it
there (:func:`dhash` and :func:`count_near_duplicates`, Hamming distance between 64-bit
difference hashes). :func:`content_ids` gives tensors the same md5 identity as int64 ids, so an
evaluation can tell a query's own copy in a gallery.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import torch


def _row_md5(rows: np.ndarray) -> list[bytes]:
    """md5 digest of each row's bytes: ``(N, ...)`` -> N 16-byte digests."""
    return [hashlib.md5(np.ascontiguousarray(row).tobytes()).digest() for row in rows]


def pixel_md5(images: np.ndarray) -> list[str]:
    """md5 hex digest of each image's pixel bytes: ``(N, ...)`` uint8 -> N strings."""
    return [digest.hex() for digest in _row_md5(images)]


def md5_ids(rows: np.ndarray) -> np.ndarray:
    """A 63-bit id per row from the md5 of its bytes, so identical rows share an id.

    Args:
        rows: ``(N, ...)`` any dtype; each row is hashed as raw bytes.

    Returns:
        ``(N,)`` int64, non-negative.
    """
    digests = _row_md5(rows)
    return np.asarray([int.from_bytes(d[:8], "little") >> 1 for d in digests], dtype=np.int64)


def content_ids(images: torch.Tensor) -> torch.Tensor:
    """:func:`md5_ids` of a batch of tensors (hashed on CPU), on the input's device.

    Args:
        images: ``(B, ...)`` any dtype.

    Returns:
        ``(B,)`` int64 ids; identical images share an id.
    """
    rows = images.detach().reshape(len(images), -1).cpu().contiguous().numpy()
    return torch.from_numpy(md5_ids(rows)).to(images.device)


def count_duplicates(held_out: np.ndarray, train: np.ndarray) -> int:
    """How many ``held_out`` images are pixel-identical to some ``train`` image."""
    train_hashes = set(pixel_md5(train))
    return sum(h in train_hashes for h in pixel_md5(held_out))


def dhash(images: np.ndarray, hash_size: int = 8) -> np.ndarray:
    """64-bit difference hashes (dHash) of uint8 images, robust to resizing and re-encoding.

    Each image is reduced to gray ``(hash_size, hash_size + 1)`` with area averaging; bit ``k`` is
    whether a pixel is brighter than its right neighbour.

    Args:
        images: ``(N, H, W)`` gray or ``(N, H, W, 3)`` RGB uint8.

    Returns:
        ``(N,)`` uint64 hashes.
    """
    out = np.empty(len(images), np.uint64)
    weights = np.uint64(1) << np.arange(hash_size * hash_size, dtype=np.uint64)
    for i, image in enumerate(images):
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        small = cv2.resize(gray, (hash_size + 1, hash_size), interpolation=cv2.INTER_AREA)
        bits = (small[:, 1:] > small[:, :-1]).ravel().astype(np.uint64)
        out[i] = np.bitwise_or.reduce(bits * weights)
    return out


def count_near_duplicates(train: np.ndarray, test: np.ndarray, max_distance: int = 4) -> int:
    """How many test hashes lie within ``max_distance`` bits (Hamming) of some training hash."""
    if len(train) == 0 or len(test) == 0:
        return 0
    distance = np.bitwise_count(test[:, None] ^ train[None, :])
    return int((distance.min(axis=1) <= max_distance).sum())
