"""Segmentation scores: pooled over batches, absent classes, mIoU <= PA, equal to the references."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from litlab.metrics.segmentation_scores import SegmentationScores


def _hand_metrics(preds: np.ndarray, targets: np.ndarray, num_classes: int) -> dict:
    iou, dice, present = [], [], []
    for c in range(num_classes):
        tp = np.sum((preds == c) & (targets == c))
        fp = np.sum((preds == c) & (targets != c))
        fn = np.sum((preds != c) & (targets == c))
        present.append(tp + fp + fn > 0)
        iou.append(tp / (tp + fp + fn) if tp + fp + fn else 0.0)
        dice.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    iou, dice, present = np.array(iou), np.array(dice), np.array(present)
    return {
        "iou": iou,
        "dice": dice,
        "miou": iou[present].mean(),
        "mdice": dice[present].mean(),
        "pixel_acc": np.mean(preds == targets),
    }


def test_metrics_match_a_hand_computation_over_batches():
    # Two batches of different content: an epoch metric must pool pixels, not average batches.
    preds1 = torch.tensor([[[0, 1], [1, 1]]])
    targets1 = torch.tensor([[[0, 1], [0, 1]]])
    preds2 = torch.tensor([[[0, 0, 0], [0, 2, 2], [0, 0, 1]]])
    targets2 = torch.tensor([[[0, 0, 0], [0, 2, 1], [0, 0, 1]]])
    metrics = SegmentationScores(3)
    metrics.update(preds1, targets1)
    metrics.update(preds2, targets2)
    got = metrics.compute()

    pooled_p = np.concatenate([preds1.flatten().numpy(), preds2.flatten().numpy()])
    pooled_t = np.concatenate([targets1.flatten().numpy(), targets2.flatten().numpy()])
    want = _hand_metrics(pooled_p, pooled_t, 3)
    # Written out once more by hand: class 0: tp 7, fp 0, fn 1; class 1: tp 3, fp 2, fn 0;
    # class 2: tp 1, fp 1, fn 0 -- 11 of 13 pixels right.
    np.testing.assert_allclose(want["iou"], [7 / 8, 3 / 5, 1 / 2])
    np.testing.assert_allclose(want["dice"], [14 / 15, 6 / 8, 2 / 3])
    assert want["pixel_acc"] == pytest.approx(11 / 13)

    for name in ("iou", "dice"):
        np.testing.assert_allclose(got[name].numpy(), want[name], rtol=1e-6)
    for name in ("miou", "mdice", "pixel_acc"):
        assert got[name].item() == pytest.approx(want[name], rel=1e-6)


def test_absent_class_is_left_out_of_the_mean():
    preds = torch.tensor([[[0, 0], [1, 1]]])
    targets = torch.tensor([[[0, 1], [1, 1]]])
    metrics = SegmentationScores(3)  # class 2 never appears in truth or prediction
    metrics.update(preds, targets)
    got = metrics.compute()
    np.testing.assert_allclose(got["iou"].numpy(), [1 / 2, 2 / 3, 0.0], rtol=1e-6)
    assert got["miou"].item() == pytest.approx((1 / 2 + 2 / 3) / 2)


# Up to 3 batches of (height, width, seed, fraction of pixels predicted at random).
_batches = st.lists(
    st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1), st.floats(0, 1)),
    min_size=1,
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(batches=_batches)
def test_miou_never_exceeds_pixel_accuracy_for_two_classes(batches):
    metrics = SegmentationScores(2)
    pooled_p, pooled_t = [], []
    for h, w, seed, flip in batches:
        rng = np.random.default_rng(seed)
        targets = rng.integers(0, 2, size=(2, h, w))
        # Predictions from right to random, so every regime (perfect, poor, one class) is drawn.
        preds = np.where(rng.random((2, h, w)) < flip, rng.integers(0, 2, size=(2, h, w)), targets)
        metrics.update(torch.from_numpy(preds), torch.from_numpy(targets))
        pooled_p.append(preds.ravel())
        pooled_t.append(targets.ravel())
    got = metrics.compute()
    want = _hand_metrics(np.concatenate(pooled_p), np.concatenate(pooled_t), 2)
    assert got["miou"].item() == pytest.approx(want["miou"], abs=1e-6)
    pa = got["pixel_acc"].item()
    assert got["miou"].item() <= pa + 1e-6
    assert torch.all(got["iou"] <= pa + 1e-6)


@pytest.mark.parametrize("num_classes", [2, 4])
def test_scores_equal_sklearn_and_torchmetrics_on_random_masks(num_classes: int) -> None:
    from sklearn.metrics import accuracy_score, f1_score, jaccard_score
    from torchmetrics.classification import (
        MulticlassAccuracy,
        MulticlassF1Score,
        MulticlassJaccardIndex,
    )

    g = torch.Generator().manual_seed(num_classes)
    # the last class never occurs, so the absent-class rule is exercised
    batches = [
        (torch.randint(0, num_classes - 1, (2, 5, 7), generator=g),
         torch.randint(0, num_classes - 1, (2, 5, 7), generator=g))
        for _ in range(3)
    ]  # fmt: skip
    ours = SegmentationScores(num_classes)
    common = {"num_classes": num_classes, "validate_args": False}
    reference = {
        "iou": MulticlassJaccardIndex(average="none", **common),
        "miou": MulticlassJaccardIndex(average="macro", **common),
        "pixel_acc": MulticlassAccuracy(average="micro", **common),
        "dice": MulticlassF1Score(average="none", **common),
        "mdice": MulticlassF1Score(average="macro", **common),
    }
    for preds, target in batches:
        ours.update(preds, target)
        for metric in reference.values():
            metric.update(preds, target)
    got = ours.compute()
    for name, metric in reference.items():
        torch.testing.assert_close(got[name], metric.compute(), rtol=1e-6, atol=1e-7)

    p = torch.cat([b[0].flatten() for b in batches]).numpy()
    t = torch.cat([b[1].flatten() for b in batches]).numpy()
    labels = list(range(num_classes))
    present = labels[:-1]
    kw = {"labels": labels, "average": None, "zero_division": 0}
    np.testing.assert_allclose(got["iou"].numpy(), jaccard_score(t, p, **kw), rtol=1e-6)
    np.testing.assert_allclose(got["dice"].numpy(), f1_score(t, p, **kw), rtol=1e-6)
    assert got["miou"].item() == pytest.approx(jaccard_score(t, p, labels=present, average="macro"))
    assert got["mdice"].item() == pytest.approx(f1_score(t, p, labels=present, average="macro"))
    assert got["pixel_acc"].item() == pytest.approx(accuracy_score(t, p))


def test_empty_and_reset() -> None:
    metric = SegmentationScores(2)
    assert not metric.update_called
    with pytest.warns(UserWarning, match="called before the ``update`` method"):
        got = metric.compute()
    assert torch.isnan(got["miou"]) and torch.isnan(got["pixel_acc"])
    metric.update(torch.ones(1, 2, 2, dtype=torch.long), torch.ones(1, 2, 2, dtype=torch.long))
    assert metric.compute()["miou"].item() == 1.0
    metric.reset()
    assert int(metric.confmat.sum()) == 0
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        SegmentationScores(1)


DDP_SCRIPT = """
import sys
import torch
import torch.distributed as dist
from litlab.metrics.segmentation_scores import SegmentationScores

rank, world, port, out = int(sys.argv[1]), 2, sys.argv[2], sys.argv[3]
torch.set_num_threads(1)
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
g = torch.Generator().manual_seed(rank)
preds = torch.randint(0, 3, (2, 4, 4), generator=g)
target = torch.randint(0, 3, (2, 4, 4), generator=g)
metric = SegmentationScores(3)
metric.update(preds, target)
scores = metric.compute()  # syncs: every rank scores the pooled matrix
torch.save({"scores": scores, "preds": preds, "target": target}, f"{out}/rank{rank}.pt")
dist.destroy_process_group()
"""


def test_two_process_gloo_sync_pools_the_ranks(
    tmp_path: Path, gloo_ranks: Callable[[str, Path], None]
) -> None:
    gloo_ranks(DDP_SCRIPT, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    pooled = SegmentationScores(3)
    for r in ranks:
        pooled.update(r["preds"], r["target"])
    want = pooled.compute()
    assert not torch.equal(ranks[0]["preds"], ranks[1]["preds"])
    for r in ranks:
        for name, value in want.items():
            torch.testing.assert_close(r["scores"][name], value)
