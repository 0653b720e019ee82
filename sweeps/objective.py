"""One Optuna trial = one ``litlab fit`` child process of the preset with sampled overrides.

The worker samples the parameters, launches the fit through :func:`litlab.runs.launch_run` (the
same code path as a user's ``litlab fit``: its own process group and run folder), keeps the
trial's heartbeat while it runs, then reads ``result.json`` and turns it into the trial's end:
COMPLETE with the kept epoch's objective, PRUNED, or FAIL with a reason.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from litlab.callbacks.trial_keys import PRUNED_ATTR, STORAGE_ENV
from litlab.sweeps.liveness import Heartbeat
from litlab.sweeps.space import SearchSpace, override_args
from optuna.trial import TrialState

from litlab.runs import Outcome, RunProcess, launch_run, read_result

log = logging.getLogger(__name__)

BAD_INPUT_EXIT = 2  # litlab's exit code for bad input: every trial would fail the same way
DIVERGED_EXIT = 3  # litlab fit stopped a diverging run
_POLL_S = 0.25


class StorageLost(RuntimeError):
    """The study storage stopped answering while a trial ran (e.g. the database went down)."""


class BadTrialInput(RuntimeError):
    """A trial stopped on bad input (exit code 2): the sweep's settings must be fixed first."""

    def __init__(self, message: str, log_path: Path | None) -> None:
        super().__init__(message)
        self.log_path = log_path


@dataclass
class TrialEnd:
    """How a trial ended, before it is told to the study.

    Attributes:
        state: COMPLETE, PRUNED or FAIL.
        value: The objective for COMPLETE.
        attrs: User attributes to record (metrics of the kept epoch, epochs, reason ...).
        retry: Queue the parameters again (the process died; not for a diverged trial).
    """

    state: TrialState
    value: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    retry: bool = False


