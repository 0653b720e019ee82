"""Per-volume Dice/IoU: a hand computation, repeated slices, absent structures, two gloo ranks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from litlab.metrics.functional.volume_scores import (
    first_occurrences,
    slice_counts,
    structure_names,
    volume_scores,
)
from litlab.metrics.volume_scores import VolumeScores


def _two_volumes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three 2x3 slices: volume 0 has slices 0 and 1, volume 1 has slice 2."""
    preds = torch.tensor(
        [
            [[1, 1, 0], [0, 0, 0]],  # slice 0
            [[0, 1, 1], [0, 0, 0]],  # slice 1
            [[1, 0, 0], [0, 0, 1]],  # slice 2
        ]
    )
    target = torch.tensor(
        [
            [[1, 0, 0], [0, 0, 0]],
            [[0, 1, 1], [1, 0, 0]],
            [[1, 1, 0], [0, 0, 0]],
        ]
    )
    return preds, target, torch.tensor([0, 0, 1])


def test_per_volume_dice_matches_a_hand_computation() -> None:
    preds, target, volumes = _two_volumes()
    metric = VolumeScores(num_classes=2)
    metric.update(preds[:2], target[:2], volumes[:2], torch.tensor([0, 1]))
    metric.update(preds[2:], target[2:], volumes[2:], torch.tensor([2]))
    got = metric.compute()
    # Volume 0, written out: slice 0 tp 1 fp 1 fn 0; slice 1 tp 2 fp 0 fn 1 -> tp 3, fp 1, fn 1.
    # Dice 2*3/(2*3+1+1) = 0.75, IoU 3/5. Volume 1: tp 1, fp 1, fn 1 -> Dice 0.5, IoU 1/3.
    assert got["counts"].tolist() == [[[3, 1, 1]], [[1, 1, 1]]]
    np.testing.assert_allclose(got["dice"][:, 0].numpy(), [0.75, 0.5])
    np.testing.assert_allclose(got["iou"][:, 0].numpy(), [3 / 5, 1 / 3])
    assert got["dice_mean"].item() == pytest.approx(0.625)
    assert got["dice_std"].item() == pytest.approx(np.std([0.75, 0.5], ddof=1))
    # Global Dice pools the counts: tp 4, fp 2, fn 2 -> 8 / 12.
    assert got["dice_global"].item() == pytest.approx(8 / 12)
    assert got["slices"].tolist() == [2, 1] and got["volumes"].tolist() == [0, 1]
    # Not the mean of per-slice Dice: slice 0 alone scores 2/3, slice 1 4/5.
    assert got["dice"][0, 0].item() != pytest.approx((2 / 3 + 4 / 5) / 2)


def test_repeated_slices_count_once() -> None:
    preds, target, volumes = _two_volumes()
    once, twice = VolumeScores(2), VolumeScores(2)
    once.update(preds, target, volumes, torch.arange(3))
    one = VolumeScores(2)
    one.update(preds[:1], target[:1], volumes[:1], torch.tensor([0]))
    assert one.compute()["dice"].shape == ()  # torchmetrics squeezes one-element tensors
    shapes = {k: tuple(v.shape) for k, v in one.scores().items()}
    assert (
        shapes["dice"] == (1, 1) and shapes["counts"] == (1, 1, 3) and shapes["dice_mean"] == (1,)
    )
    # a DistributedSampler pads by repeating the first items: slice 0 arrives twice
    twice.update(preds, target, volumes, torch.arange(3))
    twice.update(preds[:1], target[:1], volumes[:1], torch.tensor([0]))
    for key in ("counts", "dice", "dice_global"):
        torch.testing.assert_close(twice.compute()[key], once.compute()[key])
    assert first_occurrences(torch.tensor([5, 3, 5, 3, 9])).tolist() == [1, 0, 4]


def test_absent_structure_is_nan_and_left_out_of_the_mean() -> None:
    empty = torch.zeros(1, 2, 2, dtype=torch.long)
    full = torch.ones(1, 2, 2, dtype=torch.long)
    got = volume_scores(
        torch.tensor([0, 1]),
        torch.cat([slice_counts(empty, empty, 2), slice_counts(full, full, 2)]),
    )
    assert torch.isnan(got["dice"][0, 0]) and got["dice"][1, 0].item() == 1.0
    assert got["dice_mean"].item() == 1.0
    assert torch.isnan(got["dice_std"]).all()  # one scored volume: no spread


def test_three_classes_score_the_foreground_then_each_class() -> None:
    assert structure_names(["background", "liver"]) == ["liver"]
    assert structure_names(["background", "liver", "tumour"]) == ["foreground", "liver", "tumour"]
    preds = torch.tensor([[[1, 2], [0, 1]]])
    target = torch.tensor([[[2, 2], [1, 0]]])
    counts = slice_counts(preds, target, 3)[0]
    # foreground: pred {0,1,3} vs truth {0,1,2}: tp 2, fp 1, fn 1; liver: pred {0,3}, truth {2}
    assert counts.tolist() == [[2, 1, 1], [0, 2, 1], [1, 0, 1]]


def test_empty_metric_and_bad_input() -> None:
    metric = VolumeScores(2)
    with pytest.warns(UserWarning, match="before the ``update``"):
        got = metric.compute()
    assert len(got["volumes"]) == 0 and torch.isnan(got["dice_mean"]).all()
    with pytest.raises(ValueError, match="2 masks but 1 volume ids"):
        metric.update(
            torch.zeros(2, 2, 2), torch.zeros(2, 2, 2), torch.tensor([0]), torch.tensor([0, 1])
        )
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        VolumeScores(1)


DDP_SCRIPT = """
import sys
import torch
import torch.distributed as dist
from litlab.metrics.volume_scores import VolumeScores

rank, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
torch.set_num_threads(1)
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
data = torch.load(f"{out}/data.pt")
metric = VolumeScores(2)
# rank r sees slices r, r+2, ... as a DistributedSampler deals them; rank 1 gets slice 0 again as
# padding. Every volume is split over both ranks.
for i in data["order"][rank]:
    metric.update(data["preds"][i:i+1], data["target"][i:i+1], data["volumes"][i:i+1],
                  torch.tensor([i]))
torch.save(metric.compute(), f"{out}/rank{rank}.pt")
dist.destroy_process_group()
"""


def test_two_gloo_ranks_sum_each_volume_before_scoring(
    tmp_path: Path, gloo_ranks: Callable[[str, Path], None]
) -> None:
    g = torch.Generator().manual_seed(0)
    n = 7
    data = {
        "preds": torch.randint(0, 2, (n, 6, 6), generator=g),
        "target": torch.randint(0, 2, (n, 6, 6), generator=g),
        "volumes": torch.tensor([0, 0, 0, 1, 1, 2, 2]),
        "order": [list(range(0, n, 2)), [*range(1, n, 2), 0]],
    }
    torch.save(data, tmp_path / "data.pt")
    gloo_ranks(DDP_SCRIPT, tmp_path)
    single = VolumeScores(2)
    single.update(data["preds"], data["target"], data["volumes"], torch.arange(n))
    want = single.compute()
    for r in range(2):
        got = torch.load(tmp_path / f"rank{r}.pt")
        for key in ("counts", "dice", "iou", "dice_mean", "dice_global"):
            torch.testing.assert_close(got[key], want[key], equal_nan=True)
