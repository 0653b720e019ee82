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

:class:`AutismSegmentedDataModule` is the segment-then-classify arm: it serves the
background-removed copy of the dataset (same layout) that ``litlab workflow
segment-then-classify`` writes after fitting a DeepLabV3+ face segmenter, exactly as
:class:`AutismDataModule` serves the raw one, with the same split and seed, so the two arms differ
only in the background. The workflow, not this module, runs the segmenter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from litlab.datamodules.autism_copy import MANIFEST, SegmentedCopy, read_segmented_copy
from litlab.datamodules.autism_layout import AutismLayout, autism_data_path, index_autism_layout
from litlab.datamodules.base import LitlabDataModule, Parts, check_at_least, check_choice
from litlab.datamodules.cache import cache_root
from litlab.datamodules.face_masks import BACKGROUND_MODES
from litlab.datamodules.folders import load_images
from litlab.datamodules.identity import count_near_duplicates, dhash
from litlab.datamodules.splits import stratified_train_val_test
from litlab.datamodules.synthetic.autism import AUTISM_CLASSES, KAGGLE_SPLITS
from torch.utils.data import Dataset

from litlab.errors import BadInputError

if TYPE_CHECKING:
    from litlab.datamodules.predict_inputs import PredictItems

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("kaggle", "paper")


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
        check_choice("split", split, SPLITS)
        check_at_least("image_size", image_size, 16)
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
        try:
            return stratified_train_val_test(
                data.labels, hp.test_fraction, hp.val_fraction, self.seed, list(AUTISM_CLASSES)
            )
        except BadInputError as err:
            raise BadInputError(f"{self.data_path()}: {err}") from err

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

    Serves the background-removed copy that ``litlab workflow segment-then-classify`` writes
    (``copy_root``; :mod:`litlab.datamodules.autism_copy`) exactly as :class:`AutismDataModule`
    serves the raw folder, with the same split and seed, so the two arms differ only in the
    background; duplicates are counted on the raw images behind the copy. Nothing is trained
    or predicted here: the workflow fits the segmenter and writes the copy in runs of their own.

    Args:
        copy_root: The copy's folder (the workflow sets it for its classifier run).
        background: ``"zero"`` (black) or ``"blur"`` (Gaussian-blurred) background; the workflow
            makes the copy with it, and a copy made otherwise is refused.
        blur_sigma: Gaussian sigma in pixels for ``"blur"`` (checked likewise).
        **autism: Every argument of :class:`AutismDataModule` (``root``, ``split``, ...); ``root``
            and ``image_size`` must be the copy's.
    """

    def __init__(
        self,
        copy_root: str | None = None,
        background: str = "zero",
        blur_sigma: float = 8.0,
        **autism: Any,
    ) -> None:
        super().__init__(**autism)
        if background not in BACKGROUND_MODES:
            raise ValueError(f"background must be one of {BACKGROUND_MODES}, got {background!r}")
        self._copy: SegmentedCopy | None = None

    def segmented_copy(self) -> SegmentedCopy:
        """The copy this module serves, checked against its options (read once).

        Raises:
            FileNotFoundError: No ``copy_root`` (the message names the workflow command), or it
                holds no finished copy.
            ValueError: The copy was made from another folder, size or background.
        """
        if self._copy is not None:
            return self._copy
        hp = self.hparams
        if not hp.copy_root:
            raise FileNotFoundError(
                "the segmented arm classifies the background-removed copy that `litlab workflow "
                "segment-then-classify` writes: run that command with these options instead of "
                "`litlab fit` (it fits the face segmenter, writes the copy, then fits this preset "
                "on it, each step cached and resumable), or pass --data.copy_root=<copy folder>"
            )
        copy = read_segmented_copy(hp.copy_root)
        checks = {
            "source folder": (copy.source_root.resolve(), self.data_path().resolve()),
            "image_size": (copy.image_size, hp.image_size),
            "background": (copy.background, hp.background),
        }
        if hp.background == "blur":
            checks["blur_sigma"] = (copy.blur_sigma, hp.blur_sigma)
        wrong = [
            f"{k}: the copy's is {a}, the options say {b}" for k, (a, b) in checks.items() if a != b
        ]
        if wrong:
            raise ValueError(
                f"the copy {copy.root} was made for other options:\n  " + "\n  ".join(wrong)
                + "\nrun `litlab workflow segment-then-classify` with these options (it makes "
                "the matching copy), or point --data.copy_root at a copy that matches"
            )  # fmt: skip
        self._copy = copy
        return copy

    def image_root(self) -> Path:
        """The background-removed images of the copy."""
        return self.segmented_copy().images_root

    def predict_items(self, path: Path) -> PredictItems:
        """Background-removed images to classify: a copy made by ``litlab workflow
        remove-background`` with this arm's segmenter. Raw faces are refused (the message gives
        the command that makes their copy), since this classifier never saw a background."""
        path = Path(path).expanduser()
        if not (path / MANIFEST).is_file():
            hp = self.hparams
            segmenter = (
                self.segmented_copy().segmenter_checkpoint if hp.copy_root else "<segmenter.ckpt>"
            )
            raise ValueError(
                f"{path} holds raw faces, and the segmented arm classifies faces whose "
                "background was removed by its face segmenter first: run `litlab workflow "
                f"remove-background --checkpoint {segmenter} --images {path} --out <copy> "
                f"--image-size {hp.image_size} --background {hp.background}`, then predict with "
                "--predict_from <copy>"
            )
        copy = read_segmented_copy(path)
        if (copy.image_size, copy.background) != (self.hparams.image_size, self.hparams.background):
            raise ValueError(
                f"{path} was made at {copy.image_size} px with background {copy.background}; this "
                f"arm was trained at {self.hparams.image_size} px with background "
                f"{self.hparams.background}: make the copy again with those options"
            )
        return super().predict_items(copy.images_root)

    def preprocessing(self) -> dict[str, Any]:
        """The raw arm's, after the face segmenter removes the background."""
        hp = self.hparams
        segmenter = self.segmented_copy().segmenter if hp.copy_root else "face segmenter"
        step = (
            f"background set to {hp.background} outside the face mask of the {segmenter} face "
            "segmenter (a separate model: `litlab workflow remove-background` applies it)"
        )
        return {**super().preprocessing(), "steps": [step]}

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        copy = self.segmented_copy()
        info.update(
            arm="segmented",
            background=self.hparams.background,
            masks_root=str(copy.masks_root),
            segmenter_checkpoint=copy.segmenter_checkpoint,
            segmenter=copy.segmenter,
            copy_root=str(copy.root),
        )
        return info
