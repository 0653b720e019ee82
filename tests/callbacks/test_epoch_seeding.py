"""EpochSeeding: a fit resumed from any checkpoint draws the same batches and numbers as one that
was never stopped (shuffle order, augmentation in the loader, dropout in the step)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from litlab.callbacks.epoch_seeding import EpochSeeding, epoch_seed, rng_state, set_rng_state
from litlab.callbacks.run_checkpoint import run_checkpoints
from torch.utils.data import DataLoader, Dataset

BATCHES_PER_EPOCH = 5


class NoisyIds(Dataset):
    """Item ``i`` is ``(i, random noise)``: the noise stands for random augmentation."""

    def __len__(self) -> int:
        return 4 * BATCHES_PER_EPOCH

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(i), torch.rand(4)


class Recorder(pl.LightningModule):
    """Records what every training step saw: sample ids, noise, and its dropout draw."""

    def __init__(self, num_workers: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.num_workers = num_workers
        self.seen: list[tuple[int, int, list[int], float, float]] = []

    def training_step(self, batch, batch_idx):
        ids, noise = batch
        dropped = torch.nn.functional.dropout(noise, 0.5, training=True)
        self.seen.append(
            (
                self.current_epoch,
                batch_idx,
                ids.tolist(),
                float(noise.sum()),
                float(dropped.sum()),
            )
        )
        loss = (self.layer(dropped) - ids.float().unsqueeze(1) / 10).pow(2).mean()
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return DataLoader(
            NoisyIds(),
            batch_size=4,
            shuffle=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )


class CopyCheckpointAt(pl.Callback):
    """Copies ``last.ckpt`` aside when the given step starts, as a kill would leave it."""

    def __init__(self, step: int, source: Path, target: Path) -> None:
        self.step, self.source, self.target = step, source, target

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            self.target.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.source, self.target / "last.ckpt")


def _fit(
    cpu_trainer: Callable[..., pl.Trainer],
    root: Path,
    num_workers: int,
    ckpt_path: Path | None = None,
    extra: list[pl.Callback] | None = None,
    seeding: bool = True,
) -> Recorder:
    pl.seed_everything(7, workers=True, verbose=False)
    module = Recorder(num_workers)
    trainer = cpu_trainer(
        max_epochs=3,
        default_root_dir=root,
        callbacks=[
            *([EpochSeeding(7)] if seeding else []),
            *run_checkpoints(root / "checkpoints", "train_loss", "min", every_n_steps=3),
            *(extra or []),
        ],
    )
    trainer.fit(module, ckpt_path=ckpt_path)
    return module


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resumed_epochs_repeat_the_uninterrupted_ones(tmp_path, cpu_trainer, num_workers):
    """Resume at an epoch boundary and mid-epoch (a step checkpoint): same batches, same weights."""
    # Step 6 is the first batch of epoch 1; step 10 ends epoch 1.
    mid, boundary = tmp_path / "mid", tmp_path / "boundary"
    whole = _fit(
        cpu_trainer,
        tmp_path / "whole",
        num_workers,
        extra=[
            CopyCheckpointAt(7, tmp_path / "whole/checkpoints/last.ckpt", mid / "checkpoints"),
            CopyCheckpointAt(
                11, tmp_path / "whole/checkpoints/last.ckpt", boundary / "checkpoints"
            ),
        ],
    )
    assert torch.load(mid / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 6
    assert torch.load(boundary / "checkpoints/last.ckpt", weights_only=True)["global_step"] == 10

    for root, done in ((mid, 6), (boundary, 10)):
        resumed = _fit(cpu_trainer, root, num_workers, ckpt_path=root / "checkpoints/last.ckpt")
        assert resumed.seen == whole.seen[done:], root.name
        for a, b in zip(resumed.parameters(), whole.parameters(), strict=True):
            assert torch.equal(a, b), root.name


def test_without_reseeding_a_resume_differs(tmp_path, cpu_trainer):
    """The check above can fail: seeding once per process, epoch 2 gets other batches."""
    boundary = tmp_path / "boundary"
    copy = CopyCheckpointAt(11, tmp_path / "whole/checkpoints/last.ckpt", boundary / "checkpoints")
    whole = _fit(cpu_trainer, tmp_path / "whole", 0, extra=[copy], seeding=False)
    resumed = _fit(
        cpu_trainer, boundary, 0, ckpt_path=boundary / "checkpoints/last.ckpt", seeding=False
    )
    assert [s[2] for s in resumed.seen] != [s[2] for s in whole.seen[10:]]


def test_random_state_survives_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(3)
    state = rng_state()
    expected = (
        torch.rand(3),
        float(__import__("numpy").random.rand()),
        __import__("random").random(),
    )
    torch.save({"rng": state}, tmp_path / "s.pt")
    set_rng_state(torch.load(tmp_path / "s.pt", weights_only=True)["rng"])
    again = (torch.rand(3), float(__import__("numpy").random.rand()), __import__("random").random())
    assert torch.equal(expected[0], again[0]) and expected[1:] == again[1:]


def test_epoch_seeds_differ_by_epoch_and_by_seed():
    seeds = {epoch_seed(s, e) for s in (1, 2) for e in (0, 1, 2)}
    assert len(seeds) == 6
    assert epoch_seed(1, 1) == epoch_seed(1, 1)
