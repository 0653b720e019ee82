"""Every epoch's randomness drawn from ``(seed, epoch)``, so a resumed run repeats the epochs it lost.

``seed_everything`` seeds a process once, at its start. A run killed in epoch 2 and resumed from
its epoch-1 checkpoint starts a new process: its random streams (shuffling, augmentation,
dropout, worker seeds) restart from the top, so epoch 2 sees other batches than it would have
without the kill, and the final metrics differ. :class:`EpochSeeding` reseeds Python, NumPy and
torch at the start of every training epoch from ``(seed, epoch)`` and makes the epoch's loader
iterator after that, so each epoch's randomness is the same whether or not the process was
restarted before it.

Checkpoints written within an epoch (``--checkpoint_every_n_steps``) also hold the random state
at the moment they were written; resuming from one replays the epoch's loader past the batches
already trained (same order, same worker streams) and then restores that state, so the rest of
the epoch continues as it would have. Lightning does not save metric accumulators, so epoch-mean
*training* metrics of such a resumed epoch cover only its remaining batches.

Loader workers draw their seeds from the main process when they start. Persistent workers
(``persistent_workers=True``) would otherwise start once per process and carry their streams across
epochs, out of reach of the reseed, so they are restarted at every epoch start: the price of
repeatable epochs is one worker start-up per epoch, as without persistent workers.
"""

from __future__ import annotations

import logging
import random
import warnings
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.combined_loader import _shutdown_workers_and_reset_iterator

log = logging.getLogger(__name__)


def epoch_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed for ``epoch`` of a run seeded with ``seed`` (distinct from ``seed + 1``'s)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def seed_all(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (every device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The process's random state, in types a ``weights_only`` checkpoint load accepts."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy_key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
        "numpy_pos": int(np_state["state"]["pos"]),
        "numpy_gauss": [int(np_state["has_gauss"]), float(np_state["gauss"])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state from :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    has_gauss, gauss_value = state["numpy_gauss"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {
                "key": state["numpy_key"].numpy().astype(np.uint32),
                "pos": state["numpy_pos"],
            },
            "has_gauss": has_gauss,
            "gauss": gauss_value,
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _train_loaders(trainer: pl.Trainer) -> list[Any]:
    combined = trainer.fit_loop._combined_loader
    return list(combined.flattened) if combined is not None else []


def _stop_persistent_workers(trainer: pl.Trainer) -> None:
    """End persistent workers, so the next iterator starts workers seeded from the main process."""
    for loader in _train_loaders(trainer):
        if getattr(loader, "persistent_workers", False):
            _shutdown_workers_and_reset_iterator(loader)


def _set_sampler_epochs(trainer: pl.Trainer, epoch: int) -> None:
    """Tell the train loaders' samplers (``DistributedSampler``) which epoch they serve."""
    for loader in _train_loaders(trainer):
        for sampler in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
            for candidate in (sampler, getattr(sampler, "sampler", None)):
                if hasattr(candidate, "set_epoch"):
                    candidate.set_epoch(epoch)


def _remake_train_iterator(trainer: pl.Trainer) -> Any:
    """Make the train loader's iterator again, as Lightning does at the start of later epochs.

    In the first epoch a process trains, Lightning makes the iterator before any epoch hook runs
    (``FitLoop.setup_data``), i.e. before this callback has reseeded; no batch has been taken
    from it yet.
    """
    _stop_persistent_workers(trainer)
    fetcher = trainer.fit_loop._data_fetcher
    if fetcher is not None:
        iter(fetcher)
    return fetcher


class EpochSeeding(Callback):
    """Reseeds every training epoch from ``(seed, epoch)``; see the module docstring.

    Args:
        seed: The run's seed (``seed_everything``). It is saved in checkpoints, so a resume can
            check that it continues with the same one.

    Attributes:
        checkpoint_seed: The seed stored in the checkpoint a fit resumed from, else ``None``.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.checkpoint_seed: int | None = None
        self._saved_rng: dict[str, Any] | None = None
        self._first_epoch_of_process = True

    def state_dict(self) -> dict[str, Any]:
        # Called while a checkpoint is written: the random state is the one at this moment.
        return {"seed": self.seed, "rng": rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.checkpoint_seed = state_dict.get("seed")
        self._saved_rng = state_dict.get("rng")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._first_epoch_of_process = True
        # Lightning warns that a mid-epoch resume re-reads the epoch's data from its start;
        # on_train_start below replays it to the checkpoint instead.
        warnings.filterwarnings(
            "ignore", message="You're resuming from a checkpoint that ended before the epoch ended"
        )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Resuming within an epoch: replay its loader to where the checkpoint was written."""
        if not getattr(trainer.fit_loop, "restarted_mid_epoch", False):
            return
        epoch = trainer.current_epoch
        done = int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)
        seed_all(epoch_seed(self.seed, epoch))
        _set_sampler_epochs(trainer, epoch)
        fetcher = _remake_train_iterator(trainer)
        skipped = 0
        if fetcher is not None:
            for _ in range(done):
                try:
                    next(fetcher)
                except StopIteration:
                    break
                skipped += 1
            fetcher.fetched -= skipped  # Lightning counts the batches already trained itself
        if self._saved_rng is not None:
            set_rng_state(self._saved_rng)
        self._first_epoch_of_process = False
        log.info(
            "resumed epoch %d after batch %d: replayed its first %d batches", epoch, done, skipped
        )

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seed_all(epoch_seed(self.seed, trainer.current_epoch))
        if self._first_epoch_of_process:
            self._first_epoch_of_process = False
            _remake_train_iterator(trainer)
        else:  # Lightning makes this epoch's iterator after this hook
            _stop_persistent_workers(trainer)
