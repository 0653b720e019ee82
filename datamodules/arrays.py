"""In-memory image data: uint8 arrays with labels, decoded once and transformed per item."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset


class ImageArrays(Protocol):
    """A loaded dataset of uint8 images with one class label each.

    Attributes:
        images: ``(N, H, W)`` gray or ``(N, H, W, C)`` channels-last uint8.
        labels: ``(N,)`` int64 class indices.
    """

    images: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class LabelledImages:
    """Decoded uint8 images with one class label each, and the files they came from.

    Attributes:
        images: ``(N, H, W)`` gray or ``(N, H, W, C)`` channels-last uint8.
        labels: ``(N,)`` int64 class indices.
        paths: The ``N`` source files (empty when the images did not come from files).
    """

    images: np.ndarray
    labels: np.ndarray
    paths: list[Path] = field(default_factory=list)


class ArrayDataset(Dataset):
    """Images held as one uint8 array with integer labels.

    Args:
        images: ``(N, H, W)`` gray or ``(N, H, W, C)`` channels-last uint8 images.
        labels: ``(N,)`` integer class indices.
        transform: Called on a ``(C, H, W)`` uint8 tensor; returns the model input
            (usually float). ``None`` returns the uint8 tensor unchanged.

    Shape:
        item: ``(transform(image) -> (C, H, W), label: int)``
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {images.dtype}")
        if images.ndim not in (3, 4):
            raise ValueError(f"images must be (N,H,W) or (N,H,W,C), got shape {images.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        array = self.images[index]
        image = torch.from_numpy(np.ascontiguousarray(array))
        image = image.unsqueeze(0) if image.ndim == 2 else image.permute(2, 0, 1)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])
