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

Training-set doubling (``double_train``, the paper's augmentation): every training image plus one
augmented copy (random rotation, crop and x/y shift together), drawn once from ``seed`` and cached.
Online augmentation (``augment``) is separate and can be combined with it.

Evaluation: ``gallery_dataloader()`` yields the original training images (no copies, no
augmentation) for the embedding gallery. Every image is hashed (md5 of its pixels) and the number
of validation/test images whose hash also appears in train is logged and kept in
:attr:`FaceExpressionDataModule.duplicates`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import cv2
import numpy as np
from litlab.datamodules.arrays import ArrayDataset
from litlab.datamodules.augment import normalize_to_unit_range, paper_augmentation
from litlab.datamodules.base import LitlabDataModule, cache_root
from litlab.datamodules.folders import FolderIndex, index_class_folders, load_images
from litlab.datamodules.samplers import ClassBalancedBatchSampler
from litlab.datamodules.synthetic.face_folders import embedded_face_folders
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from torch.utils.data import DataLoader
from torchvision.transforms import v2
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

SOURCES = ("folders", "fer2013_csv")
TRAIN_DIR = "train"
VAL_DIRS = ("validation", "val")
_DOUBLING_VERSION = 1


def image_hashes(images: np.ndarray) -> list[str]:
    """md5 hex digest of each image's pixel bytes: ``(N, ...)`` uint8 -> N strings."""
    return [hashlib.md5(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images]


def count_duplicates(held_out: np.ndarray, train: np.ndarray) -> int:
    """How many ``held_out`` images are pixel-identical to some ``train`` image."""
    train_hashes = set(image_hashes(train))
    return sum(h in train_hashes for h in image_hashes(held_out))


def augmented_copy(
    image: np.ndarray,
    rng: np.random.Generator,
    max_rotation: float = 45.0,
    max_shift: float = 10.0,
    min_crop: float = 0.8,
) -> np.ndarray:
    """One rotated, cropped and shifted copy of a gray uint8 image (same size).

    The paper's example is a 45-degree rotation then a shift of 5 px right and 10 px down; here the
    angle is uniform in ``[-max_rotation, max_rotation]``, the crop keeps a square of side
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
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f"{cache_file.stem}.tmp.npy")
        np.save(tmp, doubled)
        tmp.replace(cache_file)
    return doubled, np.concatenate([labels, labels])


def holdout_split(
    labels: np.ndarray, fraction: float, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded held-out split: stratified by class, or by whole groups when ``groups`` is given.

    Returns:
        Sorted ``(train_indices, held_out_indices)``.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    idx = np.arange(len(labels))
    if groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        train, held = next(splitter.split(idx, labels, groups))
    else:
        stratify = labels if np.bincount(labels).min() >= 2 else None
        train, held = train_test_split(
            idx, test_size=fraction, random_state=seed, stratify=stratify
        )
    return np.sort(train), np.sort(held)


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
        batch_size, num_workers, pin_memory, seed: See :class:`LitlabDataModule`.

    Shape:
        batch: ``image (B, 1, S, S)`` float in ``[-1, 1]``, ``target (B,)`` int64.
    """

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
        num_workers: int = 2,
        pin_memory: bool | None = None,
        seed: int = 42,
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory, seed)
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        if source == "fer2013_csv" and not csv_path:
            raise ValueError("source='fer2013_csv' needs --data.csv_path /path/to/fer2013.csv")
        if batch_size % m_per_class:
            raise ValueError(
                f"batch_size={batch_size} must be a multiple of m_per_class={m_per_class}"
            )
        self.root = root
        self.source = source
        self.csv_path = csv_path
        self.classes = list(classes) if classes is not None else None
        self.image_size = image_size
        self.double_train = double_train
        self.augment = augment
        self.m_per_class = m_per_class
        self.batches_per_epoch = batches_per_epoch
        self.val_fraction = val_fraction
        self.group_pattern = group_pattern
        self.skip_bad_rows = skip_bad_rows
        self.synthetic_train = synthetic_train
        self.synthetic_val = synthetic_val
        self.class_names: list[str] = []
        self.gallery_set: ArrayDataset | None = None
        self.duplicates: dict[str, int] = {}

    @property
    def num_classes(self) -> int:
        if not self.class_names:
            raise RuntimeError("num_classes is known after setup()")
        return len(self.class_names)

    def _root(self) -> Path:
        return (
            Path(self.root).expanduser()
            if self.root
            else embedded_face_folders(self.synthetic_train, self.synthetic_val)
        )

    def prepare_data(self) -> None:
        # generates the embedded dataset once (on one process); sets no state
        if self.source == "folders" and not self.root:
            embedded_face_folders(self.synthetic_train, self.synthetic_val)

    # ---------------------------------------------------------------- loading
    def _load_folder(self, index: FolderIndex) -> np.ndarray:
        return load_images(index.paths, self.image_size, "gray", cache_root() / "face_expression")

    def _from_folders(self) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
        root = self._root()
        val_dir = next((root / d for d in VAL_DIRS if (root / d).is_dir()), None)
        if (root / TRAIN_DIR).is_dir() and val_dir is not None:
            train_index = index_class_folders(root / TRAIN_DIR, self.classes)
            val_index = index_class_folders(val_dir, train_index.classes)
            train = (self._load_folder(train_index), train_index.labels)
            val = (self._load_folder(val_index), val_index.labels)
            log.info("%s: train/%s folders, classes %s", root, val_dir.name, train_index.classes)
            return {"train": train, "val": val, "test": val}, train_index.classes
        if (root / TRAIN_DIR).is_dir():
            raise FileNotFoundError(
                f"{root} has a {TRAIN_DIR}/ folder but no {' or '.join(VAL_DIRS)}/ beside it; add "
                "one, or point --data.root at a plain <class>/<image> folder to split it"
            )
        index = index_class_folders(root, self.classes)
        images = self._load_folder(index)
        groups = _groups_from_names(index.paths, self.group_pattern) if self.group_pattern else None
        train, held = holdout_split(index.labels, self.val_fraction, self.seed, groups)
        log.info(
            "%s: class-folder root, %s held-out split %d / %d (seed %d)",
            root, "grouped" if groups is not None else "stratified", len(train), len(held),
            self.seed,
        )  # fmt: skip
        val = (images[held], index.labels[held])
        return {
            "train": (images[train], index.labels[train]),
            "val": val,
            "test": val,
        }, index.classes

    def _from_csv(self) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
        from litlab.datamodules.fer2013 import FER2013_CLASSES, load_fer2013_cached

        data = load_fer2013_cached(self.csv_path, self.skip_bad_rows)
        images, labels = data.images, data.labels
        if self.image_size != images.shape[1]:
            size = (self.image_size, self.image_size)
            images = np.stack([cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in images])
        train = np.flatnonzero(data.usage == "Training")
        val = np.flatnonzero(data.usage == "PublicTest")
        test = np.flatnonzero(data.usage == "PrivateTest")
        if len(val) == 0:
            log.info("%s has no PublicTest rows: holding out %.0f%% of Training (seed %d)",
                     self.csv_path, 100 * self.val_fraction, self.seed)  # fmt: skip
            tr, held = holdout_split(labels[train], self.val_fraction, self.seed)
            train, val = train[tr], train[held]
        names = list(FER2013_CLASSES)
        if self.classes is not None:
            unknown = [c for c in self.classes if c not in names]
            if unknown:
                raise ValueError(f"classes {unknown} are not FER2013 classes {names}")
            keep = [names.index(c) for c in self.classes]
            remap = np.full(len(names), -1)
            remap[keep] = np.arange(len(keep))
            labels = remap[labels]
            train, val, test = (i[labels[i] >= 0] for i in (train, val, test))
            names = list(self.classes)
        splits = {
            s: (images[i], labels[i]) for s, i in (("train", train), ("val", val), ("test", test))
        }
        if len(test) == 0:  # no PrivateTest rows: test on the validation split, as folders do
            splits["test"] = splits["val"]
        return splits, names

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        splits, names = self._from_csv() if self.source == "fer2013_csv" else self._from_folders()
        self.class_names = list(names)
        (train_x, train_y), (val_x, val_y), (test_x, test_y) = (
            splits["train"], splits["val"], splits["test"]
        )  # fmt: skip
        self.duplicates = {"val_in_train": count_duplicates(val_x, train_x)}
        if test_x is not val_x:
            self.duplicates["test_in_train"] = count_duplicates(test_x, train_x)
        level = logging.WARNING if any(self.duplicates.values()) else logging.INFO
        log.log(level, "held-out images whose pixels also appear in train: %s", self.duplicates)

        norm = normalize_to_unit_range(1)
        train_tf = v2.Compose([paper_augmentation(), norm]) if self.augment else norm
        fit_x, fit_y = train_x, train_y
        if self.double_train:
            fit_x, fit_y = double_training_set(
                train_x, train_y, self.seed, cache_root() / "face_expression"
            )
        self.train_set = ArrayDataset(fit_x, fit_y, train_tf)
        self.gallery_set = ArrayDataset(train_x, train_y, norm)
        self.val_set = ArrayDataset(val_x, val_y, norm)
        self.test_set = self.val_set if test_x is val_x else ArrayDataset(test_x, test_y, norm)
        counts = np.bincount(train_y, minlength=len(names))
        log.info(
            "face expression: %d train (%d with copies) / %d val / %d test images; per class %s",
            len(train_y), len(fit_y), len(val_y), len(test_y), dict(zip(names, counts.tolist(), strict=True)),
        )  # fmt: skip

    # ---------------------------------------------------------------- loaders
    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not built this split yet")
        sampler = ClassBalancedBatchSampler(
            batch_size=self.batch_size,
            labels=self.train_set.labels,
            m_per_class=self.m_per_class,
            seed=self.seed,
            batches_per_epoch=self.batches_per_epoch,
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