class TrialRunner:
    """Runs trials of one sweep as child processes.

    Args:
        config: Preset name or YAML path.
        overrides: Overrides for every trial (the user's, after any device defaults).
        space: The search space (without user-fixed parameters).
        study_dir: Folder of the trial run folders (``trial-0007/``).
        study_name: The study (also the W&B group).
        storage: Journal path or database URL, passed to the child in the environment.
        pruner: Pruner spec (:func:`litlab.sweeps.study.pruner_spec`) for the child.
        heartbeat: Seconds between heartbeats.
        gpus: ``CUDA_VISIBLE_DEVICES`` of this worker's trials (``None``: inherited).
    """

    def __init__(
        self,
        config: str,
        overrides: list[str],
        space: SearchSpace,
        study_dir: Path,
        study_name: str,
        storage: str,
        pruner: dict[str, Any],
        heartbeat: int,
        gpus: str | None = None,
    ) -> None:
        self.config = config
        self.overrides = overrides
        self.space = space
        self.study_dir = study_dir.resolve()  # run folders in the study, read from anywhere
        self.study_name = study_name
        self.storage = storage
        self.pruner = pruner
        self.heartbeat = heartbeat
        self.gpus = gpus

    def run_dir(self, number: int) -> Path:
        return self.study_dir / f"trial-{number:04d}"

    def fit_args(self, number: int, values: dict[str, Any]) -> list[str]:
        """The ``litlab fit`` command line of one trial; user overrides win over sampled values."""
        pruning = {
            "class_path": "litlab.callbacks.optuna_pruning.OptunaPruning",
            "init_args": {
                "study_name": self.study_name,
                "trial_number": number,
                "monitor": self.space.metric,
                "pruner": self.pruner,
            },
        }
        return [
            "fit",
            "--config",
            self.config,
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            *override_args(values),
            *self.overrides,
            f"--wandb_group={self.study_name}",
            f"--preset_name={self.study_name}",
            "--test_after_fit=false",
            f"--trainer.callbacks+={json.dumps(pruning)}",
        ]

    def child_env(self, trial: optuna.Trial, values: dict[str, Any]) -> dict[str, str]:
        wandb_config = {"study": self.study_name, "trial": trial.number, "params": values}
        return {STORAGE_ENV: self.storage, "LITLAB_WANDB_CONFIG": json.dumps(wandb_config)}

    def run(self, trial: optuna.Trial) -> TrialEnd:
        """Run ``trial`` to its end (the caller tells the study).

        Raises:
            StorageLost: The storage failed during the trial (the child is killed first).
            KeyboardInterrupt: This worker was interrupted (the child is killed first).
        """
        values = self.space.suggest(trial)
        run_dir = self.run_dir(trial.number)
        trial.set_user_attr("run_dir", str(run_dir))
        started = time.perf_counter()
        with Heartbeat(trial.study._storage, trial._trial_id, self.heartbeat) as beat:
            proc = launch_run(
                self.fit_args(trial.number, values),
                run_dir,
                env=self.child_env(trial, values),
                gpus=self.gpus,
            )
            outcome = self._wait(proc, beat)
        end = self._interpret(trial, proc, outcome)
        end.attrs["duration_s"] = round(time.perf_counter() - started, 2)
        end.attrs["exit"] = outcome.describe()
        return end

    def _wait(self, proc: RunProcess, beat: Heartbeat) -> Outcome:
        try:
            while (outcome := proc.poll()) is None:
                if beat.error is not None:
                    proc.kill()
                    raise StorageLost(str(beat.error)) from beat.error
                time.sleep(_POLL_S)
            return outcome
        except BaseException:
            proc.kill()
            raise

    def _interpret(self, trial: optuna.Trial, proc: RunProcess, outcome: Outcome) -> TrialEnd:
        result = read_result(proc.run_dir) or {}
        attrs: dict[str, Any] = {}
        val = result.get("val") or {}
        if result:
            attrs["epochs"] = result.get("epochs")
            attrs["kept_epoch"] = result.get("kept_epoch")
            if result.get("best_model_path"):
                attrs["best_checkpoint"] = result["best_model_path"]
            attrs.update({k: _round(v) for k, v in val.items()})
        code = outcome.returncode
        if code == BAD_INPUT_EXIT:
            raise BadTrialInput(
                f"trial {trial.number} stopped on bad input (exit code 2); every trial would. "
                f"Its log, {proc.log_path}, ends with:\n{proc.log_tail(12)}",
                proc.log_path,
            )
        status = result.get("status")
        if code == DIVERGED_EXIT or status == "diverged":
            detail = result.get("error") or "the run stopped as diverged"
            return TrialEnd(TrialState.FAIL, attrs=_fail(attrs, f"diverged: {detail}"))
        if code != 0 or status != "finished":
            detail = outcome.describe() + (f": {result['error']}" if result.get("error") else "")
            if code == 0:
                detail = f"exit code 0 but no finished result.json in {proc.run_dir}"
            return TrialEnd(TrialState.FAIL, attrs=_fail(attrs, detail), retry=True)
        if (
            trial.study._storage.get_trial(trial._trial_id).system_attrs.get(PRUNED_ATTR)
            is not None
        ):
            return TrialEnd(TrialState.PRUNED, attrs=attrs)
        metric = self.space.metric
        if metric not in val:
            reason = f"{metric} was never logged; logged: {', '.join(sorted(val)) or 'nothing'}"
            return TrialEnd(TrialState.FAIL, attrs=_fail(attrs, reason))
        value = float(val[metric])
        if not math.isfinite(value):
            return TrialEnd(TrialState.FAIL, attrs=_fail(attrs, f"diverged: {metric} is {value}"))
        return TrialEnd(TrialState.COMPLETE, value=value, attrs=attrs)


def _fail(attrs: dict[str, Any], reason: str) -> dict[str, Any]:
    return {**attrs, "fail_reason": reason}


def _round(value: Any) -> Any:
    """Metrics for the study: 6 decimals; NaN/inf as text, which every storage keeps."""
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else str(value)
    return value
