"""torchvision.transforms.v2 pipelines for classification inputs (uint8 CHW tensor in)."""

from __future__ import annotations

import torch
from torchvision.transforms import v2


def normalize_to_unit_range(channels: int) -> v2.Transform:
    """uint8 ``[0, 255]`` -> float ``[-1, 1]`` per channel, as the FER2013 paper normalises."""
    return v2.Compose(
        [v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * channels, [0.5] * channels)]
    )


def paper_augmentation(
    rotation: float = 10.0,
    shear: float = 10.0,
    shift: float = 0.1,
    zoom: float = 0.1,
    hflip: bool = True,
) -> v2.Transform:
    """The FER2013 paper's Keras-style augmentation, expressed in torchvision v2.

    Rotation and shear in degrees, shift as a fraction of width/height, zoom as a fraction of
    scale (``1 ± zoom``), plus a random horizontal flip.
    """
    steps: list[v2.Transform] = [
        v2.RandomAffine(
            degrees=rotation,
            translate=(shift, shift),
            scale=(1 - zoom, 1 + zoom),
            shear=shear,
        )
    ]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)


def classification_transforms(channels: int, augment: bool) -> tuple[v2.Transform, v2.Transform]:
    """``(train, eval)`` transforms; augmentation applies to training only."""
    norm = normalize_to_unit_range(channels)
    train = v2.Compose([paper_augmentation(), norm]) if augment else norm
    return train, norm
