"""Classifier heads: which keys they hold, and freezing everything else."""

from __future__ import annotations

import timm
import torch
from litlab.networks.heads import head_keys, set_backbone_trainable


def _resnet(in_chans: int = 1, num_classes: int = 7, seed: int = 0, name: str = "resnet18"):
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=num_classes)


def test_freeze_and_unfreeze_backbone() -> None:
    model = _resnet()
    assert head_keys(model) == {"fc.weight", "fc.bias"}
    changed = set_backbone_trainable(model, False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"} and changed == len(list(model.parameters())) - 2
    set_backbone_trainable(model, True)
    assert all(p.requires_grad for p in model.parameters())
