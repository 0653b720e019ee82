"""The liver paper's plain "ResNet" segmentation baseline, as we read it.

The paper compares DeepLabV3Plus against a "standard ResNet" but never says how a classification
ResNet was turned into a segmenter. We use the simplest reading that produces a mask: an FCN-32s
style net (Long et al., 2015) -- a ResNet trunk without its pooling and fully connected head, a
1x1 convolution that scores each class on the stride-32 feature map, and bilinear upsampling back
to the input size. No skip connections and no decoder, which is what separates it from DeepLabV3+.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from litlab.networks.timm_lookup import create_timm_model
from torch import nn

from litlab.checks import check_at_least


class ResNetFCN(nn.Module):
    """ResNet trunk + 1x1 classifier + bilinear upsampling to the input size (FCN-32s style).

    This is our reading of the liver paper's unspecified "ResNet" baseline (see the module
    docstring); it is not the paper's exact network, which the paper does not describe.

    Args:
        encoder_name: A timm CNN name whose ``forward_features`` returns a feature map,
            ``"resnet34"`` by default to match the DeepLabV3Plus encoder.
        in_channels: Input channels (1 for CT slices).
        classes: Number of output classes (2 = background, liver).
        pretrained: Load the trunk's timm ImageNet weights (needs the network or a timm cache).

    Shape:
        - input: ``(B, in_channels, H, W)``, any ``H, W`` of at least 32.
        - output: ``(B, classes, H, W)`` logits.

    Raises:
        ValueError: If ``encoder_name`` is not a timm model or ``classes < 1``.
    """

    def __init__(
        self,
        encoder_name: str = "resnet34",
        in_channels: int = 1,
        classes: int = 2,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        check_at_least("classes", classes, 1)
        # num_classes=0 + global_pool="" leaves the stride-32 feature map untouched.
        self.trunk = create_timm_model(
            encoder_name,
            f"encoder {encoder_name!r} for ResNetFCN",
            hint="a timm CNN name such as 'resnet18', 'resnet34' or 'resnet50'",
            pretrained=pretrained,
            in_chans=in_channels,
            num_classes=0,
            global_pool="",
        )
        self.classifier = nn.Conv2d(self.trunk.num_features, classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score every pixel.

        Args:
            x: Images ``(B, C, H, W)``.

        Returns:
            Logits ``(B, classes, H, W)``.
        """
        features = self.trunk.forward_features(x)  # (B, F, H/32, W/32)
        logits = self.classifier(features)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
