"""Semantic segmentation: any segmentation_models_pytorch architecture, or the liver paper's ResNet baseline.

IoU, Dice and pixel accuracy are pooled over the whole epoch, one pixel confusion matrix per
stage (:class:`litlab.metrics.segmentation_scores.SegmentationScores`;
:mod:`litlab.metrics.functional.segmentation_scores` says why not per image).

Batches may carry a third element, ``meta = {"volume": (B,), "slice": (B,), ...}``, saying which
volume (scan) and which dataset slice each image is. Then the test also scores every volume whole
(3-D Dice and IoU, :class:`litlab.metrics.volume_scores.VolumeScores`), and the overlay figures
show one slice per volume.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import lightning.pytorch as pl
import segmentation_models_pytorch as smp
import torch
from litlab.metrics import log_keys
from litlab.metrics.segmentation_scores import SegmentationScores
from litlab.metrics.volume_scores import VolumeScores
from litlab.networks.factory import create_segmenter
from litlab.optim.factory import OPTIMIZERS, SCHEDULERS, configure
from litlab.plots.overlay_selection import OverlaySelection
from litlab.plots.run_images import log_image
from litlab.plots.segmentation_overlay import overlay_figure
from torch import nn
from torchmetrics import MaxMetric

log = logging.getLogger(__name__)

LOSSES = ("ce", "dice", "ce+dice")


class _SumLoss(nn.Module):
    """Sum of several ``(logits, target) -> scalar`` losses, equally weighted."""

    def __init__(self, *losses: nn.Module) -> None:
        super().__init__()
        self.losses = nn.ModuleList(losses)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(loss(logits, target) for loss in self.losses)


def build_loss(name: str) -> nn.Module:
    """Build a multiclass segmentation loss taking logits ``(B, C, H, W)`` and a mask ``(B, H, W)``.

    Args:
        name: ``"ce"`` (cross-entropy), ``"dice"`` (smp soft Dice over all classes) or
            ``"ce+dice"`` (their sum).

    Raises:
        ValueError: Unknown name.
    """
    key = name.lower().replace(" ", "")
    if key == "ce":
        return nn.CrossEntropyLoss()
    if key == "dice":
        return smp.losses.DiceLoss(mode="multiclass", from_logits=True)
    if key == "ce+dice":
        return _SumLoss(
            nn.CrossEntropyLoss(), smp.losses.DiceLoss(mode="multiclass", from_logits=True)
        )
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")


def _size_multiple(net: nn.Module) -> int:
    """The divisor smp models need for H and W (their encoder output stride), else 1."""
    if getattr(net, "requires_divisible_input_shape", False):
        return int(net.encoder.output_stride)
    return 1


class SegmentationModule(pl.LightningModule):
    """Semantic segmentation with smp networks, CE/Dice losses and epoch-level IoU/PA/Dice.

    Logged per stage (``train``/``val``/``test``): ``loss``, ``miou``, ``pixel_acc``, ``dice``
    (mean over classes), ``iou_<class>``, ``dice_<class>``; plus ``val/miou_best``. When test
    batches carry volume ids (see the module docstring), also ``test/dice_volume`` (mean 3-D
    Dice over volumes), ``test/dice_volume_std``, ``test/iou_volume`` and ``test/dice_global``,
    of class 1 (of all foreground classes merged when there are more than 2); the per-volume
    table stays in ``test_volume_scores`` for callbacks (``PerVolumeWriter``). Each validation
    and test epoch draws an image / truth / prediction figure with every slice's Dice
    (``val/overlay``, ``test/overlay``, via ``litlab.plots.run_images.log_image``): one slice per
    volume, the one with the most truth foreground.

    Args:
        arch: smp architecture name (see
            :func:`litlab.networks.factory.segmentation_architectures`) or ``"ResNetFCN"``,
            the liver paper's plain ResNet baseline as we read it.
        encoder_name: Encoder (smp name; timm name for ``ResNetFCN``).
        encoder_weights: ``None`` (random init) or a pretrained weight name such as
            ``"imagenet"``; pretrained weights need the network or a local cache.
        in_channels: Image channels (1 for CT).
        classes: Number of classes, >= 2 (background counts as a class).
        loss: ``"ce"``, ``"dice"`` or ``"ce+dice"``.
        optimizer: ``sgd``, ``adam``, ``adamw`` or ``rmsprop``.
        lr: Learning rate.
        momentum: Momentum for SGD/RMSprop.
        weight_decay: Weight decay.
        scheduler: ``none``, ``cosine``, ``step`` or ``plateau``.
        class_names: One name per class for the per-class log keys; ``class0``, ``class1``, ...
            when ``None``.
        num_overlays: Rows (volumes) of the validation and test overlay figures; 0 turns them
            off.

    Shape:
        - batch: ``(image (B, in_channels, H, W) float, mask (B, H, W) int64[, meta])``.
        - forward output: logits ``(B, classes, H, W)``.
    """

    MONITOR = log_keys.VAL_LOSS
    MONITOR_MODE = "min"
    PREDICTS = "masks"  # predict_step: (B, H, W) int64 class per pixel

    def __init__(
        self,
        arch: str = "DeepLabV3Plus",
        encoder_name: str = "resnet34",
        encoder_weights: str | None = None,
        in_channels: int = 1,
        classes: int = 2,
        loss: str = "ce",
        optimizer: str = "adam",
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        class_names: list[str] | None = None,
        num_overlays: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if classes < 2:
            raise ValueError(
                f"classes must be >= 2 (background counts as a class), got {classes}; "
                "use classes=2 for a binary mask"
            )
        if optimizer.lower() not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if scheduler.lower() not in SCHEDULERS:
            raise ValueError(
                f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}"
            )
        if class_names is None:
            class_names = [f"class{i}" for i in range(classes)]
        if len(class_names) != classes:
            raise ValueError(
                f"class_names has {len(class_names)} names {list(class_names)} but classes={classes}; "
                "give one name per class, background included"
            )
        self.class_names = [str(name).strip().replace(" ", "_") for name in class_names]

        self.net = create_segmenter(arch, encoder_name, encoder_weights, in_channels, classes)
        self.criterion = build_loss(loss)
        self._multiple = _size_multiple(self.net)

        self.train_metrics = SegmentationScores(classes)
        self.val_metrics = SegmentationScores(classes)
        self.test_metrics = SegmentationScores(classes)
        self.test_volume_scores = VolumeScores(classes)
        self.val_miou_best = MaxMetric()
        self.val_miou_best.persistent(True)  # in checkpoints, so a resumed fit keeps its best
        self._overlays = {stage: OverlaySelection(num_overlays) for stage in ("val", "test")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images.

        Args:
            x: ``(B, in_channels, H, W)``; smp nets need ``H`` and ``W`` divisible by the
                encoder's output stride (16 for DeepLabV3Plus, 32 for Unet).

        Returns:
            ``(B, classes, H, W)`` logits.

        Raises:
            ValueError: Wrong rank/channels, or a size the network cannot take.
        """
        if x.ndim != 4 or x.shape[1] != self.hparams.in_channels:
            raise ValueError(
                f"expected images (B, {self.hparams.in_channels}, H, W), got {tuple(x.shape)}; "
                "set model.in_channels to the data's channel count"
            )
        h, w = x.shape[-2:]
        m = self._multiple
        if h % m or w % m:
            fit_h, fit_w = -(-h // m) * m, -(-w // m) * m
            raise ValueError(
                f"image size {h}x{w} is not divisible by {m}, which {self.hparams.arch} with "
                f"encoder {self.hparams.encoder_name} needs; resize the data to a multiple of {m} "
                f"(e.g. data.image_size={fit_h if h == w else f'({fit_h}, {fit_w})'}) or pad to "
                f"{fit_h}x{fit_w}"
            )
        return self.net(x)

    def _check_targets(self, images: torch.Tensor, targets: torch.Tensor) -> None:
        """Fail with the fix instead of a CUDA assert deep inside the loss."""
        if targets.shape != (images.shape[0], *images.shape[-2:]):
            raise ValueError(
                f"mask shape {tuple(targets.shape)} does not match images {tuple(images.shape)}; "
                "expected (B, H, W) integer masks the size of the images"
            )
        if targets.is_floating_point():
            raise ValueError(f"masks must hold integer class indices, got dtype {targets.dtype}")
        lo, hi = int(targets.min()), int(targets.max())
        if lo < 0 or hi >= self.hparams.classes:
            raise ValueError(
                f"mask values span [{lo}, {hi}] but classes={self.hparams.classes} allows "
                f"0..{self.hparams.classes - 1}; map the mask values or set model.classes "
                "(and data.num_classes) to match"
            )

    def model_step(
        self, batch: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss and predicted masks for one batch.

        Args:
            batch: ``(images (B, C, H, W) float, masks (B, H, W) int64)``.

        Returns:
            ``(loss scalar, preds (B, H, W) int64, targets (B, H, W) int64)``.
        """
        images, targets = batch[0], batch[1]
        self._check_targets(images, targets)
        targets = targets.long()
        logits = self(images)
        loss = self.criterion(logits, targets)
        return loss, logits.argmax(dim=1), targets

    def _shared_step(
        self, stage: str, batch: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        loss, preds, targets = self.model_step(batch)
        getattr(self, f"{stage}_metrics").update(preds, targets)
        self.log(
            log_keys.key(stage, log_keys.LOSS),
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            sync_dist=True,
            batch_size=targets.shape[0],
        )
        return loss, preds

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One optimisation step; returns the loss."""
        loss, _ = self._shared_step("train", batch)
        return loss

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        """Accumulate validation loss/metrics; offer the slices to the overlay figure."""
        _, preds = self._shared_step("val", batch)
        if not self.trainer.sanity_checking and self.trainer.is_global_zero:
            self._overlays["val"].offer(batch[0], batch[1], preds, _meta(batch))

    def test_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> None:
        """Accumulate test loss/metrics, per-volume counts when the batch says the volumes."""
        _, preds = self._shared_step("test", batch)
        meta = _meta(batch)
        if meta is not None:
            self.test_volume_scores.update(preds, batch[1], meta["volume"], meta["slice"])
        if self.trainer.is_global_zero:
            self._overlays["test"].offer(batch[0], batch[1], preds, meta)

    def predict_step(
        self, batch: Sequence[torch.Tensor] | torch.Tensor, batch_idx: int
    ) -> torch.Tensor:
        """Predicted masks ``(B, H, W)`` int64 for ``images`` or ``(images, ...)`` batches."""
        images = batch if isinstance(batch, torch.Tensor) else batch[0]
        return self(images).argmax(dim=1)

    def _draw_overlays(self, stage: str) -> None:
        picked = self._overlays[stage].take()
        if picked is None:
            return
        images, targets, preds, labels = picked
        when = f"{stage} epoch {self.current_epoch}" if stage == "val" else stage
        title = f"{when}: image / truth / prediction"
        figure = overlay_figure(images, targets, preds, self.hparams.classes, labels, title)
        log_image(self, log_keys.key(stage, "overlay"), figure)

    def _log_volume_scores(self) -> None:
        """Mean +- std of the per-volume 3-D Dice and IoU, and the global Dice (structure 0)."""
        if not self.test_volume_scores.update_called:
            return
        scores = self.test_volume_scores.scores()
        self.log_dict(
            {
                log_keys.key("test", log_keys.DICE_VOLUME): scores["dice_mean"][0].float(),
                log_keys.key("test", log_keys.DICE_VOLUME_STD): scores["dice_std"][0].float(),
                log_keys.key("test", log_keys.IOU_VOLUME): scores["iou_mean"][0].float(),
                log_keys.key("test", log_keys.DICE_GLOBAL): scores["dice_global"][0].float(),
            },
            sync_dist=True,
        )
        self.test_volume_scores.reset()

    def on_train_start(self) -> None:
        # The sanity check fills val metrics with an untrained net's scores; drop them.
        self.val_metrics.reset()
        if self.trainer.ckpt_path is None:  # a resumed fit keeps the best it restored
            self.val_miou_best.reset()

    def _log_epoch_metrics(self, stage: str) -> torch.Tensor | None:
        metrics: SegmentationScores = getattr(self, f"{stage}_metrics")
        if not metrics.update_called:
            return None
        values = metrics.compute()
        logs = {
            log_keys.key(stage, log_keys.MIOU): values["miou"],
            log_keys.key(stage, log_keys.PIXEL_ACC): values["pixel_acc"],
            log_keys.key(stage, log_keys.DICE): values["mdice"],
        }
        for i, name in enumerate(self.class_names):
            logs[log_keys.key(stage, f"iou_{name}")] = values["iou"][i]
            logs[log_keys.key(stage, f"dice_{name}")] = values["dice"][i]
        # compute() already synced the states across processes, so every rank logs the same value.
        self.log_dict(logs, sync_dist=True)
        metrics.reset()
        return values["miou"]

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._draw_overlays("val")
        miou = self._log_epoch_metrics("val")
        if miou is not None:
            self.val_miou_best.update(miou)
            self.log(
                log_keys.key("val", log_keys.MIOU_BEST),
                self.val_miou_best.compute(),
                sync_dist=True,
            )

    def on_test_epoch_end(self) -> None:
        self._draw_overlays("test")
        self._log_epoch_metrics("test")
        self._log_volume_scores()

    def configure_optimizers(self) -> dict:
        """Optimizer (and scheduler) from ``litlab.optim.factory``."""
        return configure(self)


def _meta(batch: Sequence) -> dict | None:
    """The batch's ``meta`` dict when it names each slice's volume and slice, else ``None``."""
    if len(batch) > 2 and isinstance(batch[2], dict) and {"volume", "slice"} <= batch[2].keys():
        return batch[2]
    return None
