"""Class-folder indexing and OpenCV decoding with a cache."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from litlab.datamodules.folders import IMAGE_EXTENSIONS, index_class_folders, load_images


def _write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def _tree(root: Path, counts: dict[str, int], size: int = 8) -> None:
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        for i in range(n):
            _write(root / name / f"{i:03d}.png", rng.integers(0, 256, (size, size), np.uint8))


def test_index_sorted_classes_and_labels(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _tree(tmp_path, {"b": 2, "a": 3})
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    _write(tmp_path / "b" / "UPPER.JPG", np.zeros((8, 8), np.uint8))
    with caplog.at_level(logging.INFO, logger="litlab.datamodules.folders"):
        index = index_class_folders(tmp_path)
    assert index.classes == ["a", "b"]
    assert index.labels.dtype == np.int64
    assert index.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert index.counts() == {"a": 3, "b": 3}
    assert all(p.suffix.lower() in IMAGE_EXTENSIONS for p in index.paths)
    assert "ignored 1 non-image" in caplog.text


def test_index_given_classes_set_label_order(tmp_path: Path) -> None:
    _tree(tmp_path, {"a": 1, "b": 1, "c": 1})
    index = index_class_folders(tmp_path, classes=["c", "a"])
    assert index.classes == ["c", "a"]
    assert [p.parent.name for p in index.paths] == ["c", "a"]
    assert index.labels.tolist() == [0, 1]


def test_index_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        index_class_folders(tmp_path / "missing")
    with pytest.raises(ValueError, match="no class sub-folders"):
        index_class_folders(tmp_path)
    _tree(tmp_path, {"a": 1})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty holds no images"):
        index_class_folders(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"\['zzz'\] not found"):
        index_class_folders(tmp_path, classes=["a", "zzz"])


def test_load_gray_rgb_and_resize(tmp_path: Path) -> None:
    color = np.zeros((10, 20, 3), np.uint8)
    color[..., 2] = 255  # BGR on disk: pure red
    path = _write(tmp_path / "red.png", color)
    rgb = load_images([path], size=None, color="rgb")
    assert rgb.shape == (1, 10, 20, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0].tolist() == [255, 0, 0]
    gray = load_images([path], size=(5, 8))
    assert gray.shape == (1, 5, 8)
    assert load_images([path], size=40).shape == (1, 40, 40)


def test_load_errors(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    b = _write(tmp_path / "b.png", np.zeros((9, 8), np.uint8))
    with pytest.raises(ValueError, match=r"a\.png.*b\.png"):
        load_images([a, b], size=None)
    assert load_images([a, b], size=8).shape == (2, 8, 8)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="broken.png"):
        load_images([a, broken], size=8)
    with pytest.raises(FileNotFoundError, match="gone.png"):
        load_images([tmp_path / "gone.png"], size=8)
    with pytest.raises(ValueError, match="color"):
        load_images([a], size=8, color="bgr")


def test_cache_hit_and_invalidation(tmp_path: Path) -> None:
    path = _write(tmp_path / "img" / "x.png", np.full((8, 8), 7, np.uint8))
    cache = tmp_path / "cache"
    first = load_images([path], size=8, cache_dir=cache)
    files = list(cache.glob("images-*.npy"))
    assert len(files) == 1
    # A cache hit returns the stored array, even if decoding would now differ.
    np.save(files[0], np.full((1, 8, 8), 99, np.uint8))
    assert load_images([path], size=8, cache_dir=cache)[0, 0, 0] == 99
    # Touching the file changes the key, so the new pixels are decoded.
    _write(path, np.full((8, 8), 50, np.uint8))
    os.utime(path, ns=(1, 1))
    again = load_images([path], size=8, cache_dir=cache)
    assert again[0, 0, 0] == 50 and first[0, 0, 0] == 7
    assert len(list(cache.glob("images-*.npy"))) == 2
    # Other options make another entry too.
    load_images([path], size=4, cache_dir=cache)
    assert len(list(cache.glob("images-*.npy"))) == 3
