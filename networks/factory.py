"""The network factory: each task's network built from names; an unknown name lists what exists.

One entry per task, each resolving a name against what litlab writes by hand first and the
library that covers the task second:

- :func:`create_classifier`: any timm model, optionally with the 48-px stem and pretrained weights;
- :func:`create_embedding_net`: ``"facenet"`` (:class:`FaceNet48`) or any timm trunk;
- :func:`create_segmenter`: ``"ResNetFCN"`` or any segmentation_models_pytorch architecture.
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
from litlab.networks.facenet import FaceNet48
from litlab.networks.pretrained import load_pretrained
from litlab.networks.resnet_fcn import ResNetFCN
from litlab.networks.stems import STEMS, adapt_stem_fer48
from litlab.networks.timm_embedding import TimmEmbeddingNet
from litlab.networks.timm_lookup import create_timm_model
from torch import nn

FACENET = "facenet"
"""Trunk name of the triplet paper's 48-px Inception network."""
RESNET_FCN = "ResNetFCN"
"""Arch name of the liver paper's plain ResNet baseline (our FCN-32s reading, see ``ResNetFCN``)."""


def create_classifier(
    backbone: str,
    num_classes: int,
    in_chans: int = 1,
    stem: str = "standard",
    pretrained: bool | str = False,
) -> nn.Module:
    """A timm classifier, optionally with the FER2013 48-px stem and pretrained weights.

    Args:
        backbone: Any ``timm.create_model`` name.
        num_classes: Output classes.
        in_chans: Input channels.
        stem: ``"standard"`` or ``"fer48"`` (see :func:`adapt_stem_fer48`).
        pretrained: ``False``, ``True`` (the backbone's timm hub weights), a timm hub tag or a
            local weights file (see :func:`load_pretrained`).

    Returns:
        A module mapping ``(B, in_chans, H, W)`` to logits ``(B, num_classes)``.

    Raises:
        ValueError: Unknown stem or backbone (listing similar timm names).
    """
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
    net = create_timm_model(
        backbone, f"timm backbone {backbone!r}", num_classes=num_classes, in_chans=in_chans
    )
    if stem == "fer48":
        adapt_stem_fer48(net, in_chans)
    if pretrained:
        load_pretrained(net, backbone if pretrained is True else str(pretrained))
    return net


def create_embedding_net(trunk: str, in_chans: int, embedding_dim: int) -> nn.Module:
    """``"facenet"`` -> :class:`FaceNet48`; any other name -> :class:`TimmEmbeddingNet`.

    Returns:
        A module mapping ``(B, in_chans, H, W)`` to unit-norm embeddings ``(B, embedding_dim)``.

    Raises:
        ValueError: ``trunk`` is neither ``"facenet"`` nor a timm model.
    """
    if trunk == FACENET:
        return FaceNet48(embedding_dim=embedding_dim, in_chans=in_chans)
    return TimmEmbeddingNet(trunk, in_chans, embedding_dim)


def segmentation_architectures() -> list[str]:
    """Every arch name :func:`create_segmenter` accepts (matched case-insensitively)."""
    return sorted([cls.__name__ for cls in smp.MODEL_ARCHITECTURES_MAPPING.values()] + [RESNET_FCN])


def create_segmenter(
    arch: str,
    encoder_name: str = "resnet34",
    encoder_weights: str | None = None,
    in_channels: int = 1,
    classes: int = 2,
) -> nn.Module:
    """Build a segmentation network by name.

    Args:
        arch: An smp architecture (``"DeepLabV3Plus"``, ``"Unet"``, ...) or ``"ResNetFCN"``.
        encoder_name: smp encoder name (timm name for ``ResNetFCN``).
        encoder_weights: ``None`` for random init, or e.g. ``"imagenet"`` (needs the weights
            available offline or the network).
        in_channels: Input channels.
        classes: Output classes.

    Returns:
        A module mapping ``(B, in_channels, H, W)`` to logits ``(B, classes, H, W)``.

    Raises:
        ValueError: Unknown arch or encoder, listing what exists.
    """
    if arch.lower() == RESNET_FCN.lower():
        if encoder_weights not in (None, "imagenet"):
            raise ValueError(
                f"ResNetFCN supports encoder_weights None or 'imagenet', got {encoder_weights!r}"
            )
        return ResNetFCN(encoder_name, in_channels, classes, pretrained=encoder_weights is not None)
    if arch.lower() not in smp.MODEL_ARCHITECTURES_MAPPING:
        raise ValueError(
            f"unknown segmentation arch {arch!r}; choose one of "
            f"{', '.join(segmentation_architectures())}"
        )
    try:
        return smp.create_model(
            arch,
            encoder_name=encoder_name,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=classes,
        )
    except KeyError as err:
        # smp reports a bad encoder name as a KeyError whose text lists the valid encoders.
        raise ValueError(f"{arch}: {err.args[0]}") from err
