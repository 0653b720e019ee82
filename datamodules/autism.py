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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from litlab.datamodules.base import LitlabDataModule, Parts
from litlab.datamodules.cache import cache_root
from litlab.datamodules.embedded import embedded_autism_folder
from litlab.datamodules.face_masks import BACKGROUND_MODES
from litlab.datamodules.folders import FolderIndex, index_class_folders, load_images
from litlab.datamodules.identity import count_near_duplicates, dhash
from litlab.datamodules.splits import stratified_train_val_test
from litlab.datamodules.synthetic.autism import AUTISM_CLASSES, KAGGLE_SPLITS
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from litlab.lightning_modules.pipeline import SegmentationChain

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("kaggle", "paper")
# AutismSegmentedDataModule options handed to the chain as they are, and those it takes without
# their "segmenter_" prefix.
_CHAIN_OPTIONS = ("background", "blur_sigma", "mask_root", "box_method", "grabcut_iterations",
                  "grabcut_size", "segmenter_checkpoint")  # fmt: skip
_SEGMENTER_OPTIONS = {"arch": "arch", "encoder_name": "encoder", "loss": "loss", "lr": "lr",
                      "max_epochs": "max_epochs", "batch_size": "batch_size"}  # fmt: skip


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


def autism_data_path(options: Mapping[str, Any]) -> Path:
    """The Kaggle-layout folder a DataModule's options name: ``root``, or the embedded faces
    drawn with the ``synthetic_*`` options (generated on first use)."""
    if options["root"]:
        return Path(options["root"]).expanduser()
    return embedded_autism_folder(
        options["synthetic_counts"], options["synthetic_seed"], options["synthetic_background_bias"]
    )


