"""Autism faces (Kaggle layout), raw or background-removed by a trained face segmenter.

.. warning::
   This reproduces a published pipeline on a web-scraped dataset whose labels cannot be
   verified; papers that used it are being retracted. It is not a screening or diagnostic tool.

Layout: ``<root>/{train,valid,test}/{autistic,non_autistic}/*.jpg`` (RGB, 224x224 in the real
set). Two splits:

``split="kaggle"``
    The folders as given: train / valid / test.
``split="paper"``
    The paper's seeded 70:30 resplit: every image pooled, stratified by class, 30 % tested;
    ``val_fraction`` of the 70 % is held out for checkpoint selection (0 reproduces the paper,
    which selected on its 30 %, and warns).

:class:`AutismSegmentedDataModule` is the segment-then-classify arm: in ``prepare_data`` it builds
(or finds cached) a background-removed copy of the dataset in the same layout, through
:class:`litlab.lightning_modules.pipeline.SegmentationChain` (pseudo-masks -> DeepLabV3+ segmenter ->
predicted masks -> copy), and then serves that copy exactly as :class:`AutismDataModule` serves
the raw one, with the same split and seed, so the two arms differ only in the background.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from litlab.datamodules.arrays import ArrayDataset
from litlab.datamodules.augment import classification_transforms
from litlab.datamodules.base import LitlabDataModule, cache_root
from litlab.datamodules.folders import FolderIndex, index_class_folders, load_images
from litlab.datamodules.synthetic.autism import (
    AUTISM_CLASSES,
    GENERATOR_VERSION,
    KAGGLE_SPLITS,
    write_autism_folders,
)
from sklearn.model_selection import train_test_split

if TYPE_CHECKING:
    from litlab.lightning_modules.pipeline import SegmentationChain

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("kaggle", "paper")


@dataclass(frozen=True)
class AutismLayout:
    """The indexed Kaggle layout: one :class:`FolderIndex` per split folder.

    Attributes:
        root: The dataset folder.
        splits: ``{"train": ..., "valid": ..., "test": ...}``, classes in :data:`AUTISM_CLASSES` order.
    """

    root: Path
    splits: dict[str, FolderIndex]

    def split(self, name: str) -> FolderIndex:
        """The index of one split folder."""
        if name not in self.splits:
            raise ValueError(f"unknown split {name!r}; the layout has {list(self.splits)}")
        return self.splits[name]

    def pooled(self) -> tuple[list[Path], np.ndarray, np.ndarray]:
        """``(paths, labels (N,), split name of each (N,))`` over every split, in split order."""
        paths: list[Path] = []
        labels, names = [], []
        for name, index in self.splits.items():
            paths += index.paths
            labels.append(index.labels)
            names.append(np.full(len(index), name))
        return paths, np.concatenate(labels), np.concatenate(names)

    def fingerprint(self) -> str:
        """A hash of every file's path, size and modification time (cache keys use it)."""
        digest = hashlib.sha256(str(self.root.resolve()).encode())
        for path in self.pooled()[0]:
            st = os.stat(path)
            digest.update(f"|{path.relative_to(self.root)}|{st.st_mtime_ns}|{st.st_size}".encode())
        return digest.hexdigest()[:16]


