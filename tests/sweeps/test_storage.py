"""Study storage: damaged journals refused untouched, heartbeats, dead owners, one retry."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time

import optuna
import pytest
from litlab.sweeps import cli as sweep_cli
from litlab.sweeps.liveness import OWNER_ATTR, Heartbeat, owner_record
from litlab.sweeps.storage import DamagedJournal, make_storage, masked
from litlab.sweeps.study import fail_stale_trials, retry_trial
from optuna.trial import TrialState


def _journal_with_trials(path, n=2):
    study = optuna.create_study(study_name="tiny", storage=make_storage(str(path), 60))
    for _ in range(n):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        study.tell(trial, 0.5)
    return path


@pytest.mark.parametrize("damage", ["cut_off", "garbage"])
def test_damaged_journal_stops_naming_file_and_line_and_is_left_untouched(tmp_path, damage, capsys):
    journal = _journal_with_trials(tmp_path / "sweeps" / "tiny.journal")
    lines = journal.read_bytes().splitlines(keepends=True)
    if damage == "cut_off":  # the last record cut off mid-line, as a full disk leaves it
        journal.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
        bad_line = len(lines)
    else:  # a garbage line in the middle
        journal.write_bytes(b"".join(lines[:2]) + b"\x00\x17 not json\n" + b"".join(lines[2:]))
        bad_line = 3
    digest = hashlib.sha256(journal.read_bytes()).hexdigest()

    code = sweep_cli.main(
        ["--config", "liver-deeplabv3plus", "--study-name", "tiny", "--n-trials", "3",
         "--output-dir", str(tmp_path / "sweeps")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert f"{journal} is damaged: line {bad_line}" in err
    assert f"head -n {bad_line - 1}" in err and "Traceback" not in err
    assert hashlib.sha256(journal.read_bytes()).hexdigest() == digest  # nothing appended
    with pytest.raises(DamagedJournal):
        make_storage(str(journal))


def _running_trial(storage):
    study = optuna.create_study(study_name="s", storage=storage, load_if_exists=True)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    return study, trial


def test_journal_heartbeat_keeps_a_live_trial_and_fails_a_silent_one(tmp_path):
    storage = make_storage(str(tmp_path / "s.journal"), heartbeat=1, stale_callback=retry_trial)
    study, trial = _running_trial(storage)
    with Heartbeat(storage, trial._trial_id, interval=1):
        time.sleep(2.5)  # longer than the grace period: only the beats keep it alive
        assert fail_stale_trials(study) == []
    deadline = time.monotonic() + 15  # silent now: stale after the 2 s grace period
    while not (failed := fail_stale_trials(study)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert failed == [trial.number]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]  # retried with the same parameters
    assert "no heartbeat" in study.trials[0].user_attrs["fail_reason"]
    assert study.trials[1].params == study.trials[0].params


def test_a_dead_local_owner_fails_at_once_and_a_trial_is_retried_only_once(tmp_path):
    storage = make_storage(str(tmp_path / "s.journal"), heartbeat=60, stale_callback=retry_trial)
    study, trial = _running_trial(storage)
    # A live owner (this process) is never touched, however often others look.
    storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, owner_record(trial._trial_id))
    assert fail_stale_trials(study) == []
    # The owner recorded is a process that has exited: the trial is failed without waiting.
    gone = subprocess.Popen([sys.executable, "-c", "import os; print(os.getpid())"])
    gone.wait()
    record = {**owner_record(trial._trial_id), "pid": gone.pid}
    storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, record)
    assert fail_stale_trials(study) == [0]
    assert "worker process on this machine is gone" in study.trials[0].user_attrs["fail_reason"]

    # The retry inherits the dead owner's record, which names another trial: not stale.
    retry = study.ask()
    assert retry.number == 1 and retry.params == study.trials[0].params
    assert fail_stale_trials(study) == []
    # When the retry's worker dies too, it is failed and not queued a third time.
    storage.set_trial_system_attr(
        retry._trial_id, OWNER_ATTR, {**record, "trial_id": retry._trial_id}
    )
    assert fail_stale_trials(study) == [1]
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.FAIL]


def test_masked_urls_hide_the_password():
    assert masked("postgresql://litlab:s3cret@db:5432/optuna") == (
        "postgresql://litlab:***@db:5432/optuna"
    )
    assert masked("runs/sweeps/x.journal") == "runs/sweeps/x.journal"
