"""SegmentationModule: the paper's network size, losses, epoch-level metrics, overlays."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import yaml
from litlab.lightning_modules.segmentation import (
    SegmentationModule,
    build_loss,
)
from litlab.networks.factory import segmentation_architectures
from torch.utils.data import DataLoader, TensorDataset

PRESETS = Path(__file__).resolve().parents[2] / "litlab" / "presets"
# A small timm encoder through smp's "tu-" bridge keeps the training tests fast on 2 CPU cores.
SMALL = {"arch": "Unet", "encoder_name": "tu-resnet10t"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared 2-core machine, 2 threads per process thrash (10x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _preset_model_args(name: str) -> dict:
    config = yaml.safe_load((PRESETS / f"{name}.yaml").read_text())
    model = config["model"]
    assert model["class_path"] == "litlab.lightning_modules.segmentation.SegmentationModule"
    return dict(model.get("init_args", {}))


def _blobs(n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Bright discs on noise: images (n, 1, size, size) in [0, 1], masks (n, size, size)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images, masks = [], []
    for _ in range(n):
        cy, cx = torch.randint(size // 4, 3 * size // 4, (2,), generator=g).tolist()
        r = size // 5
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).long()
        image = 0.2 + 0.6 * mask.float() + 0.1 * torch.rand(size, size, generator=g)
        images.append(image[None])
        masks.append(mask)
    return torch.stack(images), torch.stack(masks)


# --- the paper's network ------------------------------------------------------------------


def test_liver_preset_network_has_the_papers_parameter_count():
    module = SegmentationModule(**_preset_model_args("liver-deeplabv3plus"))
    assert module.hparams.arch == "DeepLabV3Plus"
    assert sum(p.numel() for p in module.parameters()) == 22_431_442
    assert sum(p.numel() for p in module.parameters() if p.requires_grad) == 22_431_442
    module.eval()
    with torch.no_grad():
        assert module(torch.rand(1, 1, 224, 224)).shape == (1, 2, 224, 224)


def test_resnet_baseline_preset_builds_and_takes_any_size():
    args = _preset_model_args("liver-resnet")
    module = SegmentationModule(**args).eval()
    assert module.hparams.arch == "ResNetFCN"
    with torch.no_grad():
        assert module(torch.rand(2, 1, 64, 64)).shape == (2, 2, 64, 64)
        assert module(torch.rand(1, 1, 70, 50)).shape == (1, 2, 70, 50)  # no stride constraint
    # FCN-32s: a ResNet-34 trunk (21,278,400 with a 1-channel stem) plus a 512->2 1x1 classifier.
    assert sum(p.numel() for p in module.parameters()) == 21_278_400 + 512 * 2 + 2


@pytest.mark.parametrize("arch", ["Unet", "fpn"])
def test_forward_shapes_for_smp_architectures(arch):
    module = SegmentationModule(arch=arch, encoder_name="tu-resnet10t", in_channels=3, classes=3)
    module.eval()
    with torch.no_grad():
        assert module(torch.rand(2, 3, 64, 64)).shape == (2, 3, 64, 64)
        preds = module.predict_step(torch.rand(2, 3, 64, 64), 0)
    assert preds.shape == (2, 64, 64) and preds.dtype == torch.int64


# --- errors that say the fix ----------------------------------------------------------------


def test_unknown_arch_lists_what_exists():
    with pytest.raises(ValueError, match="unknown segmentation arch 'DeepLabV4'") as err:
        SegmentationModule(arch="DeepLabV4")
    for name in ("DeepLabV3Plus", "Unet", "ResNetFCN"):
        assert name in str(err.value)
    assert "ResNetFCN" in segmentation_architectures()


def test_unknown_loss_and_encoder_and_classes():
    with pytest.raises(ValueError, match="unknown loss 'focal'.*ce, dice, ce\\+dice"):
        SegmentationModule(arch="Unet", encoder_name="resnet18", loss="focal")
    with pytest.raises(ValueError, match="nope.*resnet34"):
        SegmentationModule(arch="Unet", encoder_name="nope")
    with pytest.raises(ValueError, match="unknown encoder 'nope' for ResNetFCN"):
        SegmentationModule(arch="ResNetFCN", encoder_name="nope")
    with pytest.raises(ValueError, match="classes must be >= 2"):
        SegmentationModule(arch="ResNetFCN", encoder_name="resnet18", classes=1)
    with pytest.raises(ValueError, match="class_names has 3 names"):
        SegmentationModule(arch="ResNetFCN", encoder_name="resnet18", class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        SegmentationModule(arch="ResNetFCN", encoder_name="resnet18", optimizer="lbfgs")


def test_size_not_divisible_names_size_and_fix():
    module = SegmentationModule(arch="DeepLabV3Plus", encoder_name="resnet18").eval()
    with pytest.raises(ValueError, match=r"100x100 is not divisible by 16.*image_size=112"):
        module(torch.rand(1, 1, 100, 100))
    with pytest.raises(ValueError, match=r"expected images \(B, 1, H, W\)"):
        module(torch.rand(1, 3, 64, 64))


def test_mask_values_outside_classes_are_reported():
    module = SegmentationModule(arch="ResNetFCN", encoder_name="resnet18", classes=2)
    images = torch.rand(1, 1, 32, 32)
    masks = torch.zeros(1, 32, 32, dtype=torch.long)
    masks[0, 0, 0] = 255  # a 0/255 PNG mask loaded without mapping
    with pytest.raises(ValueError, match=r"mask values span \[0, 255\] but classes=2"):
        module.model_step((images, masks))
    with pytest.raises(ValueError, match="does not match images"):
        module.model_step((images, torch.zeros(1, 16, 16, dtype=torch.long)))


# --- losses -------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["ce", "dice", "ce+dice"])
def test_each_loss_decreases_when_overfitting(loss):
    torch.manual_seed(0)
    module = SegmentationModule(**SMALL, loss=loss)
    images, masks = _blobs(2, 32)
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(10):
        loss_value, preds, targets = module.model_step((images, masks))
        assert preds.shape == targets.shape == (2, 32, 32)
        opt.zero_grad()
        loss_value.backward()
        opt.step()
        losses.append(loss_value.item())
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses


def test_ce_plus_dice_is_the_sum():
    logits = torch.randn(2, 2, 8, 8)
    target = torch.randint(0, 2, (2, 8, 8))
    total = build_loss("ce+dice")(logits, target)
    assert total == pytest.approx(
        (build_loss("ce")(logits, target) + build_loss("dice")(logits, target)).item()
    )


# --- training loop, overlays, checkpoints --------------------------------------------------


class _TinyMasks(pl.LightningDataModule):
    def __init__(self, size: int = 32) -> None:
        super().__init__()
        self.images, self.masks = _blobs(8, size)

    def _loader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.images, self.masks), batch_size=4)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        return self._loader()


def test_fit_logs_metrics_writes_overlays_and_reloads(tmp_path, cpu_trainer):
    module = SegmentationModule(
        **SMALL,
        class_names=["background", "liver"],
        num_overlays=3,
    )
    trainer = cpu_trainer(
        max_epochs=2,
        default_root_dir=tmp_path,
        callbacks=[pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/loss")],
    )
    data = _TinyMasks()
    trainer.fit(module, datamodule=data)

    logged = trainer.callback_metrics
    for stage in ("train", "val"):
        for name in (
            "loss",
            "miou",
            "pixel_acc",
            "dice",
            "iou_background",
            "iou_liver",
            "dice_liver",
        ):
            assert f"{stage}/{name}" in logged, sorted(logged)
    assert logged["val/miou"] <= logged["val/pixel_acc"] + 1e-6
    assert logged["val/miou_best"] >= logged["val/miou"] - 1e-6

    # One overlay per epoch (none from the sanity check): 3 rows of image | truth | prediction.
    pngs = sorted((tmp_path / "images").glob("val_overlay-epoch*.png"))
    assert [p.name for p in pngs] == ["val_overlay-epoch000.png", "val_overlay-epoch001.png"]
    figure = plt.imread(pngs[0])
    assert figure.shape[:2] == (790, 750)  # 3 rows of 2.5 in + a title, 3 columns, 100 dpi

    best = trainer.checkpoint_callback.best_model_path
    reloaded = SegmentationModule.load_from_checkpoint(best)
    assert reloaded.hparams.class_names == ["background", "liver"]
    results = trainer.test(reloaded, datamodule=data, verbose=False)[0]
    assert {"test/loss", "test/miou", "test/pixel_acc", "test/dice", "test/iou_liver"} <= set(
        results
    )
    assert results["test/miou"] <= results["test/pixel_acc"] + 1e-6


class _TinyVolumes(pl.LightningDataModule):
    """8 blob slices of 3 volumes; batches carry ``meta`` as the liver data does."""

    volumes = [0, 0, 0, 1, 1, 2, 2, 2]

    def __init__(self) -> None:
        super().__init__()
        self.images, self.masks = _blobs(8, 32, seed=1)

    def test_dataloader(self) -> DataLoader:
        items = [
            (self.images[i], self.masks[i], {"volume": v, "slice": i, "patient": f"case{v}"})
            for i, v in enumerate(self.volumes)
        ]
        return DataLoader(items, batch_size=3)


def test_test_scores_each_volume_whole(tmp_path):
    torch.manual_seed(0)
    module = SegmentationModule(**SMALL, num_overlays=2)
    trainer = pl.Trainer(
        accelerator="cpu", default_root_dir=tmp_path, logger=False, enable_progress_bar=False
    )
    data = _TinyVolumes()
    results = trainer.test(module, datamodule=data, verbose=False)[0]

    module.eval()
    with torch.no_grad():
        preds = module(data.images).argmax(1).numpy()
    truth = data.masks.numpy()
    dice = []
    for v in (0, 1, 2):  # 3-D Dice by hand: pool the voxels of each volume's slices
        rows = [i for i, w in enumerate(data.volumes) if w == v]
        p, t = preds[rows] == 1, truth[rows] == 1
        dice.append(2 * (p & t).sum() / (p.sum() + t.sum()))
    assert results["test/dice_volume"] == pytest.approx(np.mean(dice), abs=1e-5)
    assert results["test/dice_volume_std"] == pytest.approx(np.std(dice, ddof=1), abs=1e-5)
    p, t = preds == 1, truth == 1
    assert results["test/dice_global"] == pytest.approx(2 * (p & t).sum() / (p.sum() + t.sum()))
    figure = plt.imread(tmp_path / "images" / "test_overlay-epoch000.png")
    assert figure.shape[:2] == (540, 750)  # one row per volume, 2 volumes kept
