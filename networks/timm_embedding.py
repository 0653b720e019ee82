"""An embedding network on any timm trunk: pooled features, a linear layer, L2 normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from litlab.networks.timm_lookup import create_timm_model
from torch import nn


class TimmEmbeddingNet(nn.Module):
    """A timm trunk (``num_classes=0``, pooled features) + FC + L2 norm.

    Args:
        name: A timm model name.
        in_chans: Input channels.
        embedding_dim: Embedding size.

    Shape:
        ``(B, in_chans, H, W) -> (B, embedding_dim)`` with unit L2 norm per row.

    Raises:
        ValueError: ``name`` is not a timm model (the message lists similar names).
    """

    def __init__(self, name: str, in_chans: int, embedding_dim: int) -> None:
        super().__init__()
        self.trunk = create_timm_model(
            name,
            f"trunk {name!r}",
            hint="'facenet' or a timm model name such as 'resnet18'",
            num_classes=0,
            in_chans=in_chans,
        )
        self.fc = nn.Linear(self.trunk.num_features, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(self.trunk(x)), p=2, dim=1)
