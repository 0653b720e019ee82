"""The FER2013 paper's "modified" ResNet stem for 48x48 faces."""

from __future__ import annotations

from torch import nn

STEMS = ("standard", "fer48")
"""Stem names: ``standard`` keeps timm's stem, ``fer48`` applies :func:`adapt_stem_fer48`."""


def adapt_stem_fer48(net: nn.Module, in_chans: int) -> None:
    """Make a timm ResNet suit 48x48 input: the FER2013 paper's "modified" ResNet-50.

    The standard stem (7x7 stride-2 conv, then 3x3 stride-2 max-pool) shrinks 48 px to 12 px
    before the first residual stage, and to 2x2 at the last. Here the stem is one 3x3 stride-1
    conv with 64 filters (+ the existing BN/ReLU) and no max-pool, so the stages see 48, 24,
    12 and 6 px: the usual CIFAR-style adaptation. The residual stages are unchanged.

    Raises:
        ValueError: ``net`` is not a ResNet-family timm model (no ``conv1`` / ``maxpool``).
    """
    conv1 = getattr(net, "conv1", None)
    if not isinstance(conv1, nn.Conv2d) or not hasattr(net, "maxpool"):
        raise ValueError(
            f"stem='fer48' needs a timm ResNet-family backbone (with conv1 and maxpool), got "
            f"{type(net).__name__}; use stem='standard' for other backbones"
        )
    net.conv1 = nn.Conv2d(in_chans, conv1.out_channels, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
