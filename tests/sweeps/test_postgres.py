"""One study on a real PostgreSQL server (pgserver): two machines, a lost database, secrets."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import yaml
from optuna.trial import TrialState

pgserver = pytest.importorskip("pgserver")

PASSWORD = "pw-" + uuid.uuid4().hex[:12]  # must never be written anywhere


@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL server for this module, and a role with a password.

    Its folder is a short path of its own: as root, pgserver runs the server as a `pgserver`
    user, which cannot enter pytest's private temporary folders, and socket paths are short.
    """
    root = Path(tempfile.mkdtemp(prefix="litlab-pg-"))
    root.chmod(0o755)
    server = pgserver.get_server(root / "data", cleanup_mode="delete")
    server.psql(f"CREATE ROLE litlab LOGIN PASSWORD '{PASSWORD}';")
    yield server
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def _database(server, name: str) -> str:
    server.psql(f"CREATE DATABASE {name} OWNER litlab;")
    socket_dir = server.get_uri().rpartition("host=")[2]
    return f"postgresql://litlab:{PASSWORD}@/{name}?host={socket_dir}"


def _no_secret_below(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), f"password written to {path}"


# A worker opening the study: the first to use a database creates its tables.
OPEN_STUDY = """
import sys, optuna
from litlab.sweeps.storage import make_storage
optuna.create_study(
    study_name="s", storage=make_storage(sys.argv[1], 1), load_if_exists=True, direction="maximize"
)
"""


def test_workers_opening_a_new_database_at_once_all_open_it(postgres):
    # They raced to create the tables: PostgreSQL refused the loser's (duplicate key in
    # pg_type_typname_nsp_index), and that worker died at start.
    url = _database(postgres, "opened_at_once")
    workers = [
        subprocess.Popen([sys.executable, "-c", OPEN_STUDY, url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [worker.communicate(timeout=120)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], errors


def test_two_machines_share_a_study_and_a_dead_machines_trial_is_retried(rig, postgres):
    url = _database(postgres, "two_machines")
    n = 3
    machines = {name: rig.root / name for name in ("a", "b")}
    for folder in machines.values():
        folder.mkdir()
    # Two `litlab sweep` process groups, own working folders and "hosts", one study and URL;
    # b passes the URL in the environment, a on its command line.
    argv = rig.argv(n, "--heartbeat", "1", "--output-dir", "runs/sweeps", "--wandb_mode=offline")
    a = rig.start([*argv, "--storage", url], cwd=machines["a"], LITLAB_HOST_ID="machine-a")
    b = rig.start(
        argv, cwd=machines["b"], LITLAB_HOST_ID="machine-b", LITLAB_SWEEP_STORAGE=url,
        WANDB_MODE="offline",
    )  # fmt: skip

    def a_runs_a_trial():
        return [
            t for t in rig.running_with_child(url) if t.user_attrs["worker"].startswith("machine-a")
        ]

    (victim,) = rig.wait_until(a_runs_a_trial, 240, "machine a to run a trial")
    os.killpg(a.pid, signal.SIGKILL)  # machine a is gone: no heartbeat from now on
    killed_at = time.time()
    assert b.wait(400) == 0, b.log_path.read_text()[-3000:]

    study = rig.load(url)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == n
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert len({t.params["model.lr"] for t in finished}) == n  # none duplicated
    (lost,) = [t for t in study.trials if t.state == TrialState.FAIL]
    assert lost.number == victim.number and "no heartbeat" in lost.user_attrs["fail_reason"]
    (retry,) = [t for t in finished if t.system_attrs.get("failed_trial") == lost.number]
    assert retry.params == lost.params and retry.user_attrs["worker"].startswith("machine-b")
    failed_after = lost.datetime_complete.timestamp() - killed_at
    started_after = retry.datetime_start.timestamp() - killed_at
    print(
        f"\nworker death -> trial failed as stale {failed_after:.1f} s, retry started "
        f"{started_after:.1f} s (heartbeat 1 s, grace 2 s; b finishes its own trial first)"
    )

    out = machines["b"] / "runs" / "sweeps" / rig.study
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert sorted(r["state"] for r in rows) == ["COMPLETE"] * n + ["FAIL"]
    best = yaml.safe_load((out / "best_params.yaml").read_text())
    assert best["model"]["init_args"]["lr"] == pytest.approx(study.best_trial.params["model.lr"])
    assert list((out / f"trial-{retry.number:04d}" / "wandb").glob("offline-run-*/run-*.wandb"))
    for folder in machines.values():  # logs, trials.csv, best_params.yaml, W&B runs
        _no_secret_below(folder)


@pytest.mark.slow  # 3 trial processes and a server restart
def test_losing_the_database_stops_clearly_and_the_same_command_resumes(rig, postgres):
    url = _database(postgres, "lost_db")
    argv = rig.argv(2, "--heartbeat", "1", "--storage", url)
    first = rig.start(argv)
    rig.wait_until(lambda: rig.running_with_child(url), 240, "a trial to run")
    pgserver.pg_ctl(["-w", "stop", "-m", "fast"], pgdata=postgres.pgdata, user=postgres.system_user)
    try:
        code = first.wait(60)
        log = first.log_path.read_text()
        assert code == 1, log[-3000:]
        assert "lost the study storage postgresql://litlab:***@/lost_db" in log
        assert "run the same command again" in log and PASSWORD not in log
        assert "Traceback" not in log
    finally:
        postgres.ensure_postgres_running()  # the database is back

    code, log = rig.run(argv)
    assert code == 0, log[-3000:]
    study = rig.load(url)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.COMPLETE) == 2 and TrialState.RUNNING not in states
    (interrupted,) = [t for t in study.trials if t.state == TrialState.FAIL]
    assert any(
        t.params == interrupted.params for t in study.trials if t.state == TrialState.COMPLETE
    )
    _no_secret_below(rig.root)
