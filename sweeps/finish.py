"""What ``litlab sweep`` prints and leaves behind: a line per trial, then the study's outputs.

At the end: ``trials.csv``, plots, ``best_params.yaml``, and the best trial's checkpoint tested
once on the held-out split in its own ``litlab test`` process.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import optuna
from litlab.sweeps.outputs import write_best_yaml, write_plots, write_trials_csv
from litlab.sweeps.study import FAIL_REASON_ATTR, SURPLUS_ATTR, done_trials
from optuna.trial import FrozenTrial, TrialState

from litlab.runs import launch_run

if TYPE_CHECKING:
    from pathlib import Path

    from litlab.sweeps.cli import Sweep

TESTED_ATTR = "tested_best"  # study attribute: the trial whose checkpoint was tested


def _fmt(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def progress_line(n_trials: int, metric: str):
    """A callback printing one line per trial a worker ends."""

    def show(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.user_attrs.get(SURPLUS_ATTR):
            return
        try:
            best = study.best_trial
            best_text = f"best {best.value:.4f} (#{best.number})"
        except ValueError:
            best_text = "no complete trial yet"
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        params = " ".join(f"{k.split('.')[-1]}={_fmt(v)}" for k, v in trial.params.items())
        reason = str(trial.user_attrs.get(FAIL_REASON_ATTR) or "").splitlines()[:1]
        print(
            f"[trial {trial.number} | {done_trials(study)}/{n_trials}] "
            f"{trial.state.name.lower():8s} {metric}={value}  {best_text}  "
            f"epochs={trial.user_attrs.get('epochs', '?')} "
            f"{trial.user_attrs.get('duration_s', 0):.0f}s  {params}"
            + (f"  ({reason[0][:160]})" if reason else ""),
            flush=True,
        )

    return show


def finish(sweep: Sweep, started: float) -> int:
    """Write the study's outputs and print where they are; 0 when a trial completed."""
    study = sweep.study()
    sweep.study_dir.mkdir(parents=True, exist_ok=True)
    trials_csv = write_trials_csv(sweep.study_dir / "trials.csv", study)
    plots, notes = write_plots(sweep.study_dir, study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    failed = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if not t.user_attrs.get(SURPLUS_ATTR)
    ]
    print(
        f"\nstudy {sweep.study_name}: {len(complete)} complete, {len(pruned)} pruned, "
        f"{len(failed)} failed, {time.time() - started:.0f}s"
    )
    if not complete:
        print("no trial completed; see the log above")
        return 1
    best = study.best_trial
    best_yaml = write_best_yaml(
        sweep.study_dir / "best_params.yaml", sweep.args.config, sweep.overrides, study
    )
    print(
        f"best trial #{best.number}: {sweep.space.metric}={best.value:.4f} "
        f"after {best.user_attrs.get('epochs')} epochs"
    )
    for key, value in best.params.items():
        print(f"  {key} = {_fmt(value)}")
    epochs = sum(int(t.user_attrs.get("epochs") or 0) for t in complete + pruned)
    print(f"epochs trained in all: {epochs}")
    ckpt = best.user_attrs.get("best_checkpoint")
    if not sweep.args.no_test_best and ckpt and study.user_attrs.get(TESTED_ATTR) != best.number:
        _test_best(sweep, best_yaml, ckpt)
        study.set_user_attr(TESTED_ATTR, best.number)
    print(f"\nbest config:  {best_yaml}   (litlab fit --config {best_yaml})")
    print(f"trials table: {trials_csv}")
    for plot in plots:
        print(f"plot:         {plot}")
    for note in notes:
        print(f"note:         {note}")
    print(f"trial runs:   {sweep.study_dir}/trial-*/ (W&B group {sweep.study_name!r})")
    return 0


def _test_best(sweep: Sweep, best_yaml: Path, ckpt: str) -> None:
    """Test the best checkpoint once on the held-out test split, in its own process."""
    run_dir = sweep.study_dir / "best-test"
    print(f"\ntesting the best trial's checkpoint on the held-out test split: {ckpt}", flush=True)
    proc = launch_run(
        [
            "test",
            "--config",
            str(best_yaml),
            f"--ckpt_path={ckpt}",
            "--trainer.enable_progress_bar=false",
            "--wandb_mode=disabled",
        ],
        run_dir,
    )
    outcome = proc.wait()
    if outcome.returncode != 0:
        print(f"testing failed ({outcome.describe()}); see {proc.log_path}")
        return
    table = [line for line in proc.log_tail(200).splitlines() if "test/" in line]
    print("\n".join(table) or f"(no test metrics in {proc.log_path})")