def index_autism_layout(root: str | Path) -> AutismLayout:
    """Index ``root/{train,valid,test}/{autistic,non_autistic}/*``.

    Raises:
        FileNotFoundError: ``root`` or a split/class folder is missing (the message shows the
            expected layout).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"autism data folder {root} does not exist")
    missing = [s for s in KAGGLE_SPLITS if not (root / s).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{root} lacks split folder(s) {missing}; expected the Kaggle layout "
            "<root>/{train,valid,test}/{autistic,non_autistic}/*.jpg "
            "(for one pooled folder, put it under train/ and leave valid/test with one image "
            "per class, then use data.split=paper)"
        )
    return AutismLayout(
        root=root, splits={s: index_class_folders(root / s, AUTISM_CLASSES) for s in KAGGLE_SPLITS}
    )


def embedded_autism_folder(
    counts: dict[str, int] | None = None, seed: int = 0, background_bias: float = 0.0
) -> Path:
    """The embedded drawn-faces dataset under ``cache_root()/data``, written on first use.

    The folder name carries the generator version and every argument; it is written to a
    temporary folder and renamed into place, so concurrent processes never see half of it.
    """
    counts = dict(counts or {"train": 120, "valid": 20, "test": 40})
    tag = "-".join(f"{k}{counts[k]}" for k in KAGGLE_SPLITS if k in counts)
    folder = (
        cache_root()
        / "data"
        / f"autism-faces-v{GENERATOR_VERSION}-{tag}-s{seed}-b{background_bias:g}"
    )
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    log.info("generating the embedded autism-layout faces at %s", folder)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
    try:
        write_autism_folders(tmp, counts, seed, background_bias)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process won the race with the same data
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


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


def paper_split(
    labels: np.ndarray, test_fraction: float, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's stratified 70:30 resplit, with validation carved from the training part.

    Returns:
        ``(train, val, test)`` sorted index arrays; ``val`` is ``test`` when ``val_fraction`` is 0.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=labels)
    if val_fraction == 0:
        return np.sort(train), np.sort(test), np.sort(test)
    train, val = train_test_split(
        train, test_size=val_fraction, random_state=seed, stratify=labels[train]
    )
    return np.sort(train), np.sort(val), np.sort(test)


class AutismDataModule(LitlabDataModule):
    """Autism faces in the Kaggle layout (module docstring), RGB, as a binary classification.

    Args:
        root: The dataset folder; ``None`` generates and uses the embedded drawn faces.
        split: ``"kaggle"`` (folders as given) or ``"paper"`` (seeded stratified 70:30 resplit).
        test_fraction: Test share for ``split="paper"`` (the paper's 0.3).
        val_fraction: Validation share of the training part for ``split="paper"``; 0 validates
            on the test part as the paper did (with a warning).
        image_size: Side the images are resized to (the real set is 224).
        augment: Affine jitter and mirroring of training images (the paper names none).
        duplicate_distance: Hamming distance (of 64 bits) at or under which a test image counts
            as a near-duplicate of a training image in the logged duplicate check.
        synthetic_counts: Images per class in each split of the embedded dataset.
        synthetic_seed: Seed of the embedded dataset (``seed`` only drives splits).
        synthetic_background_bias: Share of embedded training faces whose background colour is
            tied to the label (a shortcut; 0 = none), see :mod:`litlab.datamodules.synthetic.autism`.
        batch_size, num_workers, pin_memory, seed: See :class:`LitlabDataModule`.

    Attributes:
        split_paths: After ``setup``, the files of each split (``train``/``val``/``test``).
        duplicates: After ``setup``, ``{"exact": n, "near": n, "test": n}`` train/test dHash
            matches (exact = identical hash, near = within ``duplicate_distance`` bits).

    Shape:
        batch: ``image (B, 3, S, S)`` float in ``[-1, 1]``, ``target (B,)`` int64
        (0 autistic, 1 non_autistic).
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "kaggle",
        test_fraction: float = 0.3,
        val_fraction: float = 0.1,
        image_size: int = 224,
        augment: bool = False,
        duplicate_distance: int = 4,
        synthetic_counts: dict[str, int] | None = None,
        synthetic_seed: int = 0,
        synthetic_background_bias: float = 0.0,
        batch_size: int = 16,
        num_workers: int = 2,
        pin_memory: bool | None = None,
        seed: int = 42,
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory, seed)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {image_size}")
        self.root = root
        self.split = split
        self.test_fraction = test_fraction
        self.val_fraction = val_fraction
        self.image_size = image_size
        self.augment = augment
        self.duplicate_distance = duplicate_distance
        self.synthetic = {
            "counts": synthetic_counts,
            "seed": synthetic_seed,
            "background_bias": synthetic_background_bias,
        }
        self.split_paths: dict[str, list[Path]] = {}
        self.duplicates: dict[str, int] = {}
        self.source_test_paths: list[Path] = []

    @property
    def class_names(self) -> list[str]:
        """``["autistic", "non_autistic"]``."""
        return list(AUTISM_CLASSES)

    @property
    def num_classes(self) -> int:
        return len(AUTISM_CLASSES)

    @property
    def in_chans(self) -> int:
        """RGB: 3."""
        return 3

    def source_root(self) -> Path:
        """The raw dataset: ``root``, or the embedded folder (generated on first use)."""
        if self.root:
            return Path(self.root).expanduser()
        return embedded_autism_folder(**self.synthetic)

    def data_root(self) -> Path:
        """The folder this module classifies (the raw one here; the copy in the segmented arm)."""
        return self.source_root()

    def prepare_data(self) -> None:
        self.data_root()  # generates the embedded folder once, before any process reads it

    def split_parts(self, labels: np.ndarray, folders: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(train, val, test)`` indices into the pooled images for this module's split."""
        if self.split == "kaggle":
            return tuple(np.flatnonzero(folders == name) for name in KAGGLE_SPLITS)
        if self.val_fraction == 0:
            log.warning(
                "split='paper' with val_fraction=0: validation is the %.0f %% test part, as in "
                "the paper, so the kept checkpoint is chosen on test images",
                100 * self.test_fraction,
            )
        return paper_split(labels, self.test_fraction, self.val_fraction, self.seed)

    def _check_model(self) -> None:
        """Fail early, with the fix, when the attached model cannot take this data."""
        model = getattr(getattr(self, "trainer", None), "lightning_module", None)
        hparams = getattr(model, "hparams", None) or {}
        for name, want in (("in_chans", 3), ("num_classes", 2)):
            have = hparams.get(name)
            if have is not None and int(have) != want:
                raise ValueError(
                    f"the autism faces need model.{name}={want}, the model has {name}={have}; "
                    f"set --model.{name}={want}"
                )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self._check_model()
        source = index_autism_layout(self.source_root())
        root = self.data_root()
        layout = index_autism_layout(root) if root != source.root else source
        paths, labels, folders = layout.pooled()
        train, val, test = self.split_parts(labels, folders)
        cache = cache_root() / "autism" / "images"
        images = load_images(paths, self.image_size, "rgb", cache)
        # Duplicates are a property of the raw images: both arms count them on the source files.
        raw_paths = paths if layout is source else self._source_paths(source, root, paths)
        raw = images if layout is source else load_images(raw_paths, self.image_size, "rgb", cache)
        hashes = dhash(raw)
        self.duplicates = {
            "exact": count_near_duplicates(hashes[train], hashes[test], 0),
            "near": count_near_duplicates(hashes[train], hashes[test], self.duplicate_distance),
            "test": len(test),
        }
        self.split_paths = {
            "train": [paths[i] for i in train],
            "val": [paths[i] for i in val],
            "test": [paths[i] for i in test],
        }
        self.source_test_paths = [raw_paths[i] for i in test]
        train_tf, eval_tf = classification_transforms(channels=3, augment=self.augment)
        self.train_set = ArrayDataset(images[train], labels[train], train_tf)
        self.val_set = ArrayDataset(images[val], labels[val], eval_tf)
        self.test_set = ArrayDataset(images[test], labels[test], eval_tf)
        log.info(
            "autism faces (%s split) from %s: %d train / %d val / %d test at %d px; "
            "train/test duplicates by dHash: %d exact, %d within %d bits",
            self.split,
            root,
            len(train),
            len(val),
            len(test),
            self.image_size,
            self.duplicates["exact"],
            self.duplicates["near"],
            self.duplicate_distance,
        )

    @staticmethod
    def _source_paths(source: AutismLayout, root: Path, paths: list[Path]) -> list[Path]:
        """The raw file behind each file of a copy (same ``<split>/<class>/<stem>``)."""
        by_stem = {p.relative_to(source.root).with_suffix(""): p for p in source.pooled()[0]}
        out = []
        for path in paths:
            rel = path.relative_to(root).with_suffix("")
            if rel not in by_stem:
                raise FileNotFoundError(
                    f"{path} has no source image {source.root / rel}.*; the copy is stale: "
                    f"delete {root} and run again"
                )
            out.append(by_stem[rel])
        return out

    def describe(self) -> dict[str, Any]:
        """What a report needs to know about the data of this run (JSON-serialisable)."""
        return {
            "arm": "raw",
            "source_root": str(self.source_root()),
            "data_root": str(self.data_root()),
            "split": self.split,
            "seed": self.seed,
            "image_size": self.image_size,
            "sizes": {k: len(v) for k, v in self.split_paths.items()},
            "duplicates": dict(self.duplicates),
            "test_paths": [str(p) for p in self.split_paths.get("test", [])],
            "source_test_paths": [str(p) for p in self.source_test_paths],
        }


class AutismSegmentedDataModule(AutismDataModule):
    """The autism faces with the background removed by a trained face segmenter.

    ``prepare_data`` runs (or finds cached) each stage of
    :class:`litlab.lightning_modules.pipeline.SegmentationChain`: face masks for ``train/`` and
    ``valid/`` (a mask folder, or pseudo-masks), a DeepLabV3+ segmenter trained on them by a
    nested ``Trainer``, predicted masks for every image, and the background-removed copy in the
    same layout. Every stage is keyed by everything that changes its output and logged as built
    or reused. The outer Trainer's ``fast_dev_run``, ``limit_*_batches``, accelerator and
    precision reach the nested stage; its epochs come from ``segmenter_max_epochs``. Under
    ``fast_dev_run`` the segmenter trains one batch and only ``batch_size`` images per split and
    class are segmented (a smoke copy, cached apart from real ones).

    Args:
        background: ``"zero"`` (black) or ``"blur"`` (Gaussian-blurred) background.
        blur_sigma: Gaussian sigma in pixels for ``"blur"``.
        mask_root: Face masks mirroring the data layout (nonzero = face) to train the segmenter
            on; ``None`` makes pseudo-masks (Haar or skin-colour box refined by GrabCut).
        box_method: Pseudo-mask face box: ``auto``, ``haar``, ``skin`` or ``centre``.
        grabcut_iterations: GrabCut iterations per pseudo-mask.
        grabcut_size: Side GrabCut runs at.
        segmenter_checkpoint: Use this trained segmenter (a ``SegmentationModule`` checkpoint,
            e.g. from ``litlab fit --config autism-face-segmenter``) instead of training one.
        segmenter_arch: smp architecture of the segmenter (the paper's DeepLabV3+).
        segmenter_encoder: Its encoder (the paper's ResNet-50).
        segmenter_loss: ``ce``, ``dice`` or ``ce+dice``.
        segmenter_lr: Adam learning rate.
        segmenter_max_epochs: Epochs of segmenter training.
        segmenter_batch_size: Batch size of segmenter training and mask prediction.
        Other args: See :class:`AutismDataModule`.
    """

    def __init__(
        self,
        root: str | None = None,
        split: str = "kaggle",
        test_fraction: float = 0.3,
        val_fraction: float = 0.1,
        image_size: int = 224,
        augment: bool = False,
        duplicate_distance: int = 4,
        background: str = "zero",
        blur_sigma: float = 8.0,
        mask_root: str | None = None,
        box_method: str = "auto",
        grabcut_iterations: int = 5,
        grabcut_size: int = 128,
        segmenter_checkpoint: str | None = None,
        segmenter_arch: str = "DeepLabV3Plus",
        segmenter_encoder: str = "resnet50",
        segmenter_loss: str = "ce",
        segmenter_lr: float = 1e-3,
        segmenter_max_epochs: int = 10,
        segmenter_batch_size: int = 8,
        synthetic_counts: dict[str, int] | None = None,
        synthetic_seed: int = 0,
        synthetic_background_bias: float = 0.0,
        batch_size: int = 16,
        num_workers: int = 2,
        pin_memory: bool | None = None,
        seed: int = 42,
    ) -> None:
        super().__init__(
            root, split, test_fraction, val_fraction, image_size, augment, duplicate_distance,
            synthetic_counts, synthetic_seed, synthetic_background_bias, batch_size, num_workers,
            pin_memory, seed,
        )  # fmt: skip
        if image_size % 16:
            raise ValueError(
                f"image_size {image_size} is not a multiple of 16, which the DeepLabV3+ "
                f"segmenter needs; use e.g. {max(16, round(image_size / 16) * 16)}"
            )
        self.chain_options = {
            "background": background,
            "blur_sigma": blur_sigma,
            "mask_root": mask_root,
            "box_method": box_method,
            "grabcut_iterations": grabcut_iterations,
            "grabcut_size": grabcut_size,
            "segmenter_checkpoint": segmenter_checkpoint,
            "arch": segmenter_arch,
            "encoder_name": segmenter_encoder,
            "loss": segmenter_loss,
            "lr": segmenter_lr,
            "max_epochs": segmenter_max_epochs,
            "batch_size": segmenter_batch_size,
        }
        # Fail on a bad background mode now, not after the segmenter has trained.
        from litlab.datamodules.face_masks import BACKGROUND_MODES

        if background not in BACKGROUND_MODES:
            raise ValueError(f"background must be one of {BACKGROUND_MODES}, got {background!r}")

    def chain(self) -> SegmentationChain:
        """The segmentation chain for these settings and the attached Trainer's settings.

        Imported lazily: the chain pulls in the models, which the raw arm never needs.
        """
        from litlab.lightning_modules.pipeline import SegmentationChain, StageTrainerSettings

        return SegmentationChain(
            source_root=self.source_root(),
            image_size=self.image_size,
            seed=self.seed,
            num_workers=self.num_workers,
            predict_limit=self.batch_size,
            stage=StageTrainerSettings.from_trainer(getattr(self, "trainer", None)),
            **self.chain_options,
        )

    def prepare_data(self) -> None:
        """Build or reuse every stage of the segmented copy (local rank 0 only)."""
        self.chain().run()

    def data_root(self) -> Path:
        """The background-removed copy (built now if ``prepare_data`` did not run)."""
        chain = self.chain()
        return chain.copy_root() if chain.copy_done() else chain.run()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        chain = self.chain()
        info.update(
            arm="segmented",
            background=self.chain_options["background"],
            masks_root=str(chain.copy_masks_root()),
            segmenter_checkpoint=str(chain.segmenter_checkpoint()),
            pseudo_masks=self.chain_options["mask_root"] is None,
        )
        return info
