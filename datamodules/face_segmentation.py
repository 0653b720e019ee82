"""The face segmenter's data: images with pseudo-masks (or a mask folder), for the DeepLabV3+ stage.

Masks come from a user mask folder (:mod:`litlab.datamodules.face_masks`) or are made
(:mod:`litlab.datamodules.pseudo_masks`); this module serves them as ``(image, mask)`` pairs with
joint image+mask augmentation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from litlab.datamodules.augment import joint_flip_affine
from litlab.datamodules.autism_layout import AutismLayout, autism_data_path, index_autism_layout
from litlab.datamodules.base import LitlabDataModule, check_at_least, check_choice
from litlab.datamodules.cache import cache_root
from litlab.datamodules.face_masks import (
    MASK_CLASSES,
    load_mask_folder,
    mask_preview_grid,
    save_rgb_png,
)
from litlab.datamodules.folders import load_images
from litlab.datamodules.pseudo_masks import BOX_METHODS, make_pseudo_masks
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

log = logging.getLogger(__name__)


def face_mask_train_transform(hflip_p: float = 0.5, degrees: float = 10.0) -> v2.Transform:
    """Mirror and small affine jitter of image and mask together (mask nearest-neighbour).

    Shape:
        input/output: ``(tv_tensors.Image (3, S, S) float, tv_tensors.Mask (S, S) int64)``
    """
    return joint_flip_affine(hflip_p, degrees, shift=0.05, scale=(0.9, 1.1), image_fill=-1.0)


def to_model_input(images: np.ndarray) -> torch.Tensor:
    """RGB uint8 ``(N, H, W, 3)`` -> float ``(N, 3, H, W)`` in ``[-1, 1]`` (the classifier's scaling)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


class FaceMaskDataset(Dataset):
    """RGB faces with binary face masks.

    Shape:
        item: ``(image float32 (3, S, S) in [-1, 1], mask int64 (S, S) in {0, 1})``
    """

    def __init__(
        self, images: np.ndarray, masks: np.ndarray, transform: v2.Transform | None = None
    ) -> None:
        if len(images) != len(masks):
            raise ValueError(f"{len(images)} images but {len(masks)} masks")
        self.images, self.masks, self.transform = images, masks, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = tv_tensors.Image(to_model_input(self.images[index : index + 1])[0])
        mask = tv_tensors.Mask(torch.from_numpy(self.masks[index].astype(np.int64)))
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)


class FaceMaskDataModule(LitlabDataModule):
    """Face images and masks of the autism layout, for training the face segmenter.

    Trains on ``train/`` and validates on ``valid/`` (the Kaggle folders); masks come from
    ``mask_root`` when given, else are pseudo-masks (module docstring). A preview grid of the
    masks is written on setup (:attr:`preview_path`) so they can be judged.

    Args:
        root: Kaggle-layout folder ``<split>/<autistic|non_autistic>/*``; ``None`` uses the
            embedded drawn faces.
        mask_root: Folder of masks mirroring ``root`` (nonzero = face); ``None`` makes pseudo-masks.
        image_size: Side of images and masks (a multiple of 16 for DeepLabV3+).
        box_method: Pseudo-mask face box: ``auto``, ``haar``, ``skin`` or ``centre``.
        grabcut_iterations: GrabCut iterations per pseudo-mask.
        grabcut_size: Side GrabCut runs at.
        augment: Mirror/affine jitter of training pairs.
        limit_per_class: Use only the first this many images of each class per split (smoke
            runs: no pseudo-masks are made for images a ``fast_dev_run`` never reaches).
        synthetic_counts: Images per class per split of the embedded dataset.
        synthetic_seed: Seed of the embedded dataset.
        synthetic_background_bias: See :func:`litlab.datamodules.synthetic.autism.draw_autism_faces`.
        batch_size: Images per batch per process.
        **loader: ``num_workers``, ``pin_memory``, ``seed``: see :class:`LitlabDataModule`.

    Shape:
        batch: ``(image float32 (B, 3, S, S) in [-1, 1], mask int64 (B, S, S))``
    """

    CLASS_NAMES = MASK_CLASSES
    IN_CHANS = 3  # RGB

    def __init__(
        self,
        root: str | None = None,
        mask_root: str | None = None,
        image_size: int = 224,
        box_method: str = "auto",
        grabcut_iterations: int = 5,
        grabcut_size: int = 128,
        augment: bool = True,
        limit_per_class: int | None = None,
        synthetic_counts: dict[str, int] | None = None,
        synthetic_seed: int = 0,
        synthetic_background_bias: float = 0.0,
        batch_size: int = 8,
        **loader: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **loader)
        check_choice("box_method", box_method, BOX_METHODS)
        check_at_least("image_size", image_size, 16)
        self.layout: AutismLayout | None = None
        self.preview_path: Path | None = None

    def data_path(self) -> Path:
        """``root``, or the embedded folder (generated on first use)."""
        return autism_data_path(self.hparams)

    def load_split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images (N, S, S, 3), masks (N, S, S))`` of one Kaggle split folder."""
        hp = self.hparams
        layout = index_autism_layout(self.data_path())
        index = layout.split(split)
        paths = [
            p
            for label in range(len(index.classes))
            for p in [q for q, y in zip(index.paths, index.labels, strict=True) if y == label][
                : hp.limit_per_class
            ]
        ]
        images = load_images(paths, hp.image_size, "rgb", cache_root() / "autism" / "images")
        if hp.mask_root:
            masks = load_mask_folder(hp.mask_root, layout.root, paths, hp.image_size)
        else:
            masks = make_pseudo_masks(
                images,
                hp.box_method,
                hp.grabcut_iterations,
                hp.grabcut_size,
                cache_dir=cache_root() / "autism" / "masks",
            ).masks
        return images, masks

    def prepare_data(self) -> None:
        """Generate the embedded data and the pseudo-mask caches once (local rank 0)."""
        self.load()

    def load(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Images and masks of the ``train`` and ``valid`` folders."""
        self.layout = index_autism_layout(self.data_path())
        return {split: self.load_split(split) for split in ("train", "valid")}

    def split(self, data: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[Any, Any, Any]:
        """The Kaggle folders: train, and valid for both validation and test (the segmenter has
        no labelled test masks of its own)."""
        return data["train"], data["valid"], data["valid"]

    def datasets(self, data: Any, parts: tuple[Any, Any, Any]) -> tuple[Dataset, Dataset, Dataset]:
        (train_x, train_m), (val_x, val_m), _ = parts
        hp = self.hparams
        val_set = FaceMaskDataset(val_x, val_m)
        tf = face_mask_train_transform() if hp.augment else None
        name = f"masks-{self.data_path().name}-{hp.image_size}.png"
        self.preview_path = save_rgb_png(
            cache_root() / "autism" / "previews" / name,
            mask_preview_grid(val_x, val_m, max_rows=8),
        )
        log.info(
            "face masks (%s): %d train / %d valid images at %d px; preview grid %s",
            "mask folder" if hp.mask_root else "pseudo-masks",
            len(train_x), len(val_x), hp.image_size, self.preview_path,
        )  # fmt: skip
        return FaceMaskDataset(train_x, train_m, tf), val_set, val_set
