"""Face-expression images for triplet embeddings: Kaggle folders, plain class folders or FER2013 CSV.

Sources (``source`` / ``root``):

* ``root`` with ``train/<class>/`` and ``validation/<class>/`` (the Kaggle face-expression layout the
  triplet paper uses): train and validation as given.
* ``root`` that is a plain class-folder root (``<class>/<image>``, like CK+48): a seeded, stratified
  held-out split of ``val_fraction`` is made. With ``group_pattern`` (a regex whose first group is
  a group id in the file name, e.g. ``"^(S\\d+)_"`` for CK+ subjects) whole groups go to one side, so
  near-identical frames of one person never sit on both sides of the split.
* ``source="fer2013_csv"``: the FER2013 CSV (``Training`` rows train, ``PublicTest`` validates,
  ``PrivateTest`` tests); a file with only ``Training`` rows gets the held-out split above.
* ``root=None``: the embedded drawn-faces dataset, written once as PNGs in the Kaggle layout.

The test split is the validation split, except for a FER2013 CSV with ``PrivateTest`` rows.

Training-set doubling (``double_train``, the paper's augmentation,
:mod:`litlab.datamodules.doubling`): every training image plus one augmented copy, drawn once from
``seed`` and cached. Online augmentation (``augment``) is separate and can be combined with it.

Evaluation: ``gallery_dataloader()`` yields the original training images (no copies, no
augmentation) for the embedding gallery. Every image is hashed (md5 of its pixels) and the number
of validation/test images whose hash also appears in train is logged and kept in
:attr:`FaceExpressionDataModule.duplicates`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from litlab.datamodules.arrays import ArrayDataset
from litlab.datamodules.augment import normalize_to_unit_range, paper_augmentation
from litlab.datamodules.base import LitlabDataModule, Parts, check_choice
from litlab.datamodules.cache import cache_root
from litlab.datamodules.doubling import double_training_set
from litlab.datamodules.embedded import embedded_face_folders
from litlab.datamodules.fer2013_csv import FER2013_CLASSES, load_fer2013_cached
from litlab.datamodules.folders import class_folder_names, index_class_folders, load_images
from litlab.datamodules.identity import count_duplicates
from litlab.datamodules.samplers import ClassBalancedBatchSampler
from litlab.datamodules.splits import can_stratify, grouped_holdout, stratified_holdout
from litlab.datamodules.synthetic.face_folders import KAGGLE_CLASSES
from torch.utils.data import DataLoader
from torchvision.transforms import v2

log = logging.getLogger(__name__)

SOURCES = ("folders", "fer2013_csv")
TRAIN_DIR = "train"
VAL_DIRS = ("validation", "val")
_USAGE_PART = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


@dataclass(frozen=True)
class FaceImages:
    """Gray face images with labels and the part each was given in (``train``/``val``/``test``,
    or ``pool`` when the source has no split of its own).

    Attributes:
        images: ``(N, S, S)`` uint8.
        labels: ``(N,)`` int64.
        given: ``(N,)`` part names.
        paths: The ``N`` source files (empty for a CSV).
    """

    images: np.ndarray
    labels: np.ndarray
    given: np.ndarray
    paths: list[Path]


def _groups_from_names(paths: list[Path], pattern: str) -> np.ndarray:
    regex = re.compile(pattern)
    groups = []
    for path in paths:
        match = regex.search(path.name)
        if match is None or not match.groups():
            raise ValueError(
                f"group_pattern {pattern!r} does not match {path.name!r} (or has no capture "
                "group); use a regex whose first group is the group id, e.g. '^(S\\d+)_'"
            )
        groups.append(match.group(1))
    return np.asarray(groups)


class FaceExpressionDataModule(LitlabDataModule):
    """Expression images for triplet-embedding training and kNN evaluation.

    Args:
        root: Kaggle layout root, or plain class-folder root; ``None`` uses the embedded dataset
            (with ``source="folders"``).
        source: ``"folders"`` or ``"fer2013_csv"``.
        csv_path: The FER2013 CSV for ``source="fer2013_csv"``.
        classes: Class folders to use, in label order; ``None`` uses all (sorted by name).
        image_size: Side the images are resized to.
        double_train: Add one seeded augmented copy of each training image (the paper's doubling).
        augment: Online augmentation (random affine + horizontal flip) of training batches.
        m_per_class: Images per class in a training batch (``batch_size`` must be a multiple).
        batches_per_epoch: Training batches per epoch over all ranks; ``None`` for one pass.
        val_fraction: Held-out fraction when the source has no validation part.
        group_pattern: Regex (first group = group id in the file name) keeping groups on one side
            of that held-out split; ``None`` splits images at random (stratified).
        skip_bad_rows: FER2013 CSV only: skip unusable rows (logged) instead of raising.
        synthetic_train, synthetic_val: Size of the embedded dataset.
        batch_size: Images per batch per process (the paper's 16).
        **loader: ``num_workers``, ``pin_memory``, ``seed``: see :class:`LitlabDataModule`.

    Attributes:
        gallery_set: After ``setup``, the original training images (no copies, no augmentation).
        duplicates: After ``setup``, held-out images whose pixels also appear in train.

    Shape:
        batch: ``image (B, 1, S, S)`` float in ``[-1, 1]``, ``target (B,)`` int64.
    """

    IN_CHANS = 1  # gray

    def __init__(
        self,
        root: str | None = None,
        source: str = "folders",
        csv_path: str | None = None,
        classes: list[str] | None = None,
        image_size: int = 48,
        double_train: bool = True,
        augment: bool = False,
        m_per_class: int = 4,
        batches_per_epoch: int | None = None,
        val_fraction: float = 0.2,
        group_pattern: str | None = None,
        skip_bad_rows: bool = False,
        synthetic_train: int = 700,
        synthetic_val: int = 175,
        batch_size: int = 16,
        **loader: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **loader)
        check_choice("source", source, SOURCES)
        if source == "fer2013_csv" and not csv_path:
            raise ValueError("source='fer2013_csv' needs --data.csv_path /path/to/fer2013.csv")
        if batch_size % m_per_class:
            raise ValueError(
                f"batch_size={batch_size} must be a multiple of m_per_class={m_per_class}"
            )
        unknown = [c for c in classes or [] if c not in FER2013_CLASSES]
        if source == "fer2013_csv" and unknown:
            raise ValueError(f"classes {unknown} are not FER2013 classes {list(FER2013_CLASSES)}")
        self.gallery_set: ArrayDataset | None = None
        self.duplicates: dict[str, int] = {}

    @property
    def class_names(self) -> list[str]:
        """``classes``, else the class folders (of ``train/`` in the Kaggle layout), else the
        CSV's or the embedded set's classes."""
        hp = self.hparams
        if hp.classes is not None:
            return list(hp.classes)
        if hp.source == "fer2013_csv":
            return list(FER2013_CLASSES)
        if not hp.root:
            return list(KAGGLE_CLASSES)
        root = self.data_path()
        folder = root / TRAIN_DIR if (root / TRAIN_DIR).is_dir() else root
        return class_folder_names(folder, required=True)

    def data_path(self) -> Path:
        """The CSV, ``root``, or the embedded folders (generated on first use)."""
        hp = self.hparams
        if hp.source == "fer2013_csv":
            return Path(hp.csv_path)
        if hp.root:
            return Path(hp.root).expanduser()
        return embedded_face_folders(hp.synthetic_train, hp.synthetic_val)

    def load(self) -> FaceImages:
        return self._load_csv() if self.hparams.source == "fer2013_csv" else self._load_folders()

    def _load_folders(self) -> FaceImages:
        hp, root = self.hparams, self.data_path()
        val_dir = next((root / d for d in VAL_DIRS if (root / d).is_dir()), None)
        if not (root / TRAIN_DIR).is_dir():
            indexes = {"pool": index_class_folders(root, hp.classes)}
        elif val_dir is None:
            raise FileNotFoundError(
                f"{root} has a {TRAIN_DIR}/ folder but no {' or '.join(VAL_DIRS)}/ beside it; add "
                "one, or point --data.root at a plain <class>/<image> folder to split it"
            )
        else:
            train = index_class_folders(root / TRAIN_DIR, hp.classes)
            indexes = {"train": train, "val": index_class_folders(val_dir, train.classes)}
            log.info("%s: train/%s folders, classes %s", root, val_dir.name, train.classes)
        cache = cache_root() / "face_expression"
        images = [load_images(ix.paths, hp.image_size, "gray", cache) for ix in indexes.values()]
        return FaceImages(
            images=np.concatenate(images),
            labels=np.concatenate([ix.labels for ix in indexes.values()]),
            given=np.concatenate([np.full(len(ix), part) for part, ix in indexes.items()]),
            paths=[p for ix in indexes.values() for p in ix.paths],
        )

    def _load_csv(self) -> FaceImages:
        hp = self.hparams
        data = load_fer2013_cached(hp.csv_path, hp.skip_bad_rows)
        images, labels = data.images, data.labels
        if hp.image_size != images.shape[1]:
            size = (hp.image_size, hp.image_size)
            images = np.stack([cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in images])
        given = np.asarray([_USAGE_PART[u] for u in data.usage.tolist()])
        if hp.classes is not None:  # keep those classes, relabelled in the given order
            remap = np.full(len(FER2013_CLASSES), -1)
            remap[[FER2013_CLASSES.index(c) for c in hp.classes]] = np.arange(len(hp.classes))
            keep = remap[labels] >= 0
            images, labels, given = images[keep], remap[labels][keep], given[keep]
        return FaceImages(images, labels.astype(np.int64), given, [])

    def split(self, data: FaceImages) -> Parts:
        """The given parts; a held-out validation part where none is given; test = val unless
        the source has a test part of its own."""
        hp = self.hparams
        train, val, test = (np.flatnonzero(data.given == p) for p in ("train", "val", "test"))
        if (data.given == "pool").any():
            groups = _groups_from_names(data.paths, hp.group_pattern) if hp.group_pattern else None
            if groups is not None:
                train, val = grouped_holdout(data.labels, groups, hp.val_fraction, self.seed,
                                             "val_fraction")  # fmt: skip
            else:
                stratify = can_stratify(data.labels, 2)
                train, val = stratified_holdout(data.labels, hp.val_fraction, self.seed, stratify,
                                                "val_fraction")  # fmt: skip
            log.info("%s: class-folder root, %s held-out split %d / %d (seed %d)", self.data_path(),
                     "grouped" if groups is not None else "stratified", len(train), len(val),
                     self.seed)  # fmt: skip
        elif len(val) == 0:
            log.info("%s has no PublicTest rows: holding out %.0f%% of Training (seed %d)",
                     self.data_path(), 100 * hp.val_fraction, self.seed)  # fmt: skip
            labels = data.labels[train]
            kept, held = stratified_holdout(labels, hp.val_fraction, self.seed,
                                            can_stratify(labels, 2), "val_fraction")  # fmt: skip
            train, val = train[kept], train[held]
        return train, val, test if len(test) else val

    def datasets(self, data: FaceImages, parts: Parts) -> tuple[Any, Any, Any]:
        """Doubled, class-balanced training images; the originals as the kNN gallery; the
        held-out parts with the evaluation transform (test is val when they are one part)."""
        (train_x, val_x, test_x), (train_y, val_y, test_y) = (
            [data.images[i] for i in parts], [data.labels[i] for i in parts]
        )  # fmt: skip
        same = parts[2] is parts[1]
        self.duplicates = {"val_in_train": count_duplicates(val_x, train_x)}
        if not same:
            self.duplicates["test_in_train"] = count_duplicates(test_x, train_x)
        level = logging.WARNING if any(self.duplicates.values()) else logging.INFO
        log.log(level, "held-out images whose pixels also appear in train: %s", self.duplicates)
        norm = normalize_to_unit_range(1)
        train_tf = v2.Compose([paper_augmentation(), norm]) if self.hparams.augment else norm
        fit_x, fit_y = train_x, train_y
        if self.hparams.double_train:
            cache = cache_root() / "face_expression"
            fit_x, fit_y = double_training_set(train_x, train_y, self.seed, cache)
        self.gallery_set = ArrayDataset(train_x, train_y, norm)
        val_set = ArrayDataset(val_x, val_y, norm)
        test_set = val_set if same else ArrayDataset(test_x, test_y, norm)
        counts = np.bincount(train_y, minlength=self.num_classes)
        log.info(
            "face expression: %d train (%d with copies) / %d val / %d test images; per class %s",
            len(train_y), len(fit_y), len(val_y), len(test_y),
            dict(zip(self.class_names, counts.tolist(), strict=True)),
        )  # fmt: skip
        return ArrayDataset(fit_x, fit_y, train_tf), val_set, test_set

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not built this split yet")
        sampler = ClassBalancedBatchSampler(
            batch_size=self.batch_size,
            labels=self.train_set.labels,
            m_per_class=self.hparams.m_per_class,
            seed=self.seed,
            batches_per_epoch=self.hparams.batches_per_epoch,
        )
        return self._loader(self.train_set, shuffle=False, batch_sampler=sampler)

    def gallery_dataloader(self) -> DataLoader:
        """The original training images with the evaluation transform, in order.

        In-process loading with large batches: the arrays are in memory and the transform is a
        rescale, so worker processes would cost more than they save for this one pass per epoch.
        """
        if self.gallery_set is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not built the gallery yet")
        return DataLoader(self.gallery_set, batch_size=max(self.batch_size, 256), shuffle=False,
                          num_workers=0, pin_memory=self.pin_memory)  # fmt: skip
