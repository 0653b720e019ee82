"""A sweep whose trials are 2-process DDP fits (gloo), pruned on rank 0, one W&B run each."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.sweeps.wandb_records import read_wandb_run


def test_ddp_trials_pruned_on_rank_zero_each_with_its_own_wandb_run(rig):
    argv = rig.argv(
        2,
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        "--trainer.max_epochs=2",
        "--wandb_mode=offline",
        "--pruner",
        "tiny_pruners.PruneTrialOne",
    )
    code, log = rig.run(argv, WANDB_MODE="offline")
    assert code == 0, log[-4000:]

    study = rig.load()
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    complete, pruned = study.trials
    # The pruner stopped trial 1 after its first epoch on every rank: one report, one epoch.
    assert pruned.user_attrs["epochs"] == 1 and list(pruned.intermediate_values) == [0]
    assert complete.user_attrs["epochs"] == 2 and list(complete.intermediate_values) == [0, 1]
    assert complete.value == pytest.approx(complete.user_attrs["val/dice_liver"], abs=1e-6)
    for trial in study.trials:
        fit_log = Path(trial.user_attrs["run_dir"], "fit.log").read_text()
        assert "MEMBER: 2/2" in fit_log, fit_log[-2000:]  # rank 1 joined this trial's fit
        assert "litlab sweep" not in fit_log

    # One W&B run per trial: its own id and folder inside the trial's run folder, grouped by
    # study, with the trial number and the sampled values in its config.
    ids = set()
    for trial in study.trials:
        (run_dir,) = Path(trial.user_attrs["run_dir"], "wandb").glob("offline-run-*")
        (run_file,) = run_dir.glob("run-*.wandb")
        run_id, group, config = read_wandb_run(run_file)
        assert run_file.name == f"run-{run_id}.wandb" and group == rig.study
        assert config["trial"] == trial.number and config["study"] == rig.study
        assert config["params"] == trial.params
        ids.add(run_id)
    assert len(ids) == 2
