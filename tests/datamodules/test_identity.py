"""Image identity: md5 ids and exact duplicates, dHash near-duplicates."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from litlab.datamodules.identity import (
    content_ids,
    count_duplicates,
    count_near_duplicates,
    dhash,
    md5_ids,
    pixel_md5,
)
from litlab.datamodules.synthetic.autism import draw_autism_faces


def _noise(n: int, seed: int, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def test_dhash_matches_reencoded_copies_and_separates_other_faces() -> None:
    images, _ = draw_autism_faces(np.array([0, 1, 0]), seed=5, size=224)
    ok, data = cv2.imencode(".jpg", images[0], [cv2.IMWRITE_JPEG_QUALITY, 60])
    copy = cv2.resize(cv2.imdecode(data, cv2.IMREAD_UNCHANGED), (150, 150))
    hashes = dhash(images)
    copy_hash = dhash(copy[None])
    assert np.bitwise_count(hashes[0] ^ copy_hash[0]) <= 4
    assert np.bitwise_count(hashes[1] ^ hashes[2]) > 10
    assert count_near_duplicates(hashes[1:], copy_hash, 4) == 0
    assert count_near_duplicates(hashes, copy_hash, 4) == 1
    assert count_near_duplicates(hashes, hashes[:2], 0) == 2


def test_md5_identity_is_shared_by_identical_images_only() -> None:
    images = _noise(4, 0)
    images[3] = images[1]
    digests = pixel_md5(images)
    assert digests[1] == digests[3] and len(set(digests)) == 3
    ids = md5_ids(images)
    assert ids.dtype == np.int64 and (ids >= 0).all()
    assert ids[1] == ids[3] and len(set(ids.tolist())) == 3
    as_tensor = content_ids(torch.from_numpy(images))
    assert as_tensor.dtype == torch.int64 and as_tensor.tolist() == ids.tolist()
    floats = torch.from_numpy(images).float()
    assert content_ids(floats)[1] == content_ids(floats)[3]


def test_exact_duplicates_are_counted_against_train() -> None:
    train, held = _noise(6, 0), _noise(3, 1)
    held[0] = train[2]
    assert count_duplicates(held, train) == 1
    assert count_duplicates(_noise(3, 2), train) == 0
