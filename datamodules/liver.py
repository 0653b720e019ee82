"""Liver CT segmentation data: slice folders and/or NIfTI volumes, split by patient.

Finding the data and its patients is :mod:`litlab.datamodules.liver_sources` (its docstring has the
layouts and grouping rules), decoding :mod:`litlab.datamodules.liver_decode`, caching
:mod:`litlab.datamodules.liver_cache`; this module splits the decoded slices by patient, augments
the training split and serves ``(image, mask)`` batches.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from litlab.datamodules.augment import joint_flip_affine
from litlab.datamodules.base import LitlabDataModule, Parts
from litlab.datamodules.embedded import embedded_liver_phantoms
from litlab.datamodules.liver_cache import load_or_decode
from litlab.datamodules.liver_decode import LiverSlices
from litlab.datamodules.liver_sources import DEFAULT_PATIENT_REGEX, LAYOUTS, discover_sources
from litlab.datamodules.splits import split_by_fractions
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

log = logging.getLogger(__name__)

CLASS_NAMES = ("background", "liver", "tumour")


def liver_train_transform(
    rotation_degrees: float = 15.0, shift_fraction: float = 0.1, hflip_p: float = 0.5
) -> v2.Transform:
    """The paper's augmentation — rotation, shift, mirroring — applied to image and mask together.

    The image is resampled bilinearly, the ``tv_tensors.Mask`` with nearest neighbour (v2 does
    this by type), so labels never blend. Uncovered corners are filled with 0 (air after the
    window) and background.

    Shape:
        input/output: ``(tv_tensors.Image (1, S, S) float, tv_tensors.Mask (S, S) int64)``
    """
    return joint_flip_affine(
        hflip_p,
        rotation_degrees,
        shift_fraction,
        image_fill=0.0,
        interpolation=v2.InterpolationMode.BILINEAR,
    )


class LiverSliceDataset(Dataset):
    """A subset of decoded slices with labels mapped to the task's classes.

    Args:
        images: ``(N, S, S)`` uint8 windowed slices (may be a read-only memory map).
        masks: ``(N, S, S)`` uint8 labels 0 background, 1 liver, 2 tumour.
        indices: Which of the ``N`` slices this dataset holds.
        num_classes: 2 merges tumour into liver; 3 keeps it.
        transform: Joint transform of ``(Image, Mask)``, e.g. :func:`liver_train_transform`.

    Shape:
        item: ``(image float32 (1, S, S) in [0, 1], mask int64 (S, S) in [0, num_classes))``
    """

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        indices: np.ndarray,
        num_classes: int = 2,
        transform: v2.Transform | None = None,
    ) -> None:
        self.images = images
        self.masks = masks
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self._labels = np.array([0, 1, 1 if num_classes == 2 else 2], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = self.indices[index]
        image = torch.from_numpy(np.asarray(self.images[j], dtype=np.float32) / 255.0)
        mask = torch.from_numpy(self._labels[np.asarray(self.masks[j])])
        image, mask = tv_tensors.Image(image.unsqueeze(0)), tv_tensors.Mask(mask)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


class LiverDataModule(LitlabDataModule):
    """2-D liver CT segmentation slices, split by patient (70/16/14 as the paper).

    Args:
        root: Folder with slice folders and/or NIfTI volumes (see
            :mod:`litlab.datamodules.liver_sources` for the layouts and how patients are found).
            ``None`` uses generated phantoms (:mod:`litlab.datamodules.synthetic.liver`), written
            once under ``cache_root()/data/`` and read through the same loaders.
        layout: ``"auto"`` loads both layouts found under ``root``; ``"slices"`` or
            ``"nifti"`` only one.
        image_size: Slices are resized to ``image_size`` square (image area/bilinear, mask
            nearest).
        hu_window: Hounsfield window scaled to [0, 1] for NIfTI volumes. PNG slices are
            already windowed: 0..255 becomes 0..1.
        num_classes: 2 = background/liver (LiTS tumour merged into liver); 3 keeps tumour.
        split_fractions: Train/val/test fractions of the patients; a 0 leaves that part empty.
        augment: Rotation/shift/mirror of the training split (image and mask together).
        rotation_degrees: Largest rotation either way (the paper gives no value).
        shift_fraction: Largest shift as a fraction of the size, per axis.
        hflip_p: Probability of a horizontal mirror.
        empty_slice_fraction: Share of slices *without* liver kept (a seeded draw per slice);
            slices with liver are always kept. Real LiTS volumes are mostly slices below and
            above the liver, so the default 0.1 keeps training from being dominated by
            background while still showing the model empty slices; 1.0 keeps everything.
        patient_regex: How flat slice folders name patients (a regex with a named group
            ``patient`` matched against the whole file stem).
        synthetic_patients: Patients in the generated default dataset.
        synthetic_slices: Axial slices per generated patient.
        synthetic_size: Pixel size of the generated slices (like a CT matrix, then resized).
        synthetic_seed: Seed of the generated dataset (``seed`` only drives the split, so
            changing it does not change the data).
        batch_size: Slices per batch per process.
        split: The former name of ``split_fractions``; giving it is an error that names the new
            one (``split`` names a protocol in the other DataModules).
        **loader: ``num_workers``, ``pin_memory``, ``seed``: see :class:`LitlabDataModule`.

    Attributes:
        split_patients: After ``setup``, the patient ids of each split
            (``{"train": [...], "val": [...], "test": [...]}``); no id is in two splits.
        slices: After ``setup``, all decoded slices
            (:class:`~litlab.datamodules.liver_decode.LiverSlices`: images, masks, patient id and
            source of each slice); datasets index into it.

    Shape:
        batch: ``(image float32 (B, 1, S, S) in [0, 1], mask int64 (B, S, S))``
    """

    IN_CHANS = 1  # CT slices

    def __init__(
        self,
        root: str | None = None,
        layout: str = "auto",
        image_size: int = 224,
        hu_window: tuple[float, float] = (-100.0, 400.0),
        num_classes: int = 2,
        split_fractions: tuple[float, float, float] = (0.70, 0.16, 0.14),
        augment: bool = True,
        rotation_degrees: float = 15.0,
        shift_fraction: float = 0.1,
        hflip_p: float = 0.5,
        empty_slice_fraction: float = 0.1,
        patient_regex: str = DEFAULT_PATIENT_REGEX,
        synthetic_patients: int = 12,
        synthetic_slices: int = 16,
        synthetic_size: int = 256,
        synthetic_seed: int = 0,
        batch_size: int = 8,
        split: Any = None,
        **loader: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **loader)
        if split is not None:
            raise ValueError(
                f"data.split={split!r}: the liver patient fractions are now data.split_fractions; "
                "pass them as --data.split_fractions=[0.70,0.16,0.14] (or split_fractions: in YAML)"
            )
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if num_classes not in (2, 3):
            raise ValueError(
                f"num_classes must be 2 (background, liver) or 3 (+ tumour), got {num_classes}"
            )
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        if len(hu_window) != 2 or not hu_window[1] > hu_window[0]:
            raise ValueError(f"hu_window must be (low, high) with low < high, got {hu_window}")
        fractions = split_fractions
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(
                f"split_fractions must be 3 fractions >= 0 summing to 1, got {split_fractions}"
            )
        if not 0.0 <= empty_slice_fraction <= 1.0:
            raise ValueError(f"empty_slice_fraction must be in [0, 1], got {empty_slice_fraction}")
        self.slices: LiverSlices | None = None
        #: Patient ids per split, filled by ``setup``.
        self.split_patients: dict[str, list[str]] = {}

    @property
    def class_names(self) -> list[str]:
        """``["background", "liver"]`` or ``["background", "liver", "tumour"]``."""
        return list(CLASS_NAMES[: self.hparams.num_classes])

    def data_path(self) -> Path:
        """``root``, or the generated phantom folder (written here if it is missing)."""
        hp = self.hparams
        if hp.root is not None:
            return Path(hp.root).expanduser()
        return embedded_liver_phantoms(
            hp.synthetic_patients, hp.synthetic_slices, hp.synthetic_size, hp.synthetic_seed
        )

    def prepare_data(self) -> None:
        """Generate the default phantoms and decode the cache once (local rank 0)."""
        self.load()

    def load(self) -> LiverSlices:
        hp = self.hparams
        sources = discover_sources(self.data_path(), hp.layout, hp.patient_regex)
        return load_or_decode(
            sources, hp.image_size, hp.hu_window, hp.empty_slice_fraction, self.seed
        )

    def split(self, slices: LiverSlices) -> Parts:
        """Slice indices of each part: patients drawn by ``split_fractions``, every slice of a
        patient with it."""
        fractions = tuple(float(f) for f in self.hparams.split_fractions)
        patients = sorted(set(slices.patients.tolist()))
        parts = split_by_fractions(len(patients), fractions, self.seed)
        names = ("train", "val", "test")
        for name, fraction, part in zip(names, fractions, parts, strict=True):
            if fraction > 0 and len(part) == 0:
                counts = "/".join(str(len(p)) for p in parts)
                raise ValueError(
                    f"too few patients: {len(patients)} patient(s) split {fractions} gives "
                    f"train/val/test = {counts}, so the {name} split is empty. Add patients "
                    "(with the default 70/16/14 split at least 6), or set its fraction to 0"
                )
        self.split_patients = {
            name: [patients[i] for i in part] for name, part in zip(names, parts, strict=True)
        }
        train, val, test = (
            np.flatnonzero(np.isin(slices.patients, self.split_patients[name])) for name in names
        )
        return train, val, test

    def datasets(self, slices: LiverSlices, parts: Parts) -> tuple[Dataset, Dataset, Dataset]:
        """Slice datasets of the three parts; only the training part is augmented."""
        hp = self.hparams
        train_tf = (
            liver_train_transform(hp.rotation_degrees, hp.shift_fraction, hp.hflip_p)
            if hp.augment
            else None
        )
        tfs = (train_tf, None, None)
        datasets = [
            LiverSliceDataset(slices.images, slices.masks, indices, hp.num_classes, transform=tf)
            for indices, tf in zip(parts, tfs, strict=True)
        ]
        self.slices = slices
        log.info(
            "liver split by patient: %s",
            ", ".join(
                f"{name} {len(self.split_patients[name])} patients / {len(ds)} slices"
                for name, ds in zip(("train", "val", "test"), datasets, strict=True)
            ),
        )
        return datasets[0], datasets[1], datasets[2]
