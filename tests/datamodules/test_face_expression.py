"""FaceExpressionDataModule: the three sources, the paper's doubling, duplicates, batches."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from litlab.datamodules.face_expression import FaceExpressionDataModule
from litlab.datamodules.identity import count_duplicates
from litlab.datamodules.splits import grouped_holdout
from litlab.datamodules.synthetic.face_folders import KAGGLE_CLASSES, write_face_folders


def _write(folder: Path, images: np.ndarray, prefix: str = "img") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{prefix}{i:03d}.png"), image)


def _noise(n: int, seed: int, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def _dm(**kwargs) -> FaceExpressionDataModule:
    kwargs.setdefault("num_workers", 0)
    kwargs.setdefault("batch_size", 8)
    kwargs.setdefault("m_per_class", 4)
    return FaceExpressionDataModule(**kwargs)


def test_embedded_dataset_in_kaggle_layout(tmp_path: Path) -> None:
    root = write_face_folders(tmp_path / "faces", n_train=60, n_val=20, seed=1)
    assert sorted(p.name for p in (root / "train").iterdir()) == list(KAGGLE_CLASSES)
    png = next((root / "validation" / "happy").glob("*.png"))
    assert cv2.imread(str(png), cv2.IMREAD_UNCHANGED).shape == (48, 48)

    dm = _dm(synthetic_train=60, synthetic_val=20)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("fit")  # safe twice
    assert dm.class_names == list(KAGGLE_CLASSES) and dm.num_classes == 7
    n = len(dm.gallery_set)
    assert len(dm.train_set) == 2 * n  # doubled
    assert dm.test_set is dm.val_set  # test split = validation (documented)
    assert dm.duplicates == {"val_in_train": 0}
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape[1:] == (1, 48, 48) and x.min() >= -1 and x.max() <= 1
    g, _ = next(iter(dm.gallery_dataloader()))
    assert g.shape[0] == min(256, n)


def test_train_batches_are_class_balanced(tmp_path: Path) -> None:
    for c, name in enumerate(["a", "b", "c"]):
        _write(tmp_path / "train" / name, _noise(10, c))
        _write(tmp_path / "validation" / name, _noise(3, 10 + c))
    dm = _dm(root=str(tmp_path), image_size=16, double_train=False)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 30 // 8
    for _, y in batches:
        assert sorted(Counter(y.tolist()).values()) == [4, 4]


def test_validation_images_identical_to_train_are_counted(tmp_path: Path) -> None:
    train_a, train_b = _noise(6, 0), _noise(6, 1)
    val_a = _noise(3, 2)
    val_a[0] = train_a[2]  # one leaked image
    _write(tmp_path / "train" / "a", train_a)
    _write(tmp_path / "train" / "b", train_b)
    _write(tmp_path / "validation" / "a", val_a)
    _write(tmp_path / "validation" / "b", np.concatenate([_noise(2, 3), train_b[:2]]))
    dm = _dm(root=str(tmp_path), image_size=16, double_train=False)
    dm.setup("fit")
    assert dm.duplicates["val_in_train"] == 3
    assert count_duplicates(val_a, train_a) == 1


def test_plain_class_folder_root_gets_a_seeded_stratified_split(tmp_path: Path) -> None:
    for c, name in enumerate(["anger", "happy"]):
        _write(tmp_path / name, _noise(10, c))
    dm = _dm(root=str(tmp_path), image_size=16, double_train=False, val_fraction=0.2, seed=3)
    dm.setup("fit")
    assert dm.class_names == ["anger", "happy"]
    assert len(dm.gallery_set) == 16 and len(dm.val_set) == 4
    assert np.bincount(dm.val_set.labels).tolist() == [2, 2]
    again = _dm(root=str(tmp_path), image_size=16, double_train=False, val_fraction=0.2, seed=3)
    again.setup("fit")
    np.testing.assert_array_equal(again.val_set.images, dm.val_set.images)


def test_group_pattern_keeps_subjects_on_one_side(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for c, name in enumerate(["anger", "happy"]):
        folder = tmp_path / name
        folder.mkdir()
        for s in range(6):
            for f in range(3):
                image = rng.integers(0, 256, (16, 16), dtype=np.uint8)
                cv2.imwrite(str(folder / f"S{s:03d}_00{c}_{f:08d}.png"), image)
    labels = np.repeat([0, 1], 18)
    groups = np.array([f"S{s:03d}" for _ in range(2) for s in range(6) for _ in range(3)])
    train, held = grouped_holdout(labels, groups, 0.34, seed=0)
    assert not set(groups[train]) & set(groups[held])
    dm = _dm(root=str(tmp_path), image_size=16, double_train=False, val_fraction=0.34,
             group_pattern=r"^(S\d+)_")  # fmt: skip
    dm.setup("fit")
    assert len(dm.val_set) % 6 == 0  # whole subjects (3 frames x 2 classes each)
    with pytest.raises(ValueError, match="group_pattern"):
        _dm(root=str(tmp_path), image_size=16, group_pattern=r"^(X\d+)_").setup("fit")


def test_fer2013_csv_source(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["emotion,pixels,Usage"]
    for i in range(42):
        usage = "Training" if i < 28 else ("PublicTest" if i < 35 else "PrivateTest")
        pixels = " ".join(map(str, rng.integers(0, 256, 48 * 48)))
        rows.append(f"{i % 7},{pixels},{usage}")
    csv = tmp_path / "fer.csv"
    csv.write_text("\n".join(rows) + "\n")
    dm = _dm(source="fer2013_csv", csv_path=str(csv), double_train=False)
    dm.setup("fit")
    assert dm.class_names[0] == "angry" and len(dm.class_names) == 7
    assert (len(dm.gallery_set), len(dm.val_set), len(dm.test_set)) == (28, 7, 7)
    assert dm.test_set is not dm.val_set

    only_train = tmp_path / "train-only.csv"
    only_train.write_text("\n".join(r.replace("PublicTest", "Training").replace(
        "PrivateTest", "Training") for r in rows) + "\n")  # fmt: skip
    dm = _dm(source="fer2013_csv", csv_path=str(only_train), double_train=False, val_fraction=0.25)
    dm.setup("fit")
    assert len(dm.gallery_set) + len(dm.val_set) == 42 and dm.test_set is dm.val_set


def test_bad_settings_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="csv_path"):
        FaceExpressionDataModule(source="fer2013_csv")
    with pytest.raises(ValueError, match="multiple of m_per_class"):
        FaceExpressionDataModule(batch_size=10, m_per_class=4)
    with pytest.raises(ValueError, match=r"\['joy'\] are not FER2013 classes"):
        FaceExpressionDataModule(source="fer2013_csv", csv_path="fer.csv", classes=["joy"])
    _write(tmp_path / "train" / "a", _noise(2, 0))
    with pytest.raises(FileNotFoundError, match="validation"):
        _dm(root=str(tmp_path)).setup("fit")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _dm(root=str(tmp_path / "missing")).setup("fit")