@dataclass(frozen=True)
class AutismImages:
    """The pooled images of every split folder, and the raw files behind them.

    Attributes:
        images: ``(N, S, S, 3)`` RGB uint8 of the folder this module classifies.
        labels: ``(N,)`` int64, 0 autistic, 1 non_autistic.
        paths: The ``N`` files of ``images``.
        folders: ``(N,)`` the Kaggle split folder (``train``/``valid``/``test``) of each image.
        raw_paths: The raw file of each image (the same files in the raw arm).
        raw_images: ``(N, S, S, 3)`` the raw pixels, on which duplicates are counted.
    """

    images: np.ndarray
    labels: np.ndarray
    paths: list[Path]
    folders: np.ndarray
    raw_paths: list[Path]
    raw_images: np.ndarray


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
        batch_size: Images per batch per process.
        **loader: ``num_workers``, ``pin_memory``, ``seed``: see :class:`LitlabDataModule`.

    Attributes:
        split_paths: After ``setup``, the files of each split (``train``/``val``/``test``).
        duplicates: After ``setup``, ``{"exact": n, "near": n, "test": n}`` train/test dHash
            matches (exact = identical hash, near = within ``duplicate_distance`` bits).

    Shape:
        batch: ``image (B, 3, S, S)`` float in ``[-1, 1]``, ``target (B,)`` int64
        (0 autistic, 1 non_autistic).
    """

    CLASS_NAMES = AUTISM_CLASSES
    IN_CHANS = 3  # RGB

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
        **loader: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **loader)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {image_size}")
        self.split_paths: dict[str, list[Path]] = {}
        self.duplicates: dict[str, int] = {}
        self.source_test_paths: list[Path] = []

    def data_path(self) -> Path:
        """The raw dataset: ``root``, or the embedded folder (generated on first use)."""
        return autism_data_path(self.hparams)

    def image_root(self) -> Path:
        """The folder this module classifies (the raw one here; the copy in the segmented arm)."""
        return self.data_path()

    def prepare_data(self) -> None:
        self.image_root()  # generates the embedded folder (or the copy) once, before any reader

    def load(self) -> AutismImages:
        """Every image of every split folder, at ``image_size``, and the raw images behind them."""
        size = self.hparams.image_size
        source = index_autism_layout(self.data_path())
        root = self.image_root()
        layout = index_autism_layout(root) if root != source.root else source
        paths, labels, folders = layout.pooled()
        cache = cache_root() / "autism" / "images"
        images = load_images(paths, size, "rgb", cache)
        # Duplicates are a property of the raw images: both arms count them on the source files.
        raw_paths = paths if layout is source else self._source_paths(source, root, paths)
        raw = images if layout is source else load_images(raw_paths, size, "rgb", cache)
        return AutismImages(images, labels, paths, folders, raw_paths, raw)

    def split(self, data: AutismImages) -> Parts:
        """The Kaggle folders as given, or the paper's seeded stratified 70:30 resplit."""
        hp = self.hparams
        if hp.split == "kaggle":
            train, val, test = (np.flatnonzero(data.folders == name) for name in KAGGLE_SPLITS)
            return train, val, test
        if hp.val_fraction == 0:
            log.warning(
                "split='paper' with val_fraction=0: validation is the %.0f %% test part, as in "
                "the paper, so the kept checkpoint is chosen on test images",
                100 * hp.test_fraction,
            )
        return stratified_train_val_test(data.labels, hp.test_fraction, hp.val_fraction, self.seed)

    def datasets(self, data: AutismImages, parts: Parts) -> tuple[Dataset, Dataset, Dataset]:
        """The classification datasets, after counting train/test duplicates by dHash."""
        train, val, test = parts
        hashes = dhash(data.raw_images)
        distance = self.hparams.duplicate_distance
        self.duplicates = {
            "exact": count_near_duplicates(hashes[train], hashes[test], 0),
            "near": count_near_duplicates(hashes[train], hashes[test], distance),
            "test": len(test),
        }
        names = ("train", "val", "test")
        self.split_paths = {
            n: [data.paths[i] for i in p] for n, p in zip(names, parts, strict=True)
        }
        self.source_test_paths = [data.raw_paths[i] for i in test]
        log.info(
            "autism faces (%s split) from %s: %d train / %d val / %d test at %d px; "
            "train/test duplicates by dHash: %d exact, %d within %d bits",
            self.hparams.split, self.image_root(), len(train), len(val), len(test),
            self.hparams.image_size, self.duplicates["exact"], self.duplicates["near"], distance,
        )  # fmt: skip
        return super().datasets(data, parts)

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
            "source_root": str(self.data_path()),
            "data_root": str(self.image_root()),
            "split": self.hparams.split,
            "seed": self.seed,
            "image_size": self.hparams.image_size,
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
        **autism: Every argument of :class:`AutismDataModule` (``root``, ``split``, ...).
    """

    def __init__(
        self,
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
        **autism: Any,
    ) -> None:
        super().__init__(**autism)
        image_size = self.hparams.image_size
        if image_size % 16:
            raise ValueError(
                f"image_size {image_size} is not a multiple of 16, which the DeepLabV3+ "
                f"segmenter needs; use e.g. {max(16, round(image_size / 16) * 16)}"
            )
        # Fail on a bad background mode now, not after the segmenter has trained.
        if background not in BACKGROUND_MODES:
            raise ValueError(f"background must be one of {BACKGROUND_MODES}, got {background!r}")

    def chain(self) -> SegmentationChain:
        """The segmentation chain for these settings and the attached Trainer's settings.

        Imported lazily: the chain pulls in the models, which the raw arm never needs.
        """
        from litlab.lightning_modules.pipeline import SegmentationChain, StageTrainerSettings

        hp = self.hparams
        options = {name: hp[name] for name in _CHAIN_OPTIONS}
        options |= {name: hp[f"segmenter_{short}"] for name, short in _SEGMENTER_OPTIONS.items()}
        return SegmentationChain(
            source_root=self.data_path(),
            image_size=hp.image_size,
            seed=self.seed,
            num_workers=self.num_workers,
            predict_limit=self.batch_size,
            stage=StageTrainerSettings.from_trainer(getattr(self, "trainer", None)),
            **options,
        )

    def prepare_data(self) -> None:
        """Build or reuse every stage of the segmented copy (local rank 0 only)."""
        self.chain().run()

    def image_root(self) -> Path:
        """The background-removed copy (built now if ``prepare_data`` did not run)."""
        chain = self.chain()
        return chain.copy_root() if chain.copy_done() else chain.run()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        chain = self.chain()
        info.update(
            arm="segmented",
            background=self.hparams.background,
            masks_root=str(chain.copy_masks_root()),
            segmenter_checkpoint=str(chain.segmenter_checkpoint()),
            pseudo_masks=self.hparams.mask_root is None,
        )
        return info
