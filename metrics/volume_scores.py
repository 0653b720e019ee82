"""Per-volume Dice and IoU as a torchmetrics ``Metric``: slice counts gathered over DDP ranks.

The math is :func:`litlab.metrics.functional.volume_scores.volume_scores`. Each rank keeps, per
slice it saw, the slice id, its volume id and its TP/FP/FN counts (``cat``-reduced states, a few
integers per slice). ``compute`` gathers every rank's slices, keeps each slice id once (a
``DistributedSampler`` repeats items to even out the ranks) and only then sums the counts per
volume, so a volume whose slices were spread over several ranks is scored whole.
"""

from __future__ import annotations

import torch
from litlab.metrics.functional.volume_scores import (
    first_occurrences,
    slice_counts,
    volume_scores,
)
from litlab.metrics.mask_metric import MaskMetric
from torchmetrics.utilities import dim_zero_cat


class VolumeScores(MaskMetric):
    """3-D Dice and IoU per volume, their mean and standard deviation, and the global Dice.

    Args:
        num_classes: Number of classes ``C`` (background included); the scored structures are
            :func:`~litlab.metrics.functional.volume_scores.structure_names`.

    Shape:
        ``update(preds, target, volume_ids, slice_ids)``: ``preds`` and ``target`` ``(B, H, W)``
        integer masks; ``volume_ids`` and ``slice_ids`` ``(B,)`` integers, a slice id naming one
        slice of the dataset wherever it is seen.

    ``compute()`` returns the dict of
    :func:`~litlab.metrics.functional.volume_scores.volume_scores`, except that torchmetrics
    squeezes every one-element tensor to a scalar; :meth:`scores` returns it with the documented
    shapes whatever the number of volumes and structures.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)
        self.num_structures = 1 if num_classes == 2 else num_classes
        self.add_state("volume_ids", default=[], dist_reduce_fx="cat")
        self.add_state("slice_ids", default=[], dist_reduce_fx="cat")
        self.add_state("counts", default=[], dist_reduce_fx="cat")

    def update(
        self,
        preds: torch.Tensor,
        target: torch.Tensor,
        volume_ids: torch.Tensor,
        slice_ids: torch.Tensor,
    ) -> None:
        """Add a batch of slices: masks ``(B, H, W)``, volume and slice ids ``(B,)``."""
        if not len(volume_ids) == len(slice_ids) == len(preds):
            raise ValueError(
                f"{len(preds)} masks but {len(volume_ids)} volume ids and {len(slice_ids)} "
                "slice ids; give one of each per slice"
            )
        self.volume_ids.append(volume_ids.detach().long().reshape(-1))
        self.slice_ids.append(slice_ids.detach().long().reshape(-1))
        self.counts.append(slice_counts(preds.detach(), target.detach(), self.num_classes))

    def compute(self) -> dict[str, torch.Tensor]:
        """Scores of every distinct slice added since the last reset, summed per volume."""
        if isinstance(self.counts, list) and not self.counts:
            k = self.num_structures
            empty = torch.zeros(0, dtype=torch.long, device=self.device)
            return volume_scores(empty, torch.zeros(0, k, 3, dtype=torch.long, device=self.device))
        volume_ids = dim_zero_cat(self.volume_ids)
        slice_ids = dim_zero_cat(self.slice_ids)
        counts = dim_zero_cat(self.counts)
        keep = first_occurrences(slice_ids)
        return volume_scores(volume_ids[keep], counts[keep])

    def scores(self) -> dict[str, torch.Tensor]:
        """:meth:`compute` (synced across processes) with the shapes of
        :func:`~litlab.metrics.functional.volume_scores.volume_scores`: ``(V,)``, ``(V, K)``,
        ``(V, K, 3)`` and ``(K,)``."""
        k = self.num_structures
        shapes = {"volumes": (-1,), "slices": (-1,), "counts": (-1, k, 3), "dice": (-1, k)}
        shapes["iou"] = shapes["dice"]
        return {
            name: value.reshape(shapes.get(name, (k,))) for name, value in self.compute().items()
        }
