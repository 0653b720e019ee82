"""Whether a running trial's worker is alive: its owner record and its heartbeat thread.

A worker writes an owner record (machine, pid, process start time) on every trial it runs. A
trial whose owner ran on this machine and whose process is gone (or is a zombie, or is another
process that reused the pid) is dead for sure. Owners on other machines are judged by the
storage's heartbeat alone. ``LITLAB_HOST_ID`` overrides the machine identity (for containers that
share a hostname and pid namespace, or to simulate machines).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

log = logging.getLogger(__name__)

OWNER_ATTR = "litlab:owner"  # {"trial_id", "host", "pid", "start"}
HOST_ENV = "LITLAB_HOST_ID"


def host_id() -> str:
    """This machine (hostname, boot and pid namespace): pids are comparable only within it."""
    if os.environ.get(HOST_ENV):
        return os.environ[HOST_ENV]
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        pass
    return ":".join(parts)


def process_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or ``None`` if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after "pid (comm)": state is field 3
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]  # field 22 of stat: starttime


def owner_record(trial_id: int) -> dict[str, object]:
    """The record a worker writes on a trial it runs."""
    return {
        "trial_id": trial_id,
        "host": host_id(),
        "pid": os.getpid(),
        "start": process_start(os.getpid()),
    }


def owner_is_dead(owner: dict[str, object], trial_id: int) -> bool:
    """True only when the owner is surely dead: it ran here and its process is gone.

    A record inherited by a retried trial (another ``trial_id``) says nothing.
    """
    if owner.get("trial_id") != trial_id or owner.get("host") != host_id():
        return False
    if not Path("/proc").is_dir():
        return False
    start = process_start(int(owner["pid"]))  # type: ignore[arg-type]
    return start is None or start != owner.get("start")


def dead_owner_trial_ids(storage: optuna.storages.BaseStorage, study_id: int) -> list[int]:
    """Running trials of ``study_id`` whose owning worker ran on this machine and is gone."""
    running = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    return [
        t._trial_id
        for t in running
        if isinstance(t.system_attrs.get(OWNER_ATTR), dict)
        and owner_is_dead(t.system_attrs[OWNER_ATTR], t._trial_id)
    ]


class Heartbeat:
    """Records a trial's heartbeat every ``interval`` seconds in a thread, while in a ``with``.

    A failing storage (a lost database) does not raise in the thread: :attr:`error` holds the
    exception once beats have failed for a whole interval, and the worker stops on it.

    Args:
        storage: A storage with heartbeats (``record_heartbeat``).
        trial_id: The running trial.
        interval: Seconds between beats.
    """

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int, interval: float):
        self.storage = storage
        self.trial_id = trial_id
        self.interval = interval
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{trial_id}", daemon=True)

    def _run(self) -> None:
        failing_since: float | None = None
        while not self._stop.is_set():
            try:
                self.storage.record_heartbeat(self.trial_id)  # type: ignore[attr-defined]
                failing_since = None
            except Exception as err:  # noqa: BLE001 - reported through self.error
                now = time.monotonic()
                failing_since = failing_since or now
                log.debug("heartbeat of trial id %d failed: %s", self.trial_id, err)
                if now - failing_since >= self.interval:
                    self.error = err
                    return
                self._stop.wait(min(1.0, self.interval))
                continue
            self._stop.wait(self.interval)

    def __enter__(self) -> Heartbeat:
        self.storage.record_heartbeat(self.trial_id)  # type: ignore[attr-defined]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
