"""Image classification: a timm backbone, cross-entropy, torchmetrics per stage."""

from __future__ import annotations

import logging

import lightning.pytorch as pl
import torch
from litlab.metrics import log_keys
from litlab.networks.factory import create_classifier
from litlab.networks.heads import set_backbone_trainable
from litlab.optim.factory import configure
from litlab.plots.confusion import confusion_figure
from litlab.plots.run_images import log_image
from torch import nn
from torchmetrics import MaxMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

log = logging.getLogger(__name__)


class ClassificationModule(pl.LightningModule):
    """A timm classifier with the metrics the papers report.

    Args:
        backbone: Any ``timm.create_model`` name (``timm.list_models()`` lists them).
        num_classes: Output classes.
        in_chans: Input channels (1 for gray faces, 3 for RGB).
        stem: ``"standard"`` (the paper's "state of the art" ResNet-50 as timm builds it) or
            ``"fer48"`` (3x3 stride-1 stem without max-pool, see
            :func:`litlab.networks.stems.adapt_stem_fer48`).
        pretrained: ``False``, a timm hub tag (``"resnet50.a1_in1k"``; needs network) or a local
            file: a timm/torchvision state dict or a litlab checkpoint.
        freeze_backbone_epochs: Train only the head for this many first epochs.
        optimizer: ``sgd``, ``adam``, ``adamw`` or ``rmsprop``.
        lr: Learning rate.
        momentum: SGD/RMSprop momentum.
        weight_decay: L2 penalty.
        scheduler: ``none``, ``cosine``, ``step`` or ``plateau``.
        class_names: Names for plots and per-class logs; defaults to ``class_0`` ...

    Shape:
        input: ``(B, in_chans, H, W)`` float; output logits ``(B, num_classes)``.
    """

    MONITOR = log_keys.VAL_ACC
    MONITOR_MODE = "max"
    PREDICTS = "probabilities"  # predict_step: (B, num_classes) softmax

    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int = 7,
        in_chans: int = 1,
        stem: str = "standard",
        pretrained: bool | str = False,
        freeze_backbone_epochs: int = 0,
        optimizer: str = "sgd",
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class_names for num_classes={num_classes}")
        self.class_names = list(class_names or [f"class_{i}" for i in range(num_classes)])
        self.net = create_classifier(backbone, num_classes, in_chans, stem, pretrained)
        self.criterion = nn.CrossEntropyLoss()
        metrics = MetricCollection(
            {
                log_keys.ACC: MulticlassAccuracy(num_classes, average="micro"),
                log_keys.PRECISION: MulticlassPrecision(num_classes, average="macro"),
                log_keys.RECALL: MulticlassRecall(num_classes, average="macro"),
                log_keys.F1: MulticlassF1Score(num_classes, average="macro"),
            }
        )
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.val_confusion = MulticlassConfusionMatrix(num_classes)
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # in checkpoints, so a resumed fit keeps its best

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def model_step(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loss, predicted class (B,), target (B,))`` for one batch."""
        x, y = batch
        logits = self(x)
        return self.criterion(logits, y), logits.argmax(1), y

    def on_train_start(self) -> None:
        if self.trainer.ckpt_path is None:  # a resumed fit keeps the best it restored
            self.val_acc_best.reset()

    def on_train_epoch_start(self) -> None:
        set_backbone_trainable(self.net, self.current_epoch >= self.hparams.freeze_backbone_epochs)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        loss, preds, y = self.model_step(batch)
        self.train_metrics.update(preds, y)
        self.log(
            log_keys.key("train", log_keys.LOSS), loss, on_step=False, on_epoch=True, prog_bar=True
        )
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, preds, y = self.model_step(batch)
        self.val_metrics.update(preds, y)
        self.val_confusion.update(preds, y)
        self.log(log_keys.VAL_LOSS, loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log_dict(self.val_metrics, on_step=False, on_epoch=True, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best.update(self.val_metrics[log_keys.ACC].compute())
        self.log(log_keys.key("val", log_keys.ACC_BEST), self.val_acc_best.compute(), prog_bar=True)
        matrix = self.val_confusion.compute()
        self.val_confusion.reset()
        if not self.trainer.sanity_checking:
            self._log_confusion("val/confusion_matrix", matrix)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, preds, y = self.model_step(batch)
        self.test_metrics.update(preds, y)
        self.test_confusion.update(preds, y)
        self.log(log_keys.key("test", log_keys.LOSS), loss, on_step=False, on_epoch=True)
        self.log_dict(self.test_metrics, on_step=False, on_epoch=True)

    def on_test_epoch_end(self) -> None:
        matrix = self.test_confusion.compute()
        self.test_confusion.reset()
        self._log_confusion("test/confusion_matrix", matrix)

    def predict_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).softmax(1)

    def _log_confusion(self, key: str, matrix: torch.Tensor) -> None:
        array = matrix.cpu().numpy()
        title = f"{key.split('/')[0]} confusion, epoch {self.current_epoch}"
        log_image(self, key, confusion_figure(array, self.class_names, title))

    def configure_optimizers(self) -> dict:
        return configure(self)
