"""The base of the metrics scored on index masks: the class count checked once, the flags once.

:class:`~litlab.metrics.segmentation_scores.SegmentationScores` (pooled pixels) and
:class:`~litlab.metrics.volume_scores.VolumeScores` (per volume) both score ``(B, H, W)`` masks of
``num_classes`` classes, background included; they differ in the states they keep.
"""

from __future__ import annotations

from litlab.metrics.functional.segmentation_scores import check_num_classes
from torchmetrics import Metric


class MaskMetric(Metric):
    """A torchmetrics ``Metric`` on index masks: higher is better, no gradient flows through it,
    and its ``update`` needs no full state.

    Args:
        num_classes: Number of classes ``C``, background included (at least 2).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        check_num_classes(num_classes)
        self.num_classes = num_classes
