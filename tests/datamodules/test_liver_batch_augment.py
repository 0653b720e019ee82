"""Liver slices augmented per batch: the per-slice ranges, masks on their images' grid."""

from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F
from litlab.datamodules.batch_augment import BatchPaperAugmentation, resample
from litlab.datamodules.liver import LiverDataModule
from torchvision.transforms import v2

SIZE = 32


@pytest.fixture
def dms(tmp_path, monkeypatch) -> dict[str, LiverDataModule]:
    """The same generated patients, augmented per slice and per batch."""
    monkeypatch.setenv("LITLAB_CACHE", str(tmp_path))
    out = {}
    for how in ("sample", "batch"):
        dm = LiverDataModule(
            image_size=SIZE, num_workers=0, batch_size=6, synthetic_patients=6,
            synthetic_slices=4, synthetic_size=48, empty_slice_fraction=1.0, augment_on=how,
            rotation_degrees=20.0, shift_fraction=0.15, hflip_p=0.3,
        )  # fmt: skip
        dm.setup("fit")
        out[how] = dm
    return out


def test_batched_draws_cover_the_per_slice_ranges(dms):
    ranges = dms["batch"].augment_ranges()
    assert (ranges.rotation, ranges.shift, ranges.hflip_p) == (20.0, 0.15, 0.3)
    torch.manual_seed(0)
    batch = BatchPaperAugmentation(ranges).sample(20_000, SIZE, SIZE)
    affine = v2.RandomAffine(degrees=20.0, translate=(0.15, 0.15))  # the per-slice transform's
    draws = [affine.make_params([torch.zeros(1, SIZE, SIZE)]) for _ in range(3000)]
    angle = torch.tensor([d["angle"] for d in draws])
    tx = torch.tensor([float(d["translate"][0]) for d in draws])
    assert angle.min() >= -20 and angle.max() <= 20
    assert batch.angle.min() >= -20 and batch.angle.max() <= 20
    assert batch.angle.min() < -19.5 and batch.angle.max() > 19.5  # the ends are reached
    assert set(batch.translate.unique().tolist()) == set(tx.unique().tolist())
    assert torch.all(batch.scale == 1) and torch.all(batch.shear == 0)  # liver: no zoom, shear
    assert 0.28 < batch.flip.float().mean() < 0.32


def _trained(dm: LiverDataModule, batch, training: bool):
    dm.trainer = types.SimpleNamespace(training=training)
    return dm.on_after_batch_transfer(batch, 0)


def test_loaders_move_uint8_and_serve_what_the_per_slice_path_serves(dms):
    plain, raw = (
        next(iter(dms["sample"].val_dataloader())),
        next(iter(dms["batch"].val_dataloader())),
    )
    assert raw[0].dtype == torch.uint8 and raw[0].shape[1:] == (1, SIZE, SIZE)
    images, masks, meta = _trained(dms["batch"], raw, training=False)
    assert images.dtype == torch.float32 and images.min() >= 0 and images.max() <= 1
    torch.testing.assert_close(images, plain[0], rtol=0, atol=1e-6)
    assert torch.equal(masks, plain[1]) and torch.equal(meta["slice"], plain[2]["slice"])


def test_training_batches_move_image_and_mask_on_one_grid(dms):
    dm = dms["batch"]
    raw = next(iter(dm.train_dataloader()))
    b = len(raw[0])
    # Blocky labels drawn into the image: after the warp, the image still encodes its mask.
    masks = F.interpolate(torch.randint(0, 2, (b, 1, 4, 4)).float(), size=(SIZE, SIZE))[:, 0]
    masks = masks.long()
    images = (masks * 200)[:, None].to(torch.uint8)
    torch.manual_seed(5)
    out, out_masks, _ = _trained(dm, [images, masks, raw[2]], training=True)
    assert out.dtype == torch.float32 and out_masks.dtype == torch.int64
    assert out.min() >= 0 and out.max() <= 200 / 255 + 1e-6
    assert set(out_masks.unique().tolist()) <= {0, 1}
    assert not torch.equal(out_masks, masks)  # something moved
    # Where the warped mask is uniform around a pixel, bilinear sampling reads the same label.
    pooled = F.max_pool2d(out_masks[:, None].float(), 5, 1, 2)[:, 0]
    uniform = pooled == -F.max_pool2d(-out_masks[:, None].float(), 5, 1, 2)[:, 0]
    assert uniform.float().mean() > 0.5
    torch.testing.assert_close(out[:, 0][uniform], out_masks[uniform] * 200 / 255)
    # The same draw, replayed: images bilinear and masks nearest on one grid.
    torch.manual_seed(5)
    aug = BatchPaperAugmentation(dm.augment_ranges(), image_mode="bilinear")
    grid = aug.grid(aug.sample(b, SIZE, SIZE), SIZE, SIZE)
    assert torch.equal(out_masks, resample(masks, grid))
    torch.testing.assert_close(out, resample(images.float() / 255, grid, "bilinear"))


def test_unknown_augment_on_is_named():
    with pytest.raises(ValueError, match="augment_on"):
        LiverDataModule(augment_on="gpu")
