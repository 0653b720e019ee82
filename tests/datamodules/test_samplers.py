"""Class-balanced batch sampler: m per class, per-epoch seeding, disjoint DDP shares."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from litlab.datamodules.samplers import ClassBalancedBatchSampler
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

LABELS = np.repeat(np.arange(7), 12)  # 7 classes x 12 images = 84


def _batches(**kwargs) -> list[list[int]]:
    return list(ClassBalancedBatchSampler(labels=LABELS, **kwargs))


def test_each_batch_holds_m_images_of_each_chosen_class() -> None:
    batches = _batches(batch_size=16, m_per_class=4, seed=1)
    assert len(batches) == 84 // 16
    for batch in batches:
        counts = Counter(LABELS[batch].tolist())
        assert len(batch) == 16
        assert len(counts) == 4
        assert set(counts.values()) == {4}
        assert len(set(batch)) == 16  # 12 images per class: no repeat inside one batch


def test_small_classes_are_cycled_not_skipped() -> None:
    labels = np.array([0] * 30 + [1] * 30 + [2] * 3)
    sampler = ClassBalancedBatchSampler(labels=labels, batch_size=8, m_per_class=4, seed=0,
                                        batches_per_epoch=40)  # fmt: skip
    seen = Counter(i for batch in sampler for i in batch)
    rare = [seen[i] for i in (60, 61, 62)]
    assert min(rare) > 0 and max(rare) - min(rare) <= 4  # used about equally


def test_seeded_per_epoch() -> None:
    a = ClassBalancedBatchSampler(labels=LABELS, batch_size=8, m_per_class=2, seed=3)
    b = ClassBalancedBatchSampler(labels=LABELS, batch_size=8, m_per_class=2, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)


@pytest.mark.parametrize("via", ["args", "distributed_sampler"])
def test_ranks_get_disjoint_shares_of_the_global_sequence(via: str) -> None:
    world = 2
    # 84 images, 4 global batches of 16 = 64 <= 84 images, so an epoch uses no image twice
    full = _batches(batch_size=16, m_per_class=4, seed=5, batches_per_epoch=4)
    flat = [i for batch in full for i in batch]
    assert len(flat) == len(set(flat))
    shares = []
    for rank in range(world):
        if via == "args":
            kw = {"num_replicas": world, "rank": rank}
        else:
            data = TensorDataset(torch.zeros(len(LABELS)))
            kw = {"sampler": DistributedSampler(data, num_replicas=world, rank=rank)}
        s = ClassBalancedBatchSampler(labels=LABELS, batch_size=16, m_per_class=4, seed=5,
                                      batches_per_epoch=4, **kw)  # fmt: skip
        shares.append(list(s))
        assert len(s) == 2
    assert shares[0] == full[0::2] and shares[1] == full[1::2]
    assert not {i for b in shares[0] for i in b} & {i for b in shares[1] for i in b}


def test_epoch_comes_from_the_distributed_sampler() -> None:
    ds = DistributedSampler(TensorDataset(torch.zeros(len(LABELS))), num_replicas=2, rank=0)
    s = ClassBalancedBatchSampler(ds, labels=LABELS, batch_size=8, m_per_class=4, seed=0)
    first = list(s)
    ds.set_epoch(3)
    assert list(s) != first


def test_works_as_dataloader_batch_sampler() -> None:
    data = TensorDataset(torch.arange(len(LABELS)))
    sampler = ClassBalancedBatchSampler(labels=LABELS, batch_size=8, m_per_class=4)
    loader = DataLoader(data, batch_sampler=sampler)
    (batch,) = next(iter(loader))
    assert batch.shape == (8,)


@pytest.mark.parametrize(
    ("batch_size", "m", "match"),
    [
        (10, 4, "multiple of m_per_class"),
        (4, 4, "at least two classes"),
        (32, 4, "m_per_class >= 5"),
    ],
)
def test_bad_settings_name_the_fix(batch_size: int, m: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ClassBalancedBatchSampler(labels=LABELS, batch_size=batch_size, m_per_class=m)
