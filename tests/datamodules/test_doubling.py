"""The paper's training-set doubling: seeded, cached, originals first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from litlab.datamodules.doubling import augmented_copy, double_training_set


def _noise(n: int, seed: int, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def test_doubling_is_seeded_cached_and_changes_the_copies(tmp_path: Path) -> None:
    images, labels = _noise(5, 0, size=24), np.arange(5)
    doubled, doubled_labels = double_training_set(images, labels, seed=1, cache_dir=tmp_path)
    assert doubled.shape == (10, 24, 24) and doubled.dtype == np.uint8
    np.testing.assert_array_equal(doubled[:5], images)
    assert doubled_labels.tolist() == [0, 1, 2, 3, 4] * 2
    assert all((doubled[5 + i] != images[i]).any() for i in range(5))
    assert len(list(tmp_path.glob("doubled-*.npy"))) == 1
    cached, _ = double_training_set(images, labels, seed=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(cached, doubled)
    other, _ = double_training_set(images, labels, seed=2)
    assert (other[5:] != doubled[5:]).any()


def test_augmented_copy_is_the_identity_without_jitter() -> None:
    image = _noise(1, 0, size=20)[0]
    rng = np.random.default_rng(0)
    same = augmented_copy(image, rng, max_rotation=0.0, max_shift=0.0, min_crop=1.0)
    np.testing.assert_array_equal(same, image)
