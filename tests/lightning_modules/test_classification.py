"""ClassificationModule: stems, metrics against scikit-learn, freezing, errors."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from litlab.lightning_modules.classification import ClassificationModule
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)
from torch.utils.data import DataLoader, TensorDataset


def test_fer48_stem_keeps_resolution_and_standard_stem_shrinks_it():
    fer = ClassificationModule(backbone="resnet18", stem="fer48", num_classes=7)
    std = ClassificationModule(backbone="resnet18", stem="standard", num_classes=7)
    x = torch.randn(2, 1, 48, 48)
    assert fer.net.forward_features(x).shape[-1] == 6  # 48 / 8: stages at 48, 24, 12, 6 px
    assert std.net.forward_features(x).shape[-1] == 2  # 48 / 32
    assert fer(x).shape == std(x).shape == (2, 7)
    assert fer.net.conv1.kernel_size == (3, 3) and fer.net.conv1.stride == (1, 1)


def test_paper_resnet50_builds_for_gray_48px():
    model = ClassificationModule(backbone="resnet50", stem="fer48", num_classes=7, in_chans=1)
    assert model(torch.randn(1, 1, 48, 48)).shape == (1, 7)


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="stem must be one of"):
        ClassificationModule(backbone="resnet18", stem="tiny")
    with pytest.raises(ValueError, match="unknown timm backbone 'resnet5O'"):
        ClassificationModule(backbone="resnet5O")
    with pytest.raises(ValueError, match="ResNet-family"):
        ClassificationModule(backbone="vit_tiny_patch16_224", stem="fer48")
    with pytest.raises(ValueError, match="class_names"):
        ClassificationModule(backbone="resnet18", num_classes=3, class_names=["a", "b"])


class _FixedPredictions(ClassificationModule):
    """Predicts pre-drawn random classes, so metrics can be checked against scikit-learn."""

    def __init__(self, preds: torch.Tensor) -> None:
        super().__init__(backbone="resnet18", num_classes=5, class_names=list("abcde"))
        self.preds = preds
        self.matrices: dict[str, np.ndarray] = {}

    def _log_confusion(self, key, matrix):
        self.matrices[key] = matrix.cpu().numpy()
        super()._log_confusion(key, matrix)

    def model_step(self, batch):
        x, y = batch
        idx = x[:, 0, 0, 0].long()
        return torch.tensor(0.0, requires_grad=True), self.preds[idx], y


def test_test_metrics_match_sklearn(tmp_path):
    rng = np.random.default_rng(0)
    n = 203  # not a multiple of the batch size
    y = torch.from_numpy(rng.integers(0, 5, n))
    preds = torch.where(torch.rand(n) < 0.5, y, torch.from_numpy(rng.integers(0, 5, n)))
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    model = _FixedPredictions(preds)
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, default_root_dir=tmp_path, enable_progress_bar=False
    )
    result = trainer.test(model, loader, verbose=False)[0]
    yt, yp = y.numpy(), preds.numpy()
    assert result["test/acc"] == pytest.approx(accuracy_score(yt, yp), abs=1e-6)
    assert result["test/precision"] == pytest.approx(
        precision_score(yt, yp, average="macro"), abs=1e-6
    )
    assert result["test/recall"] == pytest.approx(recall_score(yt, yp, average="macro"), abs=1e-6)
    assert result["test/f1"] == pytest.approx(f1_score(yt, yp, average="macro"), abs=1e-6)
    png = list((tmp_path / "images").glob("test_confusion_matrix-*.png"))
    assert len(png) == 1 and png[0].stat().st_size > 1000
    # The confusion matrix accumulated over all batches equals sklearn's.
    np.testing.assert_array_equal(model.matrices["test/confusion_matrix"], confusion_matrix(yt, yp))


def test_freeze_backbone_epochs_trains_only_the_head_first():
    model = ClassificationModule(backbone="resnet18", num_classes=3, freeze_backbone_epochs=1)
    model.trainer = type("T", (), {"current_epoch": 0})()  # what on_train_epoch_start reads
    type(model).current_epoch = property(lambda self: self.trainer.current_epoch)
    try:
        model.on_train_epoch_start()
        head = {id(p) for p in model.net.get_classifier().parameters()}
        assert not any(p.requires_grad for p in model.net.parameters() if id(p) not in head)
        assert all(p.requires_grad for p in model.net.get_classifier().parameters())
        model.trainer.current_epoch = 1
        model.on_train_epoch_start()
        assert all(p.requires_grad for p in model.net.parameters())
    finally:
        del type(model).current_epoch
