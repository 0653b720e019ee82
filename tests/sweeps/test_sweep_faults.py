"""Sweeps that meet faults: kill -9 at any moment, two commands on one study, a diverged trial."""

from __future__ import annotations

import csv
from pathlib import Path

import optuna
import yaml
from litlab.sweeps.storage import make_storage
from optuna.trial import TrialState


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def _assert_exact(study: optuna.Study, n: int) -> None:
    """Exactly ``n`` finished trials, none waiting or running, no parameter set twice."""
    finished = _finished(study)
    assert len(finished) == n, [(t.number, t.state.name) for t in study.trials]
    left = [t for t in study.trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]
    assert not left, [(t.number, t.state.name) for t in left]
    assert len({tuple(sorted(t.params.items())) for t in finished}) == n


def test_kill_minus_nine_mid_trial_and_in_the_last_trial_then_rerun(rig):
    n = 2
    # 1. A --workers 2 sweep killed mid-trial: its group dies, and so do workers and fits.
    first = rig.start(rig.argv(n, "--workers", "2"))
    rig.wait_until(lambda: len(rig.running_with_child()) == 2, 240, "two trials running")
    below = rig.kill(first)
    assert len(below) >= 4  # two workers, each with a `litlab fit` child
    rig.wait_until(lambda: rig.all_dead(below), 30, "workers and fits to die with the parent")
    assert [t.state for t in rig.load().trials] == [TrialState.RUNNING] * 2

    # 2. The same command, one worker: the dead trials are failed and retried at once; it is
    #    killed again while it runs the last trial of the budget.
    second = rig.start(rig.argv(n))

    def last_trial_running() -> bool:
        study = rig.load()
        return len(_finished(study)) == n - 1 and bool(rig.running_with_child())

    rig.wait_until(last_trial_running, 300, "the last trial to run")
    below = rig.kill(second)
    rig.wait_until(lambda: rig.all_dead(below), 30, "the fit to die with its worker")

    # 3. Once more: it ends with exactly n finished trials and nothing left over.
    code, log = rig.run(rig.argv(n))
    assert code == 0, log[-3000:]
    study = rig.load()
    _assert_exact(study, n)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [0, 1, 3]  # both killed at once, then the last one
    gone = "worker process on this machine is gone"
    assert all(gone in t.user_attrs["fail_reason"] for t in failed)
    # Killed trials are queued again once: #0 and #1 came back as #2 and #3; #3, itself a retry
    # of #1, was not queued a third time, and a fresh trial took its place.
    assert {t.number: t.system_attrs.get("retry_history") for t in study.trials[2:4]} == {
        2: [0],
        3: [1],
    }
    assert not any(3 in t.system_attrs.get("retry_history", []) for t in study.trials)
    rows = list(csv.DictReader((rig.out / rig.study / "trials.csv").open()))
    assert sorted(r["state"] for r in rows) == ["COMPLETE"] * n + ["FAIL"] * 3


def test_two_commands_on_one_journal_share_the_budget(rig):
    n = 2
    # Trial 0 reports its epoch only once trial 1 has started, so the second command, started
    # while the first runs trial 0, takes trial 1 whatever the load: each command runs one.
    argv = rig.argv(n, "--pruner", "tiny_pruners.TrialZeroWaitsForTrialOne")
    first = rig.start(argv)
    rig.wait_until(lambda: rig.running_with_child(), 240, "the first command's trial")
    second = rig.start(argv)
    for proc in (first, second):
        assert proc.wait(400) == 0, proc.log_path.read_text()[-3000:]
    study = rig.load()
    _assert_exact(study, n)
    assert not [
        t for t in study.trials if t.state == TrialState.FAIL and not t.user_attrs.get("surplus")
    ]
    workers = {t.user_attrs["sampler_seed"] for t in _finished(study)}
    assert len(workers) == 2  # both commands ran trials, each with its own sampler seed


def test_a_diverged_trial_fails_and_is_never_best_and_nothing_is_left_queued(rig):
    rig.space = {
        "metric": "val/dice_liver",
        "direction": "maximize",
        "params": {"model.lr": {"type": "categorical", "choices": [1.0e-3, 1.0e30]}},
    }
    # The study is created and three trials queued before a sweep of one: the first diverges,
    # the second meets the budget. The third would wait forever once no worker starts a trial
    # (as a retry queued while another worker started a fresh trial in its place, at the cap, or
    # a trial queued by hand): the worker that finds the budget met fails it as surplus.
    rig.journal.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=rig.study, storage=make_storage(str(rig.journal)), direction="maximize"
    )
    for lr in (1.0e30, 1.0e-3, 1.0e-3):
        study.enqueue_trial({"model.lr": lr})
    code, log = rig.run(rig.argv(1))
    assert code == 0, log[-3000:]
    study = rig.load()
    _assert_exact(study, 1)
    diverged, good, queued = study.trials  # a diverged trial is not retried
    assert diverged.state == TrialState.FAIL and "diverged" in diverged.user_attrs["fail_reason"]
    assert good.state == TrialState.COMPLETE and study.best_trial.number == good.number
    best = yaml.safe_load((rig.out / rig.study / "best_params.yaml").read_text())
    assert best["model"]["init_args"]["lr"] == 1.0e-3
    assert Path(diverged.user_attrs["run_dir"], "result.json").is_file()
    assert queued.state == TrialState.FAIL and queued.user_attrs["surplus"]
    assert "budget" in queued.user_attrs["fail_reason"] and "run_dir" not in queued.user_attrs
