"""Batched augmentation: torchvision's transform per image, the same ranges, masks moved alike."""

from __future__ import annotations

import types

import pytest
import torch
from litlab.datamodules.batch_augment import BatchPaperAugmentation, resample
from litlab.datamodules.fer2013 import FER2013DataModule
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF


def _torchvision(x: torch.Tensor, params, i: int) -> torch.Tensor:
    out = TF.affine(
        x,
        angle=float(params.angle[i]),
        translate=[float(v) for v in params.translate[i]],
        scale=float(params.scale[i]),
        shear=[float(v) for v in params.shear[i]],
    )
    return TF.horizontal_flip(out) if params.flip[i] else out


def test_each_image_is_torchvisions_affine_and_flip_of_its_parameters():
    torch.manual_seed(0)
    aug = BatchPaperAugmentation()
    images = torch.randint(0, 256, (32, 3, 40, 48), dtype=torch.uint8)
    masks = torch.randint(0, 3, (32, 40, 48))
    params = aug.sample(32, 40, 48)
    grid = aug.grid(params, 40, 48)
    out, out_masks = resample(images, grid), resample(masks, grid)
    assert out.dtype == torch.uint8 and out_masks.dtype == masks.dtype
    for i in range(32):
        assert torch.equal(out[i], _torchvision(images[i], params, i))
        assert torch.equal(out_masks[i], _torchvision(tv_tensors.Mask(masks[i]), params, i))


def test_parameters_cover_the_per_sample_ranges():
    torch.manual_seed(1)
    batch = BatchPaperAugmentation().sample(20_000, 48, 48)
    affine = v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10)
    image = torch.zeros(1, 48, 48)
    draws = [affine.make_params([image]) for _ in range(3000)]
    per_sample = {
        "angle": torch.tensor([d["angle"] for d in draws]),
        "tx": torch.tensor([float(d["translate"][0]) for d in draws]),
        "ty": torch.tensor([float(d["translate"][1]) for d in draws]),
        "scale": torch.tensor([d["scale"] for d in draws]),
        "shear_x": torch.tensor([d["shear"][0] for d in draws]),
        "shear_y": torch.tensor([d["shear"][1] for d in draws]),
    }
    batched = {
        "angle": batch.angle,
        "tx": batch.translate[:, 0],
        "ty": batch.translate[:, 1],
        "scale": batch.scale,
        "shear_x": batch.shear[:, 0],
        "shear_y": batch.shear[:, 1],
    }
    for name, ref in per_sample.items():
        got = batched[name]
        width = float(ref.max() - ref.min())
        assert got.min() >= ref.min() - 0.01 * width - 1e-6, name
        assert got.max() <= ref.max() + 0.01 * width + 1e-6, name
        assert got.min() <= ref.min() + 0.02 * width + 1e-6, name  # the ends are reached
        assert got.max() >= ref.max() - 0.02 * width - 1e-6, name
        assert abs(float(got.mean() - ref.mean())) <= 0.05 * width + 1e-6, name
    assert set(batch.translate.unique().tolist()) == set(per_sample["tx"].unique().tolist())
    assert 0.47 < batch.flip.float().mean() < 0.53


def test_masks_get_the_same_transform_as_their_images():
    torch.manual_seed(2)
    masks = torch.randint(0, 4, (16, 64, 64))
    images = (masks * 60).to(torch.uint8)[:, None].repeat(1, 3, 1, 1)  # image encodes its mask
    out, out_masks = BatchPaperAugmentation()(images, masks)
    assert not torch.equal(out_masks, masks)  # something moved
    assert torch.equal(out[:, 0], (out_masks * 60).to(torch.uint8))
    assert torch.equal(out[:, 2], out[:, 0])


def _batch_module(tmp_path, monkeypatch, augment_on: str) -> FER2013DataModule:
    monkeypatch.setenv("LITLAB_CACHE", str(tmp_path))
    dm = FER2013DataModule(synthetic_rows=120, batch_size=8, num_workers=0, augment_on=augment_on)
    dm.setup("fit")
    return dm


def test_loaders_move_uint8_and_the_module_augments_after_transfer(tmp_path, monkeypatch):
    dm = _batch_module(tmp_path, monkeypatch, "batch")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (8, 1, 48, 48)
    dm.trainer = types.SimpleNamespace(training=True)
    torch.manual_seed(3)
    x, y = dm.on_after_batch_transfer((images, labels), 0)
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1 and torch.equal(y, labels)
    plain = images.float() / 127.5 - 1
    assert not torch.allclose(x, plain)  # augmented
    dm.trainer = types.SimpleNamespace(training=False)
    x_eval, _ = dm.on_after_batch_transfer((images, labels), 0)
    sample_dm = _batch_module(tmp_path, monkeypatch, "sample")
    eval_images, _ = next(iter(sample_dm.val_dataloader()))
    val_uint8, _ = next(iter(dm.val_dataloader()))
    x_val, _ = dm.on_after_batch_transfer((val_uint8, labels), 0)
    torch.testing.assert_close(x_val, eval_images)  # evaluation inputs are the same either way
    torch.testing.assert_close(x_eval, plain)


def test_unknown_augment_on_names_the_option():
    with pytest.raises(ValueError, match="--data.augment_on"):
        FER2013DataModule(augment_on="gpu")
