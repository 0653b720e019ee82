"""Which slices an epoch's overlay figure shows: the most telling slice of each of the first volumes.

The first batch of a validation or test epoch is a poor sample when every slice of a scan is
evaluated: it is the bottom of the first scan, usually without any liver. :class:`OverlaySelection`
is offered every batch and keeps, for each of the first ``max_rows`` volumes it meets, the slice
with the most foreground in the truth (the prediction's when the truth is empty throughout), on
the CPU. Batches without volume ids count every slice as its own volume, so the first
``max_rows`` slices are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class _Pick:
    area: int
    image: torch.Tensor
    target: torch.Tensor
    pred: torch.Tensor
    label: str


class OverlaySelection:
    """Keeps at most ``max_rows`` slices, one per volume, for an overlay figure.

    Args:
        max_rows: Volumes (rows) kept; 0 keeps nothing.
    """

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._picks: dict[object, _Pick] = {}
        self._seen = 0

    def offer(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        preds: torch.Tensor,
        meta: dict | None = None,
    ) -> None:
        """Consider a batch: images ``(B, C, H, W)``, masks ``(B, H, W)``, optional
        ``meta = {"volume": (B,), "slice": (B,), "patient": [B names]}``."""
        if self.max_rows <= 0:
            return
        truth = (targets > 0).flatten(1).sum(1).tolist()
        predicted = (preds > 0).flatten(1).sum(1).tolist()
        for i in range(len(images)):
            if meta is not None and "volume" in meta:
                key: object = int(meta["volume"][i])
                name = meta["patient"][i] if "patient" in meta else f"volume {key}"
                label = f"{name}, slice {int(meta['slice'][i])}" if "slice" in meta else name
            else:
                key, label = ("slice", self._seen + i), f"sample {self._seen + i}"
            if key not in self._picks and len(self._picks) >= self.max_rows:
                continue
            # truth area first; among empty truths, a false positive is worth showing
            area = truth[i] * (images.shape[-1] * images.shape[-2] + 1) + predicted[i]
            held = self._picks.get(key)
            if held is None or area > held.area:
                self._picks[key] = _Pick(
                    area,
                    images[i].detach().float().cpu(),
                    targets[i].detach().cpu(),
                    preds[i].detach().cpu(),
                    label,
                )
        self._seen += len(images)

    def __len__(self) -> int:
        return len(self._picks)

    def take(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]] | None:
        """The kept slices as ``(images, targets, preds, row labels)``, then forget them;
        ``None`` when nothing was kept."""
        picks = list(self._picks.values())
        self._picks, self._seen = {}, 0
        if not picks:
            return None
        return (
            torch.stack([p.image for p in picks]),
            torch.stack([p.target for p in picks]),
            torch.stack([p.pred for p in picks]),
            [p.label for p in picks],
        )
