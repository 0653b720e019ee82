"""torchvision.transforms.v2 augmentation: classification inputs, and image + mask pairs together."""

from __future__ import annotations

import torch
from torchvision import tv_tensors
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


def joint_flip_affine(
    hflip_p: float,
    degrees: float,
    shift: float,
    scale: tuple[float, float] | None = None,
    image_fill: float = 0.0,
    interpolation: v2.InterpolationMode = v2.InterpolationMode.NEAREST,
) -> v2.Transform:
    """A random mirror and affine jitter of an image and its mask together, for segmentation.

    The image is resampled with ``interpolation``; the ``tv_tensors.Mask`` always with nearest
    neighbour (v2 does this by type), so labels never blend. Uncovered pixels are filled with
    ``image_fill`` in the image and 0 (background) in the mask.

    Args:
        hflip_p: Probability of a horizontal mirror.
        degrees: Largest rotation either way.
        shift: Largest shift as a fraction of the size, per axis.
        scale: ``(low, high)`` zoom range; ``None`` keeps the scale.
        image_fill: Value of uncovered image pixels.
        interpolation: Image resampling.

    Shape:
        input/output: ``(tv_tensors.Image (C, S, S) float, tv_tensors.Mask (S, S) int64)``
    """
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(p=hflip_p),
            v2.RandomAffine(
                degrees=degrees,
                translate=(shift, shift),
                scale=scale,
                interpolation=interpolation,
                fill={tv_tensors.Image: image_fill, tv_tensors.Mask: 0},
            ),
        ]
    )
