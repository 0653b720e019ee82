"""``litlab db`` starts a PostgreSQL a sweep can use; ``litlab dashboard`` serves a study live."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from litlab.sweeps.storage import make_storage

pytest.importorskip("pgserver")


def _litlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"litlab.{args[0]}", *args[1:]],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _study_with_trials(storage, name: str) -> None:
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("model.lr", 1e-4, 1e-2), n_trials=3)


def _get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return json.loads(response.read())


def _serve_and_read(storage_spec: str) -> list[dict]:
    """Start `litlab dashboard`, read its study list over HTTP, stop it."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "litlab.dashboard", storage_spec, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        last = None
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                studies = _get(port, "/api/studies")["study_summaries"]
                return [
                    {**s, "trials": _get(port, f"/api/studies/{s['study_id']}")["trials"]}
                    for s in studies
                ]
            except OSError as err:
                last = err
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.3)
        raise AssertionError(f"dashboard did not answer on port {port}: {last}")
    finally:
        proc.kill()
        proc.wait(10)


def test_dashboard_serves_a_journal_study_on_loopback(tmp_path):
    journal = tmp_path / "tiny.journal"
    _study_with_trials(make_storage(str(journal)), "tiny")
    studies = _serve_and_read(str(journal))
    assert [(s["study_name"], len(s["trials"])) for s in studies] == [("tiny", 3)]
    missing = _litlab("dashboard", str(tmp_path / "nope.journal"))
    assert missing.returncode == 2 and "no study journal at" in missing.stderr


@pytest.mark.slow  # a second server and dashboard
def test_db_start_gives_a_url_that_a_study_and_the_dashboard_use():
    root = Path(tempfile.mkdtemp(prefix="litlab-db-"))  # short and enterable by the pg user
    root.chmod(0o755)
    data = root / "db"
    try:
        started = _litlab("db", "start", "--dir", str(data))
        assert started.returncode == 0, started.stderr
        url = _litlab("db", "url", "--dir", str(data)).stdout.strip()
        assert url.startswith("postgresql://") and url in started.stdout
        _study_with_trials(url, "on-postgres")
        studies = _serve_and_read(url)
        assert [s["study_name"] for s in studies] == ["on-postgres"]
        stopped = _litlab("db", "stop", "--dir", str(data))
        assert stopped.returncode == 0 and "stopped" in stopped.stdout
        with pytest.raises(Exception):  # noqa: B017 - whichever driver error: it is down
            optuna.load_study(study_name="on-postgres", storage=url)
    finally:
        _litlab("db", "stop", "--dir", str(data))
        shutil.rmtree(root, ignore_errors=True)
