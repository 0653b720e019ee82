"""Per-volume (3-D) Dice and IoU from per-slice pixel counts, as LiTS and nnU-Net score a scan.

A 2-D segmenter sees slices, but a CT scan is scored whole. Every slice contributes the
true-positive, false-positive and false-negative pixel counts of each scored structure; the counts
of one volume's slices are summed, then ``Dice = 2 TP / (2 TP + FP + FN)`` and
``IoU = TP / (TP + FP + FN)`` per volume. Their mean and standard deviation over volumes is LiTS's
"Dice per case"; the Dice of the counts summed over every volume is its "Dice global" (large
livers weigh more).

Scored structures: with 2 classes, class 1 (the liver). With more, first the foreground (every
class above 0 merged: LiTS's "liver" is liver plus tumour), then each class above 0 alone.

A volume where a structure is absent from both truth and prediction has no score for it (NaN), and
is left out of the mean and standard deviation, as nnU-Net does. Voxel spacing is the same for
every slice of a volume, so voxel counts give the same Dice and IoU as physical volumes.

Slices may arrive more than once (a ``DistributedSampler`` pads the last batch by repeating
items): :func:`first_occurrences` keeps each slice id once before the counts are summed.
"""

from __future__ import annotations

import torch
from litlab.metrics.functional.segmentation_scores import check_num_classes

#: Columns of the last axis of the counts tensors.
TP, FP, FN = 0, 1, 2


def structure_names(class_names: list[str]) -> list[str]:
    """Names of the scored structures: ``["liver"]`` for 2 classes, else
    ``["foreground", <class 1>, <class 2>, ...]``."""
    if len(class_names) < 2:
        raise ValueError(f"need at least 2 classes (background counts), got {class_names}")
    if len(class_names) == 2:
        return [class_names[1]]
    return ["foreground", *class_names[1:]]


def slice_counts(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """TP, FP and FN pixels of every scored structure in every slice.

    Args:
        preds: ``(B, H, W)`` integer predicted class per pixel, in ``[0, num_classes)``.
        target: ``(B, H, W)`` integer true class per pixel, in ``[0, num_classes)``.
        num_classes: Number of classes ``C`` (background included).

    Returns:
        ``(B, K, 3)`` int64 counts ``[tp, fp, fn]``, ``K`` structures as
        :func:`structure_names` orders them (1 for ``C == 2``, else ``C``).
    """
    if preds.shape != target.shape or preds.ndim != 3:
        raise ValueError(
            f"preds {tuple(preds.shape)} and target {tuple(target.shape)} must both be (B, H, W)"
        )
    check_num_classes(num_classes)
    if num_classes == 2:
        pairs = [(preds == 1, target == 1)]
    else:
        pairs = [(preds > 0, target > 0)]
        pairs += [(preds == c, target == c) for c in range(1, num_classes)]
    out = []
    for p, t in pairs:
        tp = (p & t).sum(dim=(-2, -1))
        out.append(torch.stack([tp, p.sum(dim=(-2, -1)) - tp, t.sum(dim=(-2, -1)) - tp], dim=-1))
    return torch.stack(out, dim=1).long()


def first_occurrences(ids: torch.Tensor) -> torch.Tensor:
    """Positions of the first occurrence of each distinct id, in the order of the sorted ids.

    Args:
        ids: ``(N,)`` integer ids, possibly repeated.

    Returns:
        ``(U,)`` int64 positions into ``ids``, one per distinct id.
    """
    unique, inverse = torch.unique(ids, return_inverse=True)
    positions = torch.arange(len(ids), device=ids.device)
    first = torch.full((len(unique),), len(ids), dtype=torch.long, device=ids.device)
    return first.scatter_reduce(0, inverse, positions, reduce="amin")


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    nan = torch.full_like(num, float("nan"))
    return torch.where(den > 0, num / den.clamp(min=1), nan)


def dice_iou(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dice and IoU of ``(..., 3)`` counts ``[tp, fp, fn]``; NaN where all three are 0."""
    c = counts.double()
    tp, fp, fn = c[..., TP], c[..., FP], c[..., FN]
    return _ratio(2 * tp, 2 * tp + fp + fn), _ratio(tp, tp + fp + fn)


def _mean_std(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and sample standard deviation (``ddof=1``) over dim 0, ignoring NaN.

    The mean is NaN without a finite value; the standard deviation needs two.
    """
    finite = ~torch.isnan(values)
    n = finite.sum(dim=0).double()
    filled = torch.where(finite, values, torch.zeros_like(values))
    mean = torch.where(n > 0, filled.sum(dim=0) / n.clamp(min=1), torch.nan)
    dev = torch.where(finite, values - mean, torch.zeros_like(values))
    var = (dev * dev).sum(dim=0) / (n - 1).clamp(min=1)
    std = torch.where(n > 1, var.sqrt(), torch.nan)
    return mean, std


def volume_scores(volume_ids: torch.Tensor, counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sum slice counts per volume and score every volume, their mean and the global Dice.

    Args:
        volume_ids: ``(N,)`` integer volume of each slice (each slice once; see
            :func:`first_occurrences`).
        counts: ``(N, K, 3)`` slice counts from :func:`slice_counts`.

    Returns:
        ``volumes`` ``(V,)`` the sorted distinct volume ids; ``counts`` ``(V, K, 3)`` summed;
        ``slices`` ``(V,)`` slices per volume; ``dice`` and ``iou`` ``(V, K)`` per volume (NaN
        where a structure is absent from truth and prediction); ``dice_mean``, ``dice_std``,
        ``iou_mean``, ``iou_std`` ``(K,)`` over volumes; ``dice_global`` and ``iou_global``
        ``(K,)`` of the counts summed over all volumes. Scores are float64.
    """
    if counts.ndim != 3 or counts.shape[-1] != 3 or len(counts) != len(volume_ids):
        raise ValueError(
            f"counts must be (N, K, 3) with N = len(volume_ids) = {len(volume_ids)}, "
            f"got {tuple(counts.shape)}"
        )
    volumes, inverse = torch.unique(volume_ids.long(), return_inverse=True)
    sums = torch.zeros(
        (len(volumes), *counts.shape[1:]), dtype=torch.long, device=counts.device
    ).index_add_(0, inverse, counts.long())
    slices = torch.zeros(len(volumes), dtype=torch.long, device=counts.device).index_add_(
        0, inverse, torch.ones_like(inverse)
    )
    dice, iou = dice_iou(sums)
    dice_mean, dice_std = _mean_std(dice)
    iou_mean, iou_std = _mean_std(iou)
    dice_global, iou_global = dice_iou(sums.sum(dim=0))
    return {
        "volumes": volumes,
        "counts": sums,
        "slices": slices,
        "dice": dice,
        "iou": iou,
        "dice_mean": dice_mean,
        "dice_std": dice_std,
        "iou_mean": iou_mean,
        "iou_std": iou_std,
        "dice_global": dice_global,
        "iou_global": iou_global,
    }
