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
from pathlib import Path
from typing import Any

import numpy as np
from litlab.datamodules.arrays import LabelledImages
from litlab.datamodules.base import LitlabDataModule, Parts, check_choice
from litlab.datamodules.cache import cache_root
from litlab.datamodules.embedded import embedded_ckplus_folder
from litlab.datamodules.face_preprocessing import (
    DetectFace,
    Preprocessed,
    input_channels,
    preprocess_images,
)
from litlab.datamodules.folders import (
    FolderIndex,
    class_folder_names,
    index_class_folders,
    load_images,
    resize_image,
)
from litlab.datamodules.splits import (
    fold_parts,
    stratified_grouped_holdout,
    stratified_train_val_test,
    subject_folds,
)

from litlab.errors import BadInputError

log = logging.getLogger(__name__)

CKPLUS_CLASSES: tuple[str, ...] = (
    "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise",
)  # fmt: skip
SPLITS: tuple[str, ...] = ("random", "subject")
SUBJECT_PATTERN = r"^(S\d+)_"


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


class CKPlusDataModule(LitlabDataModule):
    """CK+48 (``<root>/<class>/S###_###_########.png``), or an embedded drawn-faces copy.

    Images are decoded once, face-cropped, resized, equalised and edge-detected with OpenCV
    (:mod:`litlab.datamodules.face_preprocessing`), and the result is cached; see the module
    docstring for how train / val / test are formed in each split mode.

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
        batch_size: Images per batch per process (the paper's 8).
        **loader: ``num_workers``, ``pin_memory``, ``seed`` (which also seeds the splits): see
            :class:`LitlabDataModule`.

    Attributes:
        index: After ``setup``, the indexed class folders.
        preprocessed: After ``setup``, the preprocessed images and face boxes.
        split_indices: After ``setup``, ``{"train", "val", "test"}`` indices into ``index``.

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
        **loader: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **loader)
        check_choice("split", split, SPLITS)
        if split == "subject" and not 0 <= fold < n_folds:
            raise ValueError(f"fold must lie in [0, n_folds={n_folds}), got {fold}")
        if val_fraction is not None and not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
        if split == "subject" and val_fraction == 0:
            raise ValueError(
                "split='subject' needs a validation part from the training subjects "
                "(val_fraction > 0); using the test fold for checkpointing would leak it"
            )
        input_channels(input_mode)  # fails now on an unknown mode
        self.index: FolderIndex | None = None
        self.preprocessed: Preprocessed | None = None
        self.split_indices: dict[str, np.ndarray] = {}

    @property
    def in_chans(self) -> int:
        """Input channels: 2 for ``input_mode="both"``, else 1."""
        return input_channels(self.hparams.input_mode)

    @property
    def class_names(self) -> list[str]:
        """The class folders of ``root`` (sorted), or CK+'s seven for the embedded copy."""
        if self.hparams.root:
            return class_folder_names(self.data_path(), required=True)
        return list(CKPLUS_CLASSES)

    def data_path(self) -> Path:
        """``root``, or the embedded CK+48-layout folder (generated on first use)."""
        if self.hparams.root:
            return Path(self.hparams.root).expanduser()
        return embedded_ckplus_folder(self.hparams.synthetic_subjects)

    def load(self) -> LabelledImages:
        """Index the class folders, decode and preprocess every image (cached)."""
        hp = self.hparams
        root = self.data_path()
        index = index_class_folders(root)
        if tuple(index.classes) != CKPLUS_CLASSES:
            log.info("%s: classes %s differ from CK+'s %s", root, index.classes, CKPLUS_CLASSES)
        cache = cache_root() / "ckplus"
        raw = load_images(
            index.paths, hp.load_size, "gray", cache, size_option="--data.load_size=<pixels>"
        )
        self.index = index
        self.preprocessed = preprocess_images(
            raw, size=hp.image_size, equalize_hist=hp.equalize, detect_face=hp.detect_face,
            input_mode=hp.input_mode, canny_low=hp.canny_low, canny_high=hp.canny_high,
            cache_dir=cache,
        )  # fmt: skip
        return LabelledImages(self.preprocessed.images, index.labels, index.paths)

    def split(self, data: LabelledImages) -> Parts:
        """The random (paper) or subject-fold parts; see the module docstring."""
        hp = self.hparams
        if hp.split == "random":
            val_fraction = hp.val_fraction or 0.0
            if not val_fraction:
                log.warning(
                    "split='random': validation is the %.0f %% test part (the paper has only "
                    "train/test), so the kept checkpoint is chosen on test images; set "
                    "data.val_fraction > 0 for a separate validation part",
                    100 * hp.test_fraction,
                )
            try:
                parts = stratified_train_val_test(
                    data.labels,
                    hp.test_fraction,
                    val_fraction,
                    self.seed,
                    self.index.classes if self.index is not None else None,
                )
            except BadInputError as err:
                raise BadInputError(f"{self.data_path()}: {err}") from err
            where = f"{1 - hp.test_fraction:.0%}/{hp.test_fraction:.0%}"
        else:
            groups = subject_ids(data.paths, hp.subject_pattern)
            folds = subject_folds(data.labels, groups, hp.n_folds, self.seed)
            rest, test = fold_parts(folds, hp.fold)
            val_fraction = 0.1 if hp.val_fraction is None else hp.val_fraction
            train, val = stratified_grouped_holdout(
                rest, data.labels[rest], groups[rest], val_fraction, self.seed
            )
            parts = (train, val, test)
            where = f"fold {hp.fold}/{hp.n_folds}"
        self.split_indices = dict(zip(("train", "val", "test"), parts, strict=True))
        log.info(
            "CK+ %s split (%s) of %s: %d train / %d val / %d test images; input %s, %d channel(s)",
            hp.split, where, self.data_path(), *map(len, parts), hp.input_mode, self.in_chans,
        )  # fmt: skip
        return parts

    def predict_arrays(self, images: list[np.ndarray]) -> np.ndarray:
        """New images through the training preprocessing: decoded at ``load_size`` (else their
        own size), face crop, resize to ``image_size``, equalisation, edges per ``input_mode``."""
        hp = self.hparams
        if hp.load_size:
            images = [resize_image(im, (hp.load_size, hp.load_size)) for im in images]
        out: list[np.ndarray | None] = [None] * len(images)
        for shape in {im.shape for im in images}:  # one batch per input size
            which = [i for i, im in enumerate(images) if im.shape == shape]
            done = preprocess_images(
                np.stack([images[i] for i in which]), size=hp.image_size,
                equalize_hist=hp.equalize, detect_face=hp.detect_face, input_mode=hp.input_mode,
                canny_low=hp.canny_low, canny_high=hp.canny_high,
            )  # fmt: skip
            for i, image in zip(which, done.images, strict=True):
                out[i] = image
        return np.stack(out)

    def preprocessing(self) -> dict[str, Any]:
        """The base's scaling after the paper's OpenCV steps (module docstring)."""
        hp = self.hparams
        steps = [
            f"decode gray{f' at {hp.load_size}x{hp.load_size}' if hp.load_size else ''}",
            f"Haar-cascade face crop (detect_face={hp.detect_face}; whole image if none found)",
            f"resize to {hp.image_size}x{hp.image_size}",
        ]
        steps += ["cv2.equalizeHist"] if hp.equalize else []
        edges = f"cv2.Canny({hp.canny_low}, {hp.canny_high}) after a 3x3 Gaussian blur"
        steps.append(
            {"gray": "gray channel", "edges": edges, "both": f"gray and {edges}"}[hp.input_mode]
        )
        return {**super().preprocessing(), "color": "gray", "steps": steps}
