"""Liver CT segmentation data: slice folders and/or NIfTI volumes, split by patient.

Finding the data and its patients is :mod:`litlab.datamodules.liver_sources` (its docstring has the
layouts and grouping rules), decoding :mod:`litlab.datamodules.liver_decode`, caching
:mod:`litlab.datamodules.liver_cache`; this module splits the decoded slices by patient, augments
the training split and serves ``(image, mask, meta)`` batches.

``meta`` says where each slice belongs, so a scan can be scored whole (per-volume Dice) without
this module knowing a model: ``volume`` is the patient's index in
:attr:`LiverDataModule.volume_names`, ``slice`` the slice's index in the decoded dataset (the same
on every process), ``patient`` the patient id. Validation and test keep every slice of their
patients; only training skips most slices without liver (``empty_slice_fraction``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from litlab.datamodules.augment import AffineRanges, joint_flip_affine
from litlab.datamodules.base import LitlabDataModule, Parts, check_at_least, check_choice
from litlab.datamodules.batch_augment import AUGMENT_ON, BatchPaperAugmentation
from litlab.datamodules.embedded import embedded_liver_phantoms
from litlab.datamodules.liver_cache import load_or_decode
from litlab.datamodules.liver_decode import LiverSlices, keep_empty_slice
from litlab.datamodules.liver_sources import DEFAULT_PATIENT_REGEX, LAYOUTS, discover_sources
from litlab.datamodules.liver_volumes import liver_predict_items
from litlab.datamodules.predict_inputs import PredictItems
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
        patients: ``(N,)`` patient id of every slice (``None``: each slice is its own
            patient ``"0"``, ``"1"``, ...).
        uint8: Serve the image as stored, uint8 ``(1, S, S)`` and untransformed, for
            augmentation and scaling on the batch's device (``augment_on="batch"``).

    Shape:
        item: ``(image float32 (1, S, S) in [0, 1], mask int64 (S, S) in [0, num_classes),
        meta)`` with ``meta = {"volume": int, "slice": int, "patient": str}`` (see the module
        docstring).
    """

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray,
        indices: np.ndarray,
        num_classes: int = 2,
        transform: v2.Transform | None = None,
        patients: np.ndarray | None = None,
        uint8: bool = False,
    ) -> None:
        if uint8 and transform is not None:
            raise ValueError("a uint8 slice dataset is augmented on its batches, not per slice")
        self.images = images
        self.uint8 = uint8
        self.masks = masks
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self._labels = np.array([0, 1, 1 if num_classes == 2 else 2], dtype=np.int64)
        if patients is None:
            patients = np.arange(len(images)).astype(str)
        #: Sorted distinct patient ids; a slice's ``meta["volume"]`` indexes this list.
        self.volume_names, self._volume_ids = np.unique(np.asarray(patients), return_inverse=True)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        j = self.indices[index]
        mask = torch.from_numpy(self._labels[np.asarray(self.masks[j])])
        volume = int(self._volume_ids[j])
        meta = {"volume": volume, "slice": int(j), "patient": str(self.volume_names[volume])}
        if self.uint8:
            return torch.from_numpy(np.array(self.images[j], dtype=np.uint8))[None], mask, meta
        image = torch.from_numpy(np.asarray(self.images[j], dtype=np.float32) / 255.0)
        image, mask = tv_tensors.Image(image.unsqueeze(0)), tv_tensors.Mask(mask)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor), meta


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
        spacing: ``None`` resizes each slice to ``image_size`` whatever its field of view. A
            number of millimetres resamples every NIfTI slice to that in-plane pixel spacing
            (read from the volume's affine), then centre-crops or pads it to ``image_size``, so
            a pixel is the same size in every scan (e.g. 1.7 mm x 224 px = a 38 cm field of
            view). PNG slices record no spacing and are refused with this option.
        num_classes: 2 = background/liver (LiTS tumour merged into liver); 3 keeps tumour.
        split_fractions: Train/val/test fractions of the patients; a 0 leaves that part empty.
        augment: Rotation/shift/mirror of the training split (image and mask together).
        rotation_degrees: Largest rotation either way (the paper gives no value).
        shift_fraction: Largest shift as a fraction of the size, per axis.
        hflip_p: Probability of a horizontal mirror.
        augment_on: ``"sample"``: per slice in the DataLoader workers (torchvision v2, image
            bilinear, mask nearest); ``"batch"``: the loaders move uint8 slices and
            :meth:`on_after_batch_transfer` scales them and draws the same ranges per slice for
            the whole batch on its device (one ``grid_sample``; the mask on the same grid,
            nearest). Same ranges either way (:meth:`augment_ranges`).
        empty_slice_fraction: Share of *training* slices without liver kept (a seeded draw per
            slice); slices with liver are always kept, and validation and test keep every slice
            so per-volume scores see whole scans. Real LiTS volumes are mostly slices below and
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
            (:class:`~litlab.datamodules.liver_decode.LiverSlices`: images, masks, patient id,
            source, spacing of each slice); datasets index into it.
        volume_names: After ``setup``, every patient id, sorted; ``meta["volume"]`` indexes it.

    Shape:
        batch: ``(image float32 (B, 1, S, S) in [0, 1], mask int64 (B, S, S), meta)`` with
        ``meta = {"volume": (B,) int64, "slice": (B,) int64, "patient": list of B str}``
    """

    IN_CHANS = 1  # CT slices

    def __init__(
        self,
        root: str | None = None,
        layout: str = "auto",
        image_size: int = 224,
        hu_window: tuple[float, float] = (-100.0, 400.0),
        spacing: float | None = None,
        num_classes: int = 2,
        split_fractions: tuple[float, float, float] = (0.70, 0.16, 0.14),
        augment: bool = True,
        rotation_degrees: float = 15.0,
        shift_fraction: float = 0.1,
        hflip_p: float = 0.5,
        augment_on: str = "sample",
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
        check_choice("layout", layout, LAYOUTS)
        check_choice("augment_on", augment_on, AUGMENT_ON)
        if num_classes not in (2, 3):
            raise ValueError(
                f"num_classes must be 2 (background, liver) or 3 (+ tumour), got {num_classes}"
            )
        check_at_least("image_size", image_size, 8)
        if len(hu_window) != 2 or not hu_window[1] > hu_window[0]:
            raise ValueError(f"hu_window must be (low, high) with low < high, got {hu_window}")
        fractions = split_fractions
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(
                f"split_fractions must be 3 fractions >= 0 summing to 1, got {split_fractions}"
            )
        if not 0.0 <= empty_slice_fraction <= 1.0:
            raise ValueError(f"empty_slice_fraction must be in [0, 1], got {empty_slice_fraction}")
        if spacing is not None and not spacing > 0:
            raise ValueError(
                f"spacing must be a positive number of millimetres per pixel, got {spacing}; "
                "or null to resize every slice to image_size"
            )
        self.slices: LiverSlices | None = None
        self.volume_names: list[str] = []
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
        return load_or_decode(sources, hp.image_size, hp.hu_window, hp.spacing)

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
        return self._thin_empty(train, slices), val, test

    def _thin_empty(self, train: np.ndarray, slices: LiverSlices) -> np.ndarray:
        """Training slices without liver, kept at ``empty_slice_fraction`` (seeded per slice)."""
        fraction = float(self.hparams.empty_slice_fraction)
        keep = [
            bool(slices.foreground[j])
            or keep_empty_slice(str(slices.names[j]), fraction, self.seed)
            for j in train
        ]
        kept = train[np.asarray(keep, dtype=bool)] if len(train) else train
        log.info(
            "training on %d of %d slices (slices without liver kept at empty_slice_fraction=%g)",
            len(kept),
            len(train),
            fraction,
        )
        return kept

    def volume_info(self) -> dict[str, dict[str, Any]]:
        """Per patient id (after ``setup``): its ``split``, number of ``slices`` served and the
        ``spacing`` of its pixels ``(row, column, slice thickness)`` in mm as served (NaN when
        its slices are PNGs, which record none)."""
        if self.slices is None:
            raise RuntimeError("LiverDataModule.setup() has not run yet")
        split_of = {p: name for name, ids in self.split_patients.items() for p in ids}
        info = {}
        for name in self.volume_names:
            rows = self.slices.spacing[self.slices.patients == name]
            finite = rows[np.isfinite(rows).all(axis=1)]
            spacing = np.median(finite, axis=0) if len(finite) else np.full(3, np.nan)
            info[name] = {
                "split": split_of.get(name, ""),
                "slices": len(rows),
                "spacing": tuple(float(v) for v in spacing),
            }
        return info

    def augment_ranges(self) -> AffineRanges:
        """The training augmentation's ranges (rotation, shift, mirror; no shear or zoom), read
        by the per-slice and the batched path alike."""
        hp = self.hparams
        return AffineRanges(
            rotation=hp.rotation_degrees, shear=0.0, shift=hp.shift_fraction, zoom=0.0,
            hflip_p=hp.hflip_p,
        )  # fmt: skip

    def datasets(self, slices: LiverSlices, parts: Parts) -> tuple[Dataset, Dataset, Dataset]:
        """Slice datasets of the three parts; only the training part is augmented (here per
        slice, or after transfer with ``augment_on="batch"``)."""
        hp = self.hparams
        on_batch = self.hparams.get("augment_on", "sample") == "batch"
        ranges = self.augment_ranges()
        train_tf = (
            liver_train_transform(ranges.rotation, ranges.shift, ranges.hflip_p)
            if hp.augment and not on_batch
            else None
        )
        tfs = (train_tf, None, None)
        datasets = [
            LiverSliceDataset(
                slices.images, slices.masks, indices, hp.num_classes, tf, slices.patients, on_batch
            )
            for indices, tf in zip(parts, tfs, strict=True)
        ]
        self.slices = slices
        self.volume_names = [str(name) for name in datasets[0].volume_names]
        log.info(
            "liver split by patient: %s",
            ", ".join(
                f"{name} {len(self.split_patients[name])} patients / {len(ds)} slices"
                for name, ds in zip(("train", "val", "test"), datasets, strict=True)
            ),
        )
        return datasets[0], datasets[1], datasets[2]

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """``augment_on="batch"``: a uint8 ``(B, 1, S, S)`` batch scaled to ``[0, 1]`` on its
        device and, in training, rotated, shifted and mirrored per slice with its masks on the
        same grid (images bilinear, masks nearest); other batches pass unchanged."""
        if self.hparams.get("augment_on", "sample") != "batch":
            return batch
        images, masks, *rest = batch
        if images.dtype != torch.uint8:
            return batch
        images = images.float().div_(255.0)
        trainer = getattr(self, "trainer", None)
        if self.hparams.augment and trainer is not None and trainer.training:
            augment = BatchPaperAugmentation(self.augment_ranges(), image_mode="bilinear")
            images, masks = augment(images, masks)
        return type(batch)([images, masks, *rest])

    def predict_items(self, path: Path) -> PredictItems:
        """NIfTI volumes (slice by slice) and PNG slices under ``path``, decoded as in training
        (:func:`~litlab.datamodules.liver_volumes.liver_predict_items`)."""
        hp = self.hparams
        return liver_predict_items(path, hp.image_size, hp.hu_window, hp.spacing)

    def preprocessing(self) -> dict[str, Any]:
        """Slices in display orientation, windowed, resized (or resampled) and scaled to [0, 1]."""
        hp = self.hparams
        geometry = (
            f"resize to {hp.image_size}x{hp.image_size} (OpenCV INTER_AREA to shrink, "
            "INTER_LINEAR to enlarge)"
            if hp.spacing is None
            else f"resample to {hp.spacing} mm per pixel, centre crop or pad (0) to "
            f"{hp.image_size}x{hp.image_size}"
        )
        return {
            "color": "gray",
            "resize": [hp.image_size, hp.image_size],
            "steps": [
                "NIfTI: axial slices in radiological display orientation (anterior up, patient "
                f"right on the left), Hounsfield units clipped to {list(hp.hu_window)} and scaled "
                "to [0, 1], then rounded to 8 bits; PNG slices: 8-bit windowed images / 255",
                geometry,
            ],
            "value_range": [0.0, 1.0],
            "layout": "NCHW float32",
        }
