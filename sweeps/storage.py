"""Study storage: a journal file on one machine or a database URL across machines, with heartbeats.

Both kinds record a heartbeat for every running trial and report trials whose heartbeat stopped
as stale, so Optuna's ``fail_stale_trials`` / ``RetryHeartbeatStaleTrialCallback`` work for both:

- a database URL uses Optuna's ``RDBStorage`` heartbeat table;
- a journal file (Optuna has no journal heartbeat) records it as a trial system attribute.

On top of the heartbeat, a trial whose owning worker ran on *this* machine and whose process is
gone is stale at once (:mod:`litlab.sweeps.liveness`), so re-running a killed sweep resumes
without waiting out the grace period. A damaged journal is refused before anything is written.
"""

from __future__ import annotations

import json
import logging
import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from litlab.sweeps.liveness import dead_owner_trial_ids
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

# Optuna warns that heartbeats are meant for Study.optimize; the sweep worker is its equivalent.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
warnings.filterwarnings(
    "ignore",
    message=".*(RetryHeartbeatStaleTrialCallback|heartbeat_interval).*experimental",
    category=optuna.exceptions.ExperimentalWarning,
)
HEARTBEAT_ATTR = "litlab:heartbeat"  # {"trial_id": id, "time": unix seconds}, journal only
StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


class DamagedJournal(ValueError):
    """The journal file has a cut-off or non-JSON line; the message says where and what to do."""


def is_url(storage: str) -> bool:
    return "://" in storage


def masked(storage: str) -> str:
    """The storage for messages: a URL with its password replaced by ``***``."""
    if not is_url(storage):
        return storage
    try:
        from sqlalchemy.engine import make_url

        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL still must not leak a secret
        head, _, tail = storage.partition("://")
        return f"{head}://***@{tail.rpartition('@')[2]}" if "@" in tail else storage


def check_journal(path: Path) -> None:
    """Refuse a journal with a cut-off or non-JSON line, naming the line and the fix.

    Read under the journal's own lock, so a record being appended by a live worker is never
    mistaken for damage.

    Raises:
        DamagedJournal: The first bad line, with how to recover the intact part.
    """
    if not path.is_file():
        return
    lock = JournalFileOpenLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
    finally:
        lock.release()
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        problem = None
        if not line.endswith(b"\n"):
            problem = "is cut off (no end of line)"
        else:
            try:
                json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                problem = f"is not a JSON record ({err.msg if hasattr(err, 'msg') else err})"
        if problem:
            keep = number - 1
            raise DamagedJournal(
                f"study journal {path} is damaged: line {number} {problem}. Nothing was written "
                f"to it. Its first {keep} line(s) are intact; keep a copy and cut it there "
                f"(cp {path} {path}.bak && head -n {keep} {path}.bak > {path}), then run the same "
                "command again: trials recorded after that line are run again. Or start a new "
                "study with another --study-name or --storage."
            )


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with heartbeats, so stale trials are found as in ``RDBStorage``.

    Args:
        path: The journal file.
        heartbeat_interval: Seconds between heartbeats of a running trial.
        grace_period: Seconds without a heartbeat before a trial is stale (default: twice that).
        stale_callback: Called for each trial failed as stale (e.g. Optuna's retry callback).
    """

    def __init__(
        self,
        path: Path,
        heartbeat_interval: int,
        grace_period: int | None = None,
        stale_callback: StaleCallback | None = None,
    ) -> None:
        super().__init__(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period or 2 * heartbeat_interval
        self.stale_callback = stale_callback

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(
            trial_id, HEARTBEAT_ATTR, {"trial_id": trial_id, "time": time.time()}
        )

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = trial.system_attrs.get(HEARTBEAT_ATTR) or {}
            # A retried trial inherits its original's attributes: only its own beats count.
            if beat.get("trial_id") == trial._trial_id:
                last = float(beat["time"])
            elif trial.datetime_start is not None:
                last = trial.datetime_start.timestamp()
            else:
                continue
            if now - last > self.grace_period:
                stale.append(trial._trial_id)
        return sorted(set(stale) | set(dead_owner_trial_ids(self, study_id)))

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
        return self.stale_callback


class LivenessRDBStorage(RDBStorage):
    """``RDBStorage`` whose stale trials also include those of dead workers on this machine."""

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = set(super()._get_stale_trial_ids(study_id))
        return sorted(stale | set(dead_owner_trial_ids(self, study_id)))


def _open_database(
    url: str, heartbeat: int, stale_callback: StaleCallback | None, attempts: int = 5
) -> LivenessRDBStorage:
    """Open (and on first use create) the study tables of the database at ``url``.

    Workers started together on a new database race to create its tables: PostgreSQL refuses
    the loser's (a duplicate type, table or version row) and that worker died at start. The
    tables are there once the winner is done, so the loser opens it again, a few times at most.
    """
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    attempt = 1
    while True:
        try:
            return LivenessRDBStorage(
                url,
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=stale_callback,
                engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
            )
        except (IntegrityError, ProgrammingError) as err:
            if attempt == attempts:
                raise
            log.info("another process is creating the study tables (%s); opening again", err.orig)
            time.sleep(0.2 * attempt + random.random() * 0.3)
            attempt += 1


def make_storage(
    storage: str, heartbeat: int = 60, stale_callback: StaleCallback | None = None
) -> optuna.storages.BaseStorage:
    """Open a study storage with heartbeats.

    Args:
        storage: A database URL (PostgreSQL/MySQL/SQLite) or a journal file path.
        heartbeat: Seconds between heartbeats; a trial is stale after twice that.
        stale_callback: Called for each trial failed as stale.

    Raises:
        DamagedJournal: The journal file is damaged (nothing is written to it).
    """
    if heartbeat < 1:
        raise ValueError(f"--heartbeat must be a whole number of seconds >= 1, got {heartbeat}")
    if is_url(storage):
        return _open_database(storage, heartbeat, stale_callback)
    path = Path(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    check_journal(path)
    return HeartbeatJournalStorage(path, heartbeat, stale_callback=stale_callback)
