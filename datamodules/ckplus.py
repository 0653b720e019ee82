"""CK+48 expressions: the paper's random 80/20 split and a subject-independent k-fold.

CK+48 holds the last three frames of each posed sequence, so a random image split puts
near-identical frames of one subject's expression on both sides and overstates accuracy. Two
protocols are offered:

``split="random"`` (the paper)
    A seeded, stratified 80/20 image split. The paper has only these two parts, so by default
    validation *is* the 20 % test part (``val_fraction=0``): checkpoint selection then sees the
    test images, and a warning says so. ``val_fraction > 0`` carves a stratified validation part
    from the 80 % instead (images, so it leaks like the paper's split).

``split="subject"`` (honest)
    ``StratifiedGroupKFold`` over subject ids (the ``S###`` file-name prefix): fold ``fold`` of
    ``n_folds`` is the test part, and no subject is in two parts. Validation is carved from the
    training subjects (``val_fraction``, default 0.1, again grouped by subject), so checkpoint
    selection never sees the test subjects. Running every fold (``litlab cv``) tests each image
    exactly once.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np
from litlab.datamodules.arrays import ArrayDataset
from litlab.datamodules.augment import classification_transforms
from litlab.datamodules.base import LitlabDataModule, cache_root
from litlab.datamodules.folders import FolderIndex, index_class_folders, load_images
from litlab.datamodules.synthetic.ckplus import GENERATOR_VERSION, write_ckplus_folder
from litlab.datamodules.transforms import (
    DetectFace,
    Preprocessed,
    input_channels,
    preprocess_images,
)
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

log = logging.getLogger(__name__)

CKPLUS_CLASSES: tuple[str, ...] = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happy",
    "sadness",
    "surprise",
)
SPLITS: tuple[str, ...] = ("random", "subject")
SUBJECT_PATTERN = r"^(S\d+)_"


def embedded_ckplus_folder(n_subjects: int = 50, seed: int = 0) -> Path:
    """The embedded CK+48-layout folder of drawn faces, generated on first use."""
    root = cache_root() / "data" / f"ckplus48-synthetic-v{GENERATOR_VERSION}-n{n_subjects}-s{seed}"
    if not root.is_dir():
        log.info(
            "generating the embedded CK+48-layout dataset (%d subjects) at %s", n_subjects, root
        )
        write_ckplus_folder(root, n_subjects=n_subjects, seed=seed)
    return root


def subject_ids(paths: list[Path], pattern: str = SUBJECT_PATTERN) -> np.ndarray:
    """Subject id of each file from its name (CK+: ``S010_004_00000017.png`` -> ``"S010"``).

    Raises:
        ValueError: A file name does not match ``pattern`` (the first such file is named).
    """
    regex = re.compile(pattern)
    ids = []
    for path in paths:
        match = regex.match(path.name)
        if match is None:
            raise ValueError(
                f"cannot read a subject id from {path} (pattern {pattern!r}); CK+ names look like "
                "S010_004_00000017.png. Rename the files, set data.subject_pattern, or use "
                "split='random'"
            )
        ids.append(match.group(1))
    return np.asarray(ids)


def random_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded image split stratified by label: ``(train, test)`` sorted index arrays."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=labels)
    return np.sort(train), np.sort(test)


def subject_folds(
    labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int
) -> list[np.ndarray]:
    """Test indices of each of ``n_folds`` subject-disjoint, label-stratified folds.

    Every index is in exactly one fold; every group (subject) is in exactly one fold.
    """
    n_groups = len(np.unique(groups))
    if not 2 <= n_folds <= n_groups:
        raise ValueError(
            f"n_folds must lie in [2, {n_groups}] (the number of subjects), got {n_folds}"
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [np.sort(test) for _, test in splitter.split(np.zeros(len(labels)), labels, groups)]


def _carve_validation(
    train: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    val_fraction: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Move ``val_fraction`` of ``train`` to validation, by group when ``groups`` is given."""
    if groups is None:
        rest, val = train_test_split(
            train, test_size=val_fraction, random_state=seed, stratify=labels[train]
        )
        return np.sort(rest), np.sort(val)
    n_splits = max(2, round(1 / val_fraction))
    n_groups = len(np.unique(groups[train]))
    if n_groups < n_splits:
        raise ValueError(
            f"only {n_groups} training subjects, too few for val_fraction={val_fraction}; "
            "raise val_fraction or lower n_folds"
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # A rare class (CK+ contempt) may have fewer training subjects than n_splits; only one
        # split is taken, so sklearn's warning about it says nothing useful here.
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        keep, val = next(splitter.split(np.zeros(len(train)), labels[train], groups[train]))
    return np.sort(train[keep]), np.sort(train[val])


class CKPlusDataModule(LitlabDataModule):
    """CK+48 (``<root>/<class>/S###_###_########.png``), or an embedded drawn-faces copy.

    Images are decoded once, face-cropped, resized, equalised and edge-detected with OpenCV
    (:mod:`litlab.datamodules.transforms`), and the result is cached; see the module docstring for how
    train / val / test are formed in each split mode.

    Args:
        root: The CK+48 folder; ``None`` generates and uses an embedded one in the same layout.
        split: ``"random"`` (paper: stratified 80/20 images) or ``"subject"`` (k-fold by subject).
        fold: Test fold for ``split="subject"``, in ``[0, n_folds)``.
        n_folds: Folds for ``split="subject"``.
        test_fraction: Test share for ``split="random"`` (the paper's 0.2).
        val_fraction: Share of the training part held out for validation; ``None`` means 0 for
            ``"random"`` (validation is the test part, as the paper has no third part) and 0.1
            for ``"subject"`` (subject-disjoint).
        input_mode: ``"gray"``, ``"edges"`` or ``"both"`` (2 channels); :attr:`in_chans` says
            what the model must take.
        equalize: Histogram-equalise each image.
        detect_face: Crop to the Haar-cascade face: ``True`` (needs an OpenCV build with the
            cascade; a clear error otherwise), ``"auto"`` (use it when present, warn if not),
            ``False``.
        image_size: Side of the network input in pixels (the paper's 48).
        load_size: Size files are decoded to before face detection; ``None`` keeps their own
            size (they must then all match, as in CK+48).
        canny_low: Canny lower threshold.
        canny_high: Canny upper threshold.
        augment: The shared light augmentation (affine jitter, flip) on training images; the
            paper used none.
        subject_pattern: Regex whose first group is the subject id in a file name.
        synthetic_subjects: Subjects in the embedded dataset (ignored with ``root``).
        batch_size, num_workers, pin_memory, seed: See :class:`LitlabDataModule`; ``seed`` also
            seeds the splits.

    Shape:
        batch: ``image (B, in_chans, image_size, image_size)`` float in ``[-1, 1]``,
        ``target (B,)`` int64.
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "random",
        fold: int = 0,
        n_folds: int = 10,
        test_fraction: float = 0.2,
        val_fraction: float | None = None,
        input_mode: str = "gray",
        equalize: bool = True,
        detect_face: DetectFace = True,
        image_size: int = 48,
        load_size: int | None = None,
        canny_low: float = 50.0,
        canny_high: float = 150.0,
        augment: bool = False,
        subject_pattern: str = SUBJECT_PATTERN,
        synthetic_subjects: int = 50,
        batch_size: int = 8,
        num_workers: int = 2,
        pin_memory: bool | None = None,
        seed: int = 42,
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory, seed)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split == "subject" and not 0 <= fold < n_folds:
            raise ValueError(f"fold must lie in [0, n_folds={n_folds}), got {fold}")
        if val_fraction is not None and not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
        if split == "subject" and val_fraction == 0:
            raise ValueError(
                "split='subject' needs a validation part from the training subjects "
                "(val_fraction > 0); using the test fold for checkpointing would leak it"
            )
        self._in_chans = input_channels(input_mode)
        self.root = root
        self.split = split
        self.fold = fold
        self.n_folds = n_folds
        self.test_fraction = test_fraction
        self.val_fraction = val_fraction
        self.input_mode = input_mode
        self.equalize = equalize
        self.detect_face = detect_face
        self.image_size = image_size
        self.load_size = load_size
        self.canny_low = canny_low
        self.canny_high = canny_high
        self.augment = augment
        self.subject_pattern = subject_pattern
        self.synthetic_subjects = synthetic_subjects
        self.index: FolderIndex | None = None
        self.preprocessed: Preprocessed | None = None
        self.split_indices: dict[str, np.ndarray] = {}

    @property
    def in_chans(self) -> int:
        """Input channels: 2 for ``input_mode="both"``, else 1."""
        return self._in_chans

    @property
    def class_names(self) -> list[str]:
        """The class folders found by ``setup`` (CK+'s seven before it runs)."""
        return list(self.index.classes) if self.index is not None else list(CKPLUS_CLASSES)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _root(self) -> Path:
        if self.root:
            return Path(self.root).expanduser()
        return embedded_ckplus_folder(self.synthetic_subjects)

    def prepare_data(self) -> None:
        self._root()  # generates the embedded folder once, before any process reads it

    def split_parts(
        self, labels: np.ndarray, groups: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(train, val, test)`` index arrays for this module's split settings.

        Args:
            labels: ``(N,)`` class index per image.
            groups: ``(N,)`` subject id per image (required for ``split="subject"``).
        """
        if self.split == "random":
            train, test = random_split(labels, self.test_fraction, self.seed)
            if not self.val_fraction:
                log.warning(
                    "split='random': validation is the %.0f %% test part (the paper has only "
                    "train/test), so the kept checkpoint is chosen on test images; set "
                    "data.val_fraction > 0 for a separate validation part",
                    100 * self.test_fraction,
                )
                return train, test, test
            train, val = _carve_validation(train, labels, None, self.val_fraction, self.seed)
            return train, val, test
        if groups is None:
            raise ValueError("split='subject' needs subject ids")
        folds = subject_folds(labels, groups, self.n_folds, self.seed)
        test = folds[self.fold]
        train = np.sort(np.concatenate([f for k, f in enumerate(folds) if k != self.fold]))
        val_fraction = 0.1 if self.val_fraction is None else self.val_fraction
        train, val = _carve_validation(train, labels, groups, val_fraction, self.seed)
        return train, val, test

    def _check_model(self) -> None:
        """Fail early, with the fix, when the attached model cannot take this data."""
        trainer = getattr(self, "trainer", None)
        model = getattr(trainer, "lightning_module", None) if trainer is not None else None
        hparams = getattr(model, "hparams", None) or {}
        in_chans = hparams.get("in_chans")
        if in_chans is not None and int(in_chans) != self.in_chans:
            raise ValueError(
                f"data.input_mode={self.input_mode!r} gives {self.in_chans}-channel images but "
                f"the model has in_chans={in_chans}; set --model.in_chans={self.in_chans} "
                f"(gray/edges: 1, both: 2)"
            )
        num_classes = hparams.get("num_classes")
        if num_classes is not None and int(num_classes) != self.num_classes:
            raise ValueError(
                f"{self._root()} has {self.num_classes} classes {self.class_names} but the "
                f"model has num_classes={num_classes}; set --model.num_classes={self.num_classes}"
            )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            self._check_model()
            return
        root = self._root()
        index = index_class_folders(root)
        if tuple(index.classes) != CKPLUS_CLASSES:
            log.info("%s: classes %s differ from CK+'s %s", root, index.classes, CKPLUS_CLASSES)
        self.index = index
        self._check_model()
        cache = cache_root() / "ckplus"
        raw = load_images(index.paths, size=self.load_size, color="gray", cache_dir=cache)
        pre = preprocess_images(
            raw,
            size=self.image_size,
            equalize_hist=self.equalize,
            detect_face=self.detect_face,
            input_mode=self.input_mode,
            canny_low=self.canny_low,
            canny_high=self.canny_high,
            cache_dir=cache,
        )
        self.preprocessed = pre
        groups = subject_ids(index.paths, self.subject_pattern) if self.split == "subject" else None
        train, val, test = self.split_parts(index.labels, groups)
        self.split_indices = {"train": train, "val": val, "test": test}
        train_tf, eval_tf = classification_transforms(channels=self.in_chans, augment=self.augment)
        self.train_set = ArrayDataset(pre.images[train], index.labels[train], train_tf)
        self.val_set = ArrayDataset(pre.images[val], index.labels[val], eval_tf)
        self.test_set = ArrayDataset(pre.images[test], index.labels[test], eval_tf)
        where = (
            f"fold {self.fold}/{self.n_folds}"
            if self.split == "subject"
            else f"{1 - self.test_fraction:.0%}/{self.test_fraction:.0%}"
        )
        log.info(
            "CK+ %s split (%s) of %s: %d train / %d val / %d test images; input %s, %d channel(s)",
            self.split,
            where,
            root,
            len(train),
            len(val),
            len(test),
            self.input_mode,
            self.in_chans,
        )
