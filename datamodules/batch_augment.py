"""The paper's augmentation on a whole batch on its device: one affine grid, one resampling.

:func:`~litlab.datamodules.augment.paper_augmentation` draws a rotation, shift, zoom and shear
per image in a DataLoader worker (torchvision v2 ``RandomAffine`` then ``RandomHorizontalFlip``).
:class:`BatchPaperAugmentation` draws the same parameters from the same ranges, one set per
image, for a whole batch at once, and resamples every image with one ``grid_sample`` on the
batch's device; the flip is folded into the sampling grid. For given parameters the result is
torchvision's ``affine`` + ``hflip`` of each image (same inverse matrix, grid and nearest
sampling). A mask passed beside its images gets the same grid, sampled by nearest neighbour with
0 (background) outside, so labels never blend. The ranges are one
:class:`~litlab.datamodules.augment.AffineRanges` that the per-sample path reads too (the
FER2013 paper's by default; the liver DataModule passes its own).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from litlab.datamodules.augment import FER2013_RANGES, AffineRanges

#: Where the augmentation runs: per image in the loader workers, or per batch on its device.
AUGMENT_ON: tuple[str, ...] = ("sample", "batch")


@dataclass(frozen=True)
class AffineParams:
    """One affine draw per image of a batch (torchvision ``RandomAffine`` conventions).

    Attributes:
        angle: ``(B,)`` rotation in degrees, counter-clockwise.
        translate: ``(B, 2)`` shift in whole pixels (x, y).
        scale: ``(B,)`` zoom factor.
        shear: ``(B, 2)`` shear in degrees (x, y).
        flip: ``(B,)`` bool, mirrored left-right after the affine.
    """

    angle: torch.Tensor
    translate: torch.Tensor
    scale: torch.Tensor
    shear: torch.Tensor
    flip: torch.Tensor


class BatchPaperAugmentation:
    """Per-image random affine and flip of a ``(B, C, H, W)`` batch, on the batch's device.

    Args:
        ranges: What to draw (the FER2013 paper's ranges unless given), as the per-sample
            :func:`~litlab.datamodules.augment.paper_augmentation` reads them.
        image_mode: ``"nearest"`` (the per-sample default) or ``"bilinear"`` resampling of the
            images; masks are always resampled by nearest neighbour.
    """

    def __init__(
        self,
        ranges: AffineRanges = FER2013_RANGES,
        image_mode: str = "nearest",
    ) -> None:
        if image_mode not in ("nearest", "bilinear"):
            raise ValueError(f"image_mode must be 'nearest' or 'bilinear', got {image_mode!r}")
        self.ranges, self.image_mode = ranges, image_mode

    def sample(
        self, batch: int, height: int, width: int, device: torch.device | str = "cpu"
    ) -> AffineParams:
        """Draw one parameter set per image, with torchvision ``RandomAffine``'s distributions."""
        r = self.ranges

        def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
            return torch.empty(batch, *shape, device=device).uniform_(low, high)

        max_shift = torch.tensor([r.shift * width, r.shift * height], device=device)
        translate = torch.round((torch.rand(batch, 2, device=device) * 2 - 1) * max_shift)
        shear = torch.zeros(batch, 2, device=device)
        shear[:, 0] = uniform(-r.shear, r.shear)
        return AffineParams(
            angle=uniform(-r.rotation, r.rotation),
            translate=translate,
            scale=uniform(1 - r.zoom, 1 + r.zoom),
            shear=shear,
            flip=torch.rand(batch, device=device) < r.hflip_p,
        )

    def grid(self, params: AffineParams, height: int, width: int) -> torch.Tensor:
        """The sampling grid of each image: ``(B, H, W, 2)`` in ``grid_sample`` coordinates."""
        theta = inverse_affine(params)  # (B, 2, 3) pixel units, centred
        device, dtype = theta.device, theta.dtype
        xs = torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, width, device=device)
        ys = torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, height, device=device)
        x, y = xs.expand(height, width), ys[:, None].expand(height, width)
        base = torch.stack([x, y, torch.ones_like(x)], dim=-1).to(dtype)  # (H, W, 3)
        scale = torch.tensor([0.5 * width, 0.5 * height], device=device, dtype=dtype)
        grid = base.view(1, height * width, 3) @ (theta.transpose(1, 2) / scale)
        grid = grid.view(-1, height, width, 2)
        return torch.where(params.flip[:, None, None, None], grid.flip(2), grid)

    def __call__(
        self, images: torch.Tensor, masks: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augment a batch (and its masks with the same transforms).

        Args:
            images: ``(B, C, H, W)`` uint8 or float.
            masks: ``(B, H, W)`` or ``(B, 1, H, W)`` integer labels, or ``None``.

        Returns:
            ``images`` resampled (dtype kept, 0 outside), and ``masks`` likewise (0 outside).
        """
        b, _, h, w = images.shape
        grid = self.grid(self.sample(b, h, w, images.device), h, w)
        out = resample(images, grid, self.image_mode)
        return out, None if masks is None else resample(masks, grid)


def inverse_affine(params: AffineParams) -> torch.Tensor:
    """Each image's output-to-input matrix, as torchvision's ``_get_inverse_affine_matrix``.

    The forward map is ``T * C * R * S * Sh * C^-1`` about the centre (rotation, scale, shear);
    its inverse is written out in closed form, batched.

    Returns:
        ``(B, 2, 3)`` float32 in pixel units about the image centre.
    """
    rot = torch.deg2rad(params.angle)
    sx, sy = torch.deg2rad(params.shear).unbind(1)
    tx, ty = params.translate.unbind(1)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    s = params.scale
    m = torch.stack([d, -b, -c, a], dim=1).view(-1, 2, 2) / s[:, None, None]  # (B, 2, 2)
    shift = -(m @ torch.stack([tx, ty], dim=1)[:, :, None])[:, :, 0]  # centre is (0, 0)
    return torch.cat([m, shift[:, :, None]], dim=2).float()


def resample(x: torch.Tensor, grid: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """Sampling of ``x`` at ``grid`` (nearest neighbour unless ``mode`` says ``"bilinear"``),
    0 outside, dtype and rank kept (integers rounded back).

    Shape:
        x: ``(B, C, H, W)`` or ``(B, H, W)``; grid: ``(B, H, W, 2)``.
    """
    squeeze = x.ndim == 3
    src = x[:, None] if squeeze else x
    out = F.grid_sample(
        src.to(grid.dtype), grid, mode=mode, padding_mode="zeros", align_corners=False
    )
    if not torch.is_floating_point(x):
        out = out.round_().to(x.dtype)
    return out[:, 0] if squeeze else out
