"""Segmentation IoU, Dice and pixel accuracy as a torchmetrics ``Metric`` summed over DDP ranks.

The state is one pixel confusion matrix (``dist_reduce_fx="sum"``); ``compute`` scores it with
:func:`litlab.metrics.functional.segmentation_scores.segmentation_scores`.
"""

from __future__ import annotations

import torch
from litlab.metrics.functional.segmentation_scores import (
    pixel_confusion_matrix,
    segmentation_scores,
)
from litlab.metrics.mask_metric import MaskMetric


class SegmentationScores(MaskMetric):
    """Epoch-level segmentation scores on index masks, accumulated over every pixel seen.

    ``compute()`` returns ``iou`` ``(C,)``, ``miou``, ``pixel_acc``, ``dice`` ``(C,)`` and
    ``mdice`` (see :func:`segmentation_scores` for absent classes).

    Args:
        num_classes: Number of classes ``C``.

    Shape:
        ``update(preds, target)``: two int64 tensors ``(B, H, W)`` with values in ``[0, C)``.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)
        zeros = torch.zeros(num_classes, num_classes, dtype=torch.long)
        self.add_state("confmat", default=zeros, dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted and true masks ``(B, H, W)``."""
        self.confmat += pixel_confusion_matrix(preds, target, self.num_classes)

    def compute(self) -> dict[str, torch.Tensor]:
        """The scores of every pixel added since the last reset."""
        return segmentation_scores(self.confmat)
