"""Class-balanced batches for metric learning, seeded per epoch and split across DDP ranks.

pytorch-metric-learning's ``MPerClassSampler`` is a flat ``Sampler`` drawing from a global NumPy
RNG: it is not seeded per epoch, and under DDP Lightning would wrap it in a
``DistributedSamplerWrapper`` that deals its flat index list out to ranks one index at a time,
which breaks the "m consecutive images per class" structure every batch needs. This sampler builds
whole batches instead and deals *batches* to ranks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DistributedSampler, Sampler


class _EpochHolder(Sampler):
    """Holds the epoch for single-process runs; Lightning calls ``set_epoch`` on ``batch_sampler.sampler``."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


class ClassBalancedBatchSampler(BatchSampler):
    """Batches of ``m_per_class`` images from each of ``batch_size // m_per_class`` classes.

    Classes for a batch are drawn uniformly without replacement; within a class, images are taken
    from a reshuffled cycle, so each image is used about equally often and small classes repeat.
    One epoch is ``batches_per_epoch`` global batches (default: one pass, ``N // batch_size``),
    drawn from ``torch.Generator(seed + epoch)``; rank ``r`` of ``W`` takes global batches
    ``r, r + W, ...`` so ranks get disjoint batches and the same number of steps.

    Lightning compatibility: under DDP Lightning re-creates this batch sampler with a
    ``DistributedSampler`` as ``sampler``; its ``num_replicas``/``rank`` are then used, and Lightning's
    per-epoch ``set_epoch`` on ``batch_sampler.sampler`` reseeds the epoch. Explicit ``num_replicas``
    /``rank`` win; otherwise an initialised ``torch.distributed`` group is read; else one process.

    Args:
        sampler: ``None``, or a ``DistributedSampler`` supplying rank, world size and epoch.
        batch_size: Images per batch; a multiple of ``m_per_class``.
        drop_last: Kept for the ``BatchSampler`` interface; batches are always full.
        labels: ``(N,)`` integer class per dataset index.
        m_per_class: Images per class in a batch.
        seed: Base seed; epoch ``e`` uses ``seed + e``.
        batches_per_epoch: Global batches per epoch (all ranks together); ``None`` for one pass.
        num_replicas: World size override.
        rank: Rank override.
    """

    def __init__(
        self,
        sampler: Sampler | None = None,
        batch_size: int = 16,
        drop_last: bool = True,
        *,
        labels: Sequence[int] | np.ndarray | torch.Tensor,
        m_per_class: int = 4,
        seed: int = 0,
        batches_per_epoch: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if m_per_class < 1:
            raise ValueError(f"m_per_class must be >= 1, got {m_per_class}")
        if batch_size < m_per_class or batch_size % m_per_class:
            raise ValueError(
                f"batch_size={batch_size} must be a positive multiple of m_per_class={m_per_class}; "
                f"e.g. batch_size={m_per_class * max(2, batch_size // m_per_class)}"
            )
        classes = np.unique(labels)
        classes_per_batch = batch_size // m_per_class
        if classes_per_batch < 2:
            raise ValueError(
                f"batch_size // m_per_class = {classes_per_batch}: a triplet needs at least two "
                "classes per batch; raise batch_size or lower m_per_class"
            )
        if classes_per_batch > len(classes):
            raise ValueError(
                f"batch_size={batch_size} with m_per_class={m_per_class} needs {classes_per_batch} "
                f"classes per batch but the labels hold {len(classes)}; set "
                f"m_per_class >= {-(-batch_size // len(classes))} or lower batch_size"
            )
        self.sampler = sampler if sampler is not None else _EpochHolder()
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.labels = labels
        self.m_per_class = m_per_class
        self.classes_per_batch = classes_per_batch
        self.seed = seed
        self.batches_per_epoch = batches_per_epoch
        self._num_replicas = num_replicas
        self._rank = rank
        self._class_indices = [np.flatnonzero(labels == c) for c in classes]
        if batches_per_epoch is not None and batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be >= 1, got {batches_per_epoch}")

    def _world(self) -> tuple[int, int]:
        if self._num_replicas is not None or self._rank is not None:
            world, rank = self._num_replicas or 1, self._rank or 0
        elif isinstance(self.sampler, DistributedSampler):
            world, rank = self.sampler.num_replicas, self.sampler.rank
        elif dist.is_available() and dist.is_initialized():
            world, rank = dist.get_world_size(), dist.get_rank()
        else:
            world, rank = 1, 0
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is outside world size {world}")
        return world, rank

    @property
    def epoch(self) -> int:
        return int(getattr(self.sampler, "epoch", 0))

    def set_epoch(self, epoch: int) -> None:
        """Reseed the next iteration (also reachable as ``batch_sampler.sampler.set_epoch``)."""
        self.sampler.set_epoch(epoch)

    def _global_batches(self) -> int:
        if self.batches_per_epoch is not None:
            return self.batches_per_epoch
        return max(1, len(self.labels) // self.batch_size)

    def __len__(self) -> int:
        world, _ = self._world()
        # every rank gets the same number of steps; the remainder is dropped (DDP would hang)
        return max(1, self._global_batches() // world)

    def __iter__(self) -> Iterator[list[int]]:
        world, rank = self._world()
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        pools = [self._shuffled(idx, g) for idx in self._class_indices]
        cursors = [0] * len(pools)
        n_classes = len(pools)
        per_rank = len(self)
        for b in range(per_rank * world):
            chosen = torch.randperm(n_classes, generator=g)[: self.classes_per_batch].tolist()
            batch: list[int] = []
            for c in chosen:
                take = []
                while len(take) < self.m_per_class:
                    if cursors[c] == len(pools[c]):
                        pools[c], cursors[c] = self._shuffled(self._class_indices[c], g), 0
                    n = min(self.m_per_class - len(take), len(pools[c]) - cursors[c])
                    take.extend(pools[c][cursors[c] : cursors[c] + n])
                    cursors[c] += n
                batch.extend(take)
            # every rank draws the whole global sequence (same generator) and keeps its share
            if b % world == rank:
                yield batch

    @staticmethod
    def _shuffled(indices: np.ndarray, g: torch.Generator) -> list[int]:
        return indices[torch.randperm(len(indices), generator=g).numpy()].tolist()
