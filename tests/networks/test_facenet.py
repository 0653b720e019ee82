"""FaceNet48: the paper's layer table, unit-norm embeddings, gradients reach the stem."""

from __future__ import annotations

import pytest
import torch
from litlab.networks.facenet import FaceNet48, Inception
from torch import nn


@pytest.mark.parametrize("dim", [128, 512])
def test_maps_gray_48px_to_unit_norm_embeddings(dim: int) -> None:
    net = FaceNet48(embedding_dim=dim).eval()
    with torch.no_grad():
        out = net(torch.randn(3, 1, 48, 48))
    assert out.shape == (3, dim)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))


def test_layer_table_of_the_paper() -> None:
    net = FaceNet48()
    stem_conv = net.stem[0][0]
    assert isinstance(stem_conv, nn.Conv2d)
    assert (stem_conv.in_channels, stem_conv.out_channels) == (1, 64)
    assert stem_conv.kernel_size == (7, 7) and stem_conv.stride == (2, 2)
    assert stem_conv.padding == (3, 3)
    assert isinstance(net.stem[0][1], nn.BatchNorm2d) and isinstance(net.stem[0][2], nn.ReLU)
    pool = net.stem[1]
    assert isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 3 and pool.stride == 2
    modules = [m for m in net.modules() if isinstance(m, Inception)]
    assert len(modules) >= 2
    kernels = {c.kernel_size for c in modules[0].modules() if isinstance(c, nn.Conv2d)}
    assert kernels == {(1, 1), (3, 3), (5, 5)}
    assert isinstance(modules[0].branch_pool[0], nn.MaxPool2d)
    # every conv is followed by batch norm
    convs = sum(isinstance(m, nn.Conv2d) for m in net.modules())
    assert convs == sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_inception_concatenates_branches() -> None:
    block = Inception(8, 4, 2, 6, 2, 3, 5)
    assert block(torch.randn(2, 8, 12, 12)).shape == (2, 4 + 6 + 3 + 5, 12, 12)


def test_forward_features_spatial_size_and_gradients() -> None:
    net = FaceNet48(in_chans=3)
    x = torch.randn(2, 3, 48, 48)
    assert net.forward_features(x).shape == (2, net.num_features, 3, 3)
    net(x).sum().backward()
    assert net.stem[0][0].weight.grad is not None
    assert net.stem[0][0].weight.grad.abs().sum() > 0


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match="embedding_dim"):
        FaceNet48(embedding_dim=0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        FaceNet48()(torch.randn(1, 48, 48))
