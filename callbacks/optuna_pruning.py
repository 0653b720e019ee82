"""DDP-safe Optuna pruning for a sweep trial that runs as its own ``litlab fit`` process.

Shaped like optuna-integration's ``PyTorchLightningPruningCallback`` (skip the sanity check,
warn when the monitored key is missing, broadcast the decision under DDP) but for any storage,
the journal file included: only global rank 0 opens the study, reports the epoch's value and asks
the pruner; the decision is broadcast so every rank stops after the same epoch. A pruned trial
records the epoch in the trial's system attribute ``litlab:pruned_epoch``, which the sweep worker
reads to tell the study PRUNED.

The storage is read from the ``LITLAB_OPTUNA_STORAGE`` environment variable (a journal path or a
database URL), so a database password never lands in the run's saved config.
"""

from __future__ import annotations

import logging
import os
import warnings

import lightning.pytorch as pl
import optuna
from lightning.pytorch.callbacks import Callback
from litlab.callbacks.trial_keys import PRUNED_ATTR, STORAGE_ENV

log = logging.getLogger(__name__)

__all__ = ["PRUNED_ATTR", "STORAGE_ENV", "OptunaPruning", "open_storage"]
_CONTINUE, _PRUNE, _ERROR = 0, 1, 2


def open_storage(spec: str) -> optuna.storages.BaseStorage | str:
    """A database URL as-is, or a journal file path as a ``JournalStorage`` (no heartbeat)."""
    if "://" in spec:
        return spec
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    return optuna.storages.JournalStorage(
        JournalFileBackend(spec, lock_obj=JournalFileOpenLock(spec))
    )


class OptunaPruning(Callback):
    """Report ``monitor`` to trial ``trial_number`` once per validation epoch; stop when pruned.

    Args:
        study_name: The Optuna study.
        trial_number: The trial this fit is.
        monitor: Logged key reported to the pruner (the sweep's objective).
        pruner: The study's pruner (``None``: report only, never prune).
    """

    def __init__(
        self,
        study_name: str,
        trial_number: int,
        monitor: str,
        pruner: optuna.pruners.BasePruner | None = None,
    ) -> None:
        super().__init__()
        self.study_name = study_name
        self.trial_number = trial_number
        self.monitor = monitor
        self.pruner = pruner or optuna.pruners.NopPruner()
        self.pruned_epoch: int | None = None
        self._trial: optuna.Trial | None = None

    def _open_trial(self) -> optuna.Trial:
        spec = os.environ.get(STORAGE_ENV)
        if not spec:
            raise RuntimeError(
                f"{STORAGE_ENV} is not set: OptunaPruning runs inside a trial launched by "
                "`litlab sweep`, which sets it to the study's storage"
            )
        study = optuna.load_study(
            study_name=self.study_name, storage=open_storage(spec), pruner=self.pruner
        )
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(
            study._study_id, self.trial_number
        )
        return optuna.trial.Trial(study, trial_id)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and self._trial is None:
            self._trial = self._open_trial()

    def _decide(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> int:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            warnings.warn(
                f"'{self.monitor}' is not in the logged metrics "
                f"({', '.join(sorted(trainer.callback_metrics)) or 'none'}), so trial "
                f"{self.trial_number} cannot be pruned; check the sweep's metric name",
                stacklevel=2,
            )
            return _CONTINUE
        assert self._trial is not None
        epoch = pl_module.current_epoch
        self._trial.report(float(value), step=epoch)
        if not self._trial.should_prune():
            return _CONTINUE
        self._trial.storage.set_trial_system_attr(self._trial._trial_id, PRUNED_ATTR, epoch)
        log.info("trial %d pruned after epoch %d", self.trial_number, epoch)
        return _PRUNE

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        decision, error = _CONTINUE, None
        if trainer.is_global_zero:
            try:
                decision = self._decide(trainer, pl_module)
            except Exception as err:  # every rank must reach the broadcast below
                decision, error = _ERROR, err
        decision = trainer.strategy.broadcast(decision, src=0)
        if decision == _ERROR:
            if error is not None:
                raise error
            raise RuntimeError("rank 0 could not report to the Optuna study; see its log")
        if decision == _PRUNE:
            self.pruned_epoch = pl_module.current_epoch
            trainer.should_stop = True
