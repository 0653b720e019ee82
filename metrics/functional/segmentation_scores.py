"""Segmentation IoU, Dice and pixel accuracy from a pixel confusion matrix (the metric's core).

Scores are dataset-level: one confusion matrix pools every pixel of the epoch, the PASCAL VOC /
Cityscapes definition. torchmetrics' ``segmentation.MeanIoU`` and ``DiceScore`` instead average per
image (``MeanIoU`` skips a class in images where it is absent, ``DiceScore`` defaults to
``aggregation_level="samplewise"``); per-image averages weight a slice with a few liver pixels like
a full one, and with them mIoU can exceed pixel accuracy. Pooled counts keep every class IoU <=
pixel accuracy in the 2-class case, an invariant the tests check.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix


def check_num_classes(num_classes: int) -> None:
    """Refuse fewer than two classes: background is a class, so one class scores nothing.

    Raises:
        ValueError: ``num_classes < 2``, naming the value.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 (background counts), got {num_classes}")


def pixel_confusion_matrix(
    preds: torch.Tensor, target: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Count pixels per (true class, predicted class).

    Args:
        preds: ``(B, H, W)`` int64 predicted class per pixel, each in ``[0, num_classes)``.
        target: ``(B, H, W)`` int64 true class per pixel, each in ``[0, num_classes)``.
        num_classes: Number of classes ``C``.

    Returns:
        ``(C, C)`` int64 counts, rows the true class and columns the predicted one.
    """
    # validate_args=False: callers check mask values once per batch themselves, and torchmetrics'
    # own check runs torch.unique over every pixel on every step.
    return multiclass_confusion_matrix(preds, target, num_classes, validate_args=False)


def segmentation_scores(confmat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-class and mean IoU and Dice, and pixel accuracy, of a pixel confusion matrix.

    A class absent from both truth and prediction (``tp + fp + fn == 0``) scores 0 in the
    per-class vectors and is left out of ``miou`` and ``mdice`` (as torchmetrics' macro average
    does). Dice per class equals the per-class F1 score over pixels.

    Args:
        confmat: ``(C, C)`` counts, rows true class, columns predicted (see
            :func:`pixel_confusion_matrix`).

    Returns:
        ``iou`` ``(C,)``, ``miou``, ``pixel_acc``, ``dice`` ``(C,)``, ``mdice``: float32 tensors;
        the means and pixel accuracy are NaN for an empty matrix.

    Raises:
        ValueError: ``confmat`` is not square.
    """
    if confmat.ndim != 2 or confmat.shape[0] != confmat.shape[1]:
        raise ValueError(f"confmat must be a (C, C) matrix, got shape {tuple(confmat.shape)}")
    counts = confmat.double()
    tp = counts.diagonal()
    fp = counts.sum(dim=0) - tp
    fn = counts.sum(dim=1) - tp
    union = tp + fp + fn
    present = union > 0
    iou = torch.where(present, tp / union.clamp(min=1), torch.zeros_like(tp))
    dice = torch.where(present, 2 * tp / (union + tp).clamp(min=1), torch.zeros_like(tp))
    nan = torch.tensor(float("nan"), dtype=counts.dtype, device=counts.device)
    total = counts.sum()
    scores = {
        "iou": iou,
        "miou": iou[present].mean() if bool(present.any()) else nan,
        "pixel_acc": tp.sum() / total if total > 0 else nan,
        "dice": dice,
        "mdice": dice[present].mean() if bool(present.any()) else nan,
    }
    return {name: value.float() for name, value in scores.items()}
