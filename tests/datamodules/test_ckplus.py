"""CK+: the embedded layout, subject ids, and the DataModule's random and subject-fold parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from litlab.datamodules.ckplus import CKPLUS_CLASSES, CKPlusDataModule, subject_ids
from litlab.datamodules.folders import index_class_folders, load_images
from litlab.datamodules.synthetic.ckplus import STYLE_OF_CLASS, write_ckplus_folder


@pytest.fixture(scope="module")
def ck_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ckplus_folder(tmp_path_factory.mktemp("ck") / "CK+48", n_subjects=30, seed=1)


def _subjects_of(dm: CKPlusDataModule, part: str) -> set[str]:
    assert dm.index is not None
    paths = [dm.index.paths[i] for i in dm.split_indices[part]]
    return set(subject_ids(paths).tolist())


def test_embedded_folder_has_the_ckplus_layout(ck_root: Path) -> None:
    index = index_class_folders(ck_root)
    assert tuple(index.classes) == CKPLUS_CLASSES == tuple(STYLE_OF_CLASS)
    assert all(n >= 5 * 3 for n in index.counts().values())  # >= 5 subjects x 3 frames
    names = [p.name for p in index.paths]
    assert all(len(n) == len("S010_004_00000017.png") and n[0] == "S" for n in names)
    images = load_images(index.paths, size=None)
    assert images.shape[1:] == (48, 48)
    # Frames of one sequence are near-duplicates; different sequences are not.
    a, b = images[0].astype(float), images[1].astype(float)
    other = images[index.labels.tolist().index(1)].astype(float)
    assert np.abs(a - b).mean() < 0.3 * np.abs(a - other).mean()
    assert index.paths[0].name[:8] == index.paths[1].name[:8]


def test_subject_ids_need_the_ckplus_name() -> None:
    ids = subject_ids([Path("S010_004_00000017.png"), Path("S132_001_00000009.png")])
    assert ids.tolist() == ["S010", "S132"]
    with pytest.raises(ValueError, match=r"frame\.png.*split='random'"):
        subject_ids([Path("frame.png")])


def test_subject_datamodule_parts_are_subject_disjoint(ck_root: Path) -> None:
    seen: list[np.ndarray] = []
    for fold in range(3):
        dm = CKPlusDataModule(
            root=str(ck_root),
            split="subject",
            fold=fold,
            n_folds=3,
            detect_face=False,
            num_workers=0,
        )
        dm.setup("fit")
        train, val, test = (_subjects_of(dm, p) for p in ("train", "val", "test"))
        assert train and val and test
        assert not (train & val) and not (train & test) and not (val & test)
        sizes = sum(len(dm.split_indices[p]) for p in ("train", "val", "test"))
        assert sizes == len(dm.index.paths)
        seen.append(dm.split_indices["test"])
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(len(dm.index.paths)))


def test_random_datamodule_val_is_test_by_default(ck_root: Path) -> None:
    dm = CKPlusDataModule(root=str(ck_root), detect_face=False, num_workers=0, batch_size=4)
    dm.setup("fit")
    np.testing.assert_array_equal(dm.split_indices["val"], dm.split_indices["test"])
    assert len(dm.split_indices["test"]) == pytest.approx(0.2 * len(dm.index.paths), abs=2)
    # The random split leaks: most test sequences have a frame in train.
    assert len(_subjects_of(dm, "test") - _subjects_of(dm, "train")) == 0
    carved = CKPlusDataModule(root=str(ck_root), val_fraction=0.25, detect_face=False)
    carved.setup("fit")
    parts = [carved.split_indices[p] for p in ("train", "val", "test")]
    assert sum(map(len, parts)) == len(carved.index.paths)
    assert len(np.intersect1d(parts[1], parts[2])) == 0
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 1, 48, 48) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_input_mode_both_gives_two_channels_and_setup_twice_is_safe(ck_root: Path) -> None:
    dm = CKPlusDataModule(root=str(ck_root), input_mode="both", detect_face=False, num_workers=0)
    assert dm.in_chans == 2 and dm.num_classes == 7 and dm.class_names == list(CKPLUS_CLASSES)
    dm.setup("fit")
    first = dm.train_set
    dm.setup("test")
    assert dm.train_set is first
    x, _ = dm.train_set[0]
    assert x.shape == (2, 48, 48)
    assert set(torch.unique(x[1]).tolist()) <= {-1.0, 1.0}  # the edge channel is binary


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        CKPlusDataModule(split="kfold")
    with pytest.raises(ValueError, match="fold"):
        CKPlusDataModule(split="subject", fold=10, n_folds=10)
    with pytest.raises(ValueError, match="input_mode"):
        CKPlusDataModule(input_mode="rgb")
    with pytest.raises(ValueError, match="leak"):
        CKPlusDataModule(split="subject", val_fraction=0.0)


def test_embedded_default_builds(tmp_path: Path) -> None:
    dm = CKPlusDataModule(detect_face="auto", num_workers=0, synthetic_subjects=12)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.num_classes == 7 and len(dm.train_set) > 0


@pytest.mark.shared_data
def test_real_ckplus48_subject_fold(shared_data: Path) -> None:
    dm = CKPlusDataModule(
        root=str(shared_data / "ckplus48"), split="subject", n_folds=10, detect_face=False
    )
    dm.setup("fit")
    assert len(dm.index.paths) == 981 and dm.class_names == list(CKPLUS_CLASSES)
    assert not _subjects_of(dm, "train") & _subjects_of(dm, "test")
