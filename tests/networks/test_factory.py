"""The network factory: each task's names resolve, and unknown names list what exists."""

from __future__ import annotations

import pytest
import torch
from litlab.networks.facenet import FaceNet48
from litlab.networks.factory import (
    create_classifier,
    create_embedding_net,
    create_segmenter,
    segmentation_architectures,
)
from litlab.networks.resnet_fcn import ResNetFCN
from litlab.networks.timm_embedding import TimmEmbeddingNet


def test_classifier_with_the_fer48_stem_maps_48px_gray_to_logits() -> None:
    net = create_classifier("resnet18", num_classes=7, in_chans=1, stem="fer48")
    assert net.conv1.kernel_size == (3, 3) and isinstance(net.maxpool, torch.nn.Identity)
    assert net(torch.randn(2, 1, 48, 48)).shape == (2, 7)


def test_unknown_classifier_name_lists_close_timm_names() -> None:
    with pytest.raises(ValueError, match="unknown timm backbone 'resnet5O'") as err:
        create_classifier("resnet5O", num_classes=2)
    assert "'resnet50'" in str(err.value) and "timm.list_models()" in str(err.value)
    with pytest.raises(ValueError, match=r"stem must be one of \('standard', 'fer48'\)"):
        create_classifier("resnet18", num_classes=2, stem="tiny")


def test_embedding_names_resolve_to_facenet_or_a_timm_trunk() -> None:
    assert isinstance(create_embedding_net("facenet", 1, 64), FaceNet48)
    net = create_embedding_net("resnet18", 1, 32)
    assert isinstance(net, TimmEmbeddingNet)
    out = net.eval()(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 32)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match=r"unknown trunk 'facenett'; use 'facenet'"):
        create_embedding_net("facenett", 1, 32)


def test_segmenter_names_and_their_errors() -> None:
    assert isinstance(create_segmenter("resnetfcn", "resnet18"), ResNetFCN)  # case-insensitive
    names = segmentation_architectures()
    assert {"DeepLabV3Plus", "Unet", "FPN", "ResNetFCN"} <= set(names)
    with pytest.raises(ValueError, match="unknown segmentation arch 'DeepLabV4'") as err:
        create_segmenter("DeepLabV4")
    assert all(name in str(err.value) for name in names)
    with pytest.raises(ValueError, match=r"unknown encoder 'resnet3x' for ResNetFCN.*'resnet34'"):
        create_segmenter("ResNetFCN", "resnet3x")
    with pytest.raises(ValueError, match="encoder_weights None or 'imagenet', got 'ssl'"):
        create_segmenter("ResNetFCN", "resnet18", encoder_weights="ssl")
    with pytest.raises(ValueError, match=r"^Unet: .*resnet34"):
        create_segmenter("Unet", "nope")
