"""One Optuna trial = one ``litlab fit`` of the preset with sampled overrides."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import optuna
from lightning.pytorch.callbacks import Callback, EarlyStopping
from litlab.sweeps.space import SearchSpace, override_args
from litlab.sweeps.study import SURPLUS_ATTR, over_cap
from optuna_integration import PyTorchLightningPruningCallback

log = logging.getLogger(__name__)


class SurplusTrial(Exception):
    """Raised for a trial beyond the study-wide cap; it is recorded as failed and does no work."""


class TrialFailed(RuntimeError):
    """A trial that ran but gave no usable value (metric never logged, or NaN): recorded as failed."""


class MetricHistory(Callback):
    """Records the objective metric, and every logged ``val/*`` value, after each validation."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.values: list[float] = []
        self.val_metrics: list[dict[str, float]] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        if self.metric in trainer.callback_metrics:
            self.values.append(float(trainer.callback_metrics[self.metric]))
            self.val_metrics.append(metrics)


class Objective:
    """Callable objective for ``study.optimize``.

    Args:
        config: Preset name or YAML path.
        overrides: User overrides applied to every trial (``--trainer.max_epochs=3`` ...).
        space: The search space (already without user-fixed parameters).
        study_dir: Folder for trial run folders (``trial-0007/``).
        study_name: W&B group for the trials.
        n_trials: Study-wide cap on trials (shared by all workers).
    """

    def __init__(
        self,
        config: str,
        overrides: list[str],
        space: SearchSpace,
        study_dir: Path,
        study_name: str,
        n_trials: int,
    ) -> None:
        self.config = config
        self.overrides = overrides
        self.space = space
        self.study_dir = study_dir
        self.study_name = study_name
        self.n_trials = n_trials

    def trial_args(self, trial_number: int, values: dict[str, Any]) -> list[str]:
        """The ``litlab fit`` arguments of one trial; user overrides win over sampled values."""
        return [
            "--config",
            self.config,
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            *override_args(values),
            *self.overrides,
            f"--trainer.default_root_dir={self.study_dir / f'trial-{trial_number:04d}'}",
            f"--wandb_group={self.study_name}",
            f"--preset_name={self.study_name}",
            "--test_after_fit=false",
        ]

    def __call__(self, trial: optuna.Trial) -> float:
        from litlab.cli import run_cli  # the CLI imports sweeps lazily; avoid a cycle at import

        if over_cap(trial.study, trial, self.n_trials):
            trial.set_user_attr(SURPLUS_ATTR, True)
            trial.study.stop()
            raise SurplusTrial(f"trial {trial.number} is beyond the cap of {self.n_trials} trials")
        values = self.space.suggest(trial)
        history = MetricHistory(self.space.metric)
        pruning = PyTorchLightningPruningCallback(trial, monitor=self.space.metric)
        start = time.perf_counter()
        cli = None
        try:
            cli = run_cli(
                ["fit", *self.trial_args(trial.number, values)], extra_callbacks=[history, pruning]
            )
        finally:
            self._record(trial, cli, history, time.perf_counter() - start)
            _finish_wandb()
        if not history.values:
            raise TrialFailed(
                f"trial {trial.number}: metric {self.space.metric!r} was never logged"
            )
        value = history.values[self._kept_epoch(cli, history)]
        if not math.isfinite(value):
            raise TrialFailed(f"trial {trial.number}: {self.space.metric} is {value} (diverged)")
        return value

    def _kept_epoch(self, cli: Any, history: MetricHistory) -> int:
        """Index of the epoch whose model the trial keeps.

        That is the checkpoint's epoch (for the liver preset, the best val loss, as the paper
        keeps), so the trial's value describes the model in its ``best.ckpt``. Without a
        checkpoint monitor, it is the epoch with the best objective metric.
        """
        ckpt = cli.trainer.checkpoint_callback if cli is not None else None
        monitor = getattr(ckpt, "monitor", None)
        if monitor and all(monitor in m for m in history.val_metrics):
            series = [m[monitor] for m in history.val_metrics]
            pick = min if ckpt.mode == "min" else max
        else:
            series = history.values
            pick = min if self.space.direction == "minimize" else max
        finite = [v for v in series if math.isfinite(v)] or series
        return series.index(pick(finite))

    def _record(
        self, trial: optuna.Trial, cli: Any, history: MetricHistory, seconds: float
    ) -> None:
        trial.set_user_attr("duration_s", round(seconds, 2))
        trial.set_user_attr("epochs", len(history.values))
        trial.set_user_attr("run_dir", str(self.study_dir / f"trial-{trial.number:04d}"))
        if history.values:
            best_epoch = self._kept_epoch(cli, history)
            trial.set_user_attr("kept_epoch", best_epoch)
            for name, value in history.val_metrics[best_epoch].items():
                trial.set_user_attr(name, round(value, 6))
        if cli is not None:
            trainer = cli.trainer
            stopper = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
            trial.set_user_attr(
                "early_stopped", bool(stopper is not None and stopper.stopped_epoch > 0)
            )
            ckpt = trainer.checkpoint_callback
            if ckpt is not None and ckpt.best_model_path:
                trial.set_user_attr("best_checkpoint", ckpt.best_model_path)


def _finish_wandb() -> None:
    """Close the trial's W&B run so the next trial starts its own (also after a pruned fit)."""
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish(quiet=True)
    except Exception as err:  # noqa: BLE001 - logging must never fail a trial
        log.debug("wandb.finish failed: %s", err)
