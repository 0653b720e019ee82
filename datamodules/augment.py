"""torchvision.transforms.v2 augmentation: classification inputs, and image + mask pairs together."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


def normalize_to_unit_range(channels: int) -> v2.Transform:
    """uint8 ``[0, 255]`` -> float ``[-1, 1]`` per channel, as the FER2013 paper normalises."""
    return v2.Compose(
        [v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * channels, [0.5] * channels)]
    )


@dataclass(frozen=True)
class AffineRanges:
    """Ranges of a random affine and mirror, drawn per image (torchvision ``RandomAffine``'s
    meaning); the per-sample transforms here and the batched ones in
    :mod:`~litlab.datamodules.batch_augment` both read them. The defaults are the FER2013
    paper's augmentation.

    Attributes:
        rotation: Largest rotation either way, degrees.
        shear: Largest x-shear either way, degrees (0: none).
        shift: Largest shift as a fraction of width (x) and height (y).
        zoom: Scale drawn from ``1 ± zoom`` (0: kept).
        hflip_p: Probability of a left-right mirror.
    """

    rotation: float = 10.0
    shear: float = 10.0
    shift: float = 0.1
    zoom: float = 0.1
    hflip_p: float = 0.5


#: The FER2013 paper's augmentation ranges (the defaults of :class:`AffineRanges`).
FER2013_RANGES = AffineRanges()


def paper_augmentation(ranges: AffineRanges = FER2013_RANGES) -> v2.Transform:
    """The FER2013 paper's Keras-style augmentation (or other ``ranges``) in torchvision v2:
    a random affine, then a random horizontal flip."""
    steps: list[v2.Transform] = [
        v2.RandomAffine(
            degrees=ranges.rotation,
            translate=(ranges.shift, ranges.shift),
            scale=(1 - ranges.zoom, 1 + ranges.zoom) if ranges.zoom else None,
            shear=ranges.shear or None,
        )
    ]
    if ranges.hflip_p > 0:
        steps.append(v2.RandomHorizontalFlip(p=ranges.hflip_p))
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
