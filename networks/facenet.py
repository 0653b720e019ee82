"""FaceNet-style Inception embedding network sized for 48x48 gray faces.

The layer list follows the triplet-loss expression paper (its Table 5 and layer algorithm): a 7x7/64
stride-2 convolution (padding 3), 3x3/2 max-pooling, batch norm + ReLU after every convolution,
Inception modules whose 1x1 / 3x3 / 5x5 / pool-projection branches are concatenated, pooling, a
fully connected layer to the embedding and L2 normalisation. The paper gives no widths for the
Inception modules, so they are GoogLeNet's (3a, 3b, 4a, 5a), the same modules FaceNet's NN2 uses;
with a 48-px input only three spatial scales are left (12 -> 6 -> 3 px), so the 4b-4e and 5b
modules are dropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from litlab.checks import check_at_least


class ConvBNReLU(nn.Sequential):
    """``Conv2d -> BatchNorm2d -> ReLU``; the conv has no bias because batch norm supplies one."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int | None = None
    ) -> None:
        pad = kernel_size // 2 if padding is None else padding
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=pad, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class Inception(nn.Module):
    """Four parallel branches concatenated on channels (spatial size is kept).

    Args:
        in_ch: Input channels.
        c1: 1x1 branch output channels.
        c3_reduce: 1x1 reduction before the 3x3 conv.
        c3: 3x3 branch output channels.
        c5_reduce: 1x1 reduction before the 5x5 conv.
        c5: 5x5 branch output channels.
        pool_proj: 1x1 projection after the 3x3 max-pool.

    Shape:
        ``(B, in_ch, H, W) -> (B, c1 + c3 + c5 + pool_proj, H, W)``
    """

    def __init__(
        self, in_ch: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, pool_proj: int
    ) -> None:
        super().__init__()
        self.branch1 = ConvBNReLU(in_ch, c1, 1)
        self.branch3 = nn.Sequential(ConvBNReLU(in_ch, c3_reduce, 1), ConvBNReLU(c3_reduce, c3, 3))
        self.branch5 = nn.Sequential(ConvBNReLU(in_ch, c5_reduce, 1), ConvBNReLU(c5_reduce, c5, 5))
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), ConvBNReLU(in_ch, pool_proj, 1)
        )
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1, self.branch3, self.branch5, self.branch_pool)
        return torch.cat([b(x) for b in branches], dim=1)


class FaceNet48(nn.Module):
    """Inception trunk + FC embedding head with L2-normalised output.

    Args:
        embedding_dim: Size of the embedding (the paper uses 128 or 512).
        in_chans: Input channels (1 for gray faces).
        dropout: Dropout before the FC layer (0 disables it).

    Shape:
        ``(B, in_chans, H, W) -> (B, embedding_dim)`` with unit L2 norm per row. Any ``H, W >= 32``
        works because the trunk ends in global average pooling; the widths are chosen for 48.
    """

    def __init__(self, embedding_dim: int = 128, in_chans: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        check_at_least("embedding_dim", embedding_dim, 1)
        check_at_least("in_chans", in_chans, 1)
        self.embedding_dim = embedding_dim
        self.stem = nn.Sequential(
            ConvBNReLU(in_chans, 64, 7, stride=2, padding=3),  # 48 -> 24
            nn.MaxPool2d(3, stride=2, padding=1),  # 24 -> 12
            ConvBNReLU(64, 64, 1),
            ConvBNReLU(64, 192, 3),
        )
        inc3a = Inception(192, 64, 96, 128, 16, 32, 32)  # 256
        inc3b = Inception(inc3a.out_channels, 128, 128, 192, 32, 96, 64)  # 480
        inc4a = Inception(inc3b.out_channels, 192, 96, 208, 16, 48, 64)  # 512
        inc5a = Inception(inc4a.out_channels, 256, 160, 320, 32, 128, 128)  # 832
        self.inception = nn.Sequential(
            inc3a,
            inc3b,
            nn.MaxPool2d(3, stride=2, padding=1),  # 12 -> 6
            inc4a,
            nn.MaxPool2d(3, stride=2, padding=1),  # 6 -> 3
            inc5a,
        )
        self.num_features = inc5a.out_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(self.num_features, embedding_dim)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, num_features, H/16, W/16)`` feature map."""
        return self.inception(self.stem(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Pool, FC and L2-normalise: ``(B, num_features, h, w) -> (B, embedding_dim)``."""
        pooled = self.pool(features).flatten(1)
        return F.normalize(self.fc(self.dropout(pooled)), p=2, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        return self.forward_head(self.forward_features(x))
