"""Logged metric names, defined once: modules log them, callbacks, checkpoints and sweeps read them.

Every key is ``"{stage}/{name}"`` with stage in ``train``, ``val``, ``test``.
"""

from __future__ import annotations

STAGES = ("train", "val", "test")


def key(stage: str, name: str) -> str:
    """``key("val", "loss") -> "val/loss"``; rejects unknown stages."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    return f"{stage}/{name}"


LOSS = "loss"
ACC = "acc"
PRECISION = "precision"
RECALL = "recall"
F1 = "f1"
ACC_BEST = "acc_best"
MIOU = "miou"
PIXEL_ACC = "pixel_acc"
DICE = "dice"
MIOU_BEST = "miou_best"
DICE_VOLUME = "dice_volume"  # mean over volumes of the 3-D Dice (LiTS "Dice per case")
DICE_VOLUME_STD = "dice_volume_std"
IOU_VOLUME = "iou_volume"
DICE_GLOBAL = "dice_global"  # Dice of the voxels of every volume pooled (LiTS "Dice global")
KNN_ACC = "knn_acc"
PRECISION_AT_1 = "precision_at_1"
MAP_AT_R = "map_at_r"

VAL_LOSS = key("val", LOSS)
VAL_ACC = key("val", ACC)
VAL_MIOU = key("val", MIOU)
