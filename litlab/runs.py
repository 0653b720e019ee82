"""A run is a process: launch ``litlab fit`` (or any litlab command) as a child and read its result.

Orchestrators (sweep workers, cv, workflows) call :func:`launch_run` for every unit of work:

- the child gets its own process group, so the whole tree (DDP ranks included) is killed at once;
  when the child ends, what is left of its group gets a bounded while to exit on its own
  (``exit_grace``) before it is killed;
- it dies with its parent: ``PR_SET_PDEATHSIG`` is set before ``exec`` and the child passes it on
  to its own children (Lightning's DDP ranks) through :func:`die_with_parent`; the parent also
  kills every live group when it exits;
- the parent chooses its run folder (``LITLAB_RUN_DIR``, honoured by ``litlab fit``), and the
  child's stdout and stderr go to a log file in it;
- ``gpus`` becomes ``CUDA_VISIBLE_DEVICES``;
- the child starts its own W&B service: a service token in this process's environment
  (``WANDB_SERVICE``, set once this process or one above it started a W&B run) is not passed on.
  A child attached to another process's service hands its run's records to that service, which
  buffers them until it is torn down, so the child's run file can hold no run record after the
  child has ended. A child that owns its service finishes its run and waits for the service to
  write it before it exits;
- the outcome says "exit code N" or "killed by SIGKILL", and :func:`read_result` returns the
  ``result.json`` that ``litlab fit`` writes when it ends.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RUN_DIR_ENV = "LITLAB_RUN_DIR"  # the run folder a parent chose for its child
PARENT_ENV = "LITLAB_PARENT_PID"  # set for children that must die with their parent
RESULT_FILE = "result.json"
LOG_FILE = "fit.log"
WANDB_SERVICE_ENV = "WANDB_SERVICE"  # wandb.env.SERVICE: a W&B service token, never inherited
EXIT_GRACE_S = 10.0  # seconds the rest of a group may take to exit after its leader ended
_PR_SET_PDEATHSIG = 1

_live: dict[int, subprocess.Popen] = {}  # pgid -> process, killed at exit
_live_lock = threading.Lock()
# Loaded once here: the pre-exec hook runs between fork and exec, where loading a library
# could deadlock on a lock another thread held at fork time.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _set_pdeathsig(expected_parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux; a no-op elsewhere)."""
    if _LIBC is None:
        return
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != expected_parent:  # the parent died before prctl took effect
        os._exit(1)


def die_with_parent() -> None:
    """Called at the start of ``litlab``: die with the launching process, if one asked for it.

    A child started by :func:`launch_run` has ``LITLAB_PARENT_PID`` set. The kernel's
    parent-death signal is not inherited by forked children, so each process in the tree sets
    its own, then names itself as the parent its children (DDP ranks) must outlive.
    """
    parent = os.environ.get(PARENT_ENV)
    if not parent or not parent.isdigit():
        return
    _set_pdeathsig(int(parent))
    os.environ[PARENT_ENV] = str(os.getpid())


@dataclass
class Outcome:
    """How a child process ended.

    Attributes:
        returncode: ``Popen.returncode``: the exit code, or minus the signal number.
        seconds: Wall time from launch to exit.
    """

    returncode: int
    seconds: float

    @property
    def signal_name(self) -> str | None:
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"

    def describe(self) -> str:
        """``"exit code 1"`` or ``"killed by SIGKILL"``."""
        name = self.signal_name
        return f"killed by {name}" if name else f"exit code {self.returncode}"


class RunProcess:
    """A launched child process group.

    Args:
        popen: The child (the leader of its own process group).
        log_path: Where its stdout and stderr go (``None``: inherited).
        run_dir: Its run folder, when it is a ``litlab`` run.
        exit_grace: Seconds the rest of the group may take to exit on its own once the child
            has exited, before it is killed.
    """

    def __init__(
        self,
        popen: subprocess.Popen,
        log_path: Path | None,
        run_dir: Path | None,
        exit_grace: float = EXIT_GRACE_S,
    ):
        self.popen = popen
        self.pid = popen.pid
        self.log_path = log_path
        self.run_dir = run_dir
        self.exit_grace = exit_grace
        self.started = time.monotonic()

    def poll(self) -> Outcome | None:
        """The outcome if the child has exited, else ``None``.

        Once the child has exited, the rest of its group (DDP ranks, helpers) gets up to
        ``exit_grace`` seconds to exit on its own; whatever is left then is killed.
        """
        code = self.popen.poll()
        if code is None:
            return None
        seconds = time.monotonic() - self.started
        left = wait_for_group(self.pid, self.exit_grace)
        if left:
            log.info(
                "pid %d exited; %d process(es) of its group still ran %.0f s later: killing %s",
                self.pid,
                len(left),
                self.exit_grace,
                " ".join(map(str, left)),
            )
        self.kill()  # ranks or helpers the child left behind
        return Outcome(code, seconds)

    def wait(self, timeout: float | None = None) -> Outcome:
        """Wait for the child; ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        self.popen.wait(timeout)
        outcome = self.poll()
        assert outcome is not None
        return outcome

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group (ignored if it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group and forget it."""
        self.signal(signal.SIGKILL)
        with _live_lock:
            _live.pop(self.pid, None)

    def stop(self, grace: float = 10.0) -> Outcome:
        """SIGTERM the group, then SIGKILL it after ``grace`` seconds; returns the outcome."""
        self.signal(signal.SIGTERM)
        try:
            return self.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.wait()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the child's log (empty when it has none)."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def start_process(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    cwd: Path | None = None,
) -> RunProcess:
    """Start ``cmd`` in its own process group, dying with this process.

    Args:
        cmd: The command line.
        env: Extra environment variables (on top of this process's).
        log_path: File for stdout and stderr (appended); ``None`` inherits this process's.
        cwd: Working directory.
    """
    parent = os.getpid()
    full_env = {**os.environ, **(env or {}), PARENT_ENV: str(parent), "PYTHONUNBUFFERED": "1"}
    full_env.pop(WANDB_SERVICE_ENV, None)  # the child's W&B run is written by its own service
    out = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = log_path.open("ab")
    try:
        popen = subprocess.Popen(
            cmd,
            env=full_env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=True,
            preexec_fn=lambda: _set_pdeathsig(parent),  # runs in the child, before exec
        )
    finally:
        if out is not None:
            out.close()
    with _live_lock:
        _live[popen.pid] = popen
    return RunProcess(popen, log_path, None)


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (zombies, dead but unreaped, left out).

    Read from ``/proc`` on Linux; elsewhere ``[pgid]`` while any member of the group can still
    be signalled, else ``[]``.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # the process ended meanwhile
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def wait_for_group(pgid: int, seconds: float, interval: float = 0.05) -> list[int]:
    """Wait up to ``seconds`` for process group ``pgid`` to end; returns who is still in it."""
    deadline = time.monotonic() + seconds
    while (left := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(interval)
    return left


def litlab_command(*args: str) -> list[str]:
    """``python -m litlab.cli <args>`` with this interpreter (DDP ranks re-run the same line)."""
    return [sys.executable, "-m", "litlab.cli", *args]


def launch_run(
    argv: list[str],
    run_dir: Path,
    *,
    env: dict[str, str] | None = None,
    gpus: str | None = None,
) -> RunProcess:
    """Launch ``litlab <argv>`` (e.g. ``["fit", "--config", ...]``) writing to ``run_dir``.

    Args:
        argv: The command after ``litlab``.
        run_dir: The run folder: ``LITLAB_RUN_DIR`` for the child, which logs to
            ``run_dir/fit.log``.
        env: Extra environment variables.
        gpus: Comma-separated GPU ids for ``CUDA_VISIBLE_DEVICES`` (``None``: inherited).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    child_env = {**(env or {}), RUN_DIR_ENV: str(run_dir)}
    if gpus is not None:
        child_env["CUDA_VISIBLE_DEVICES"] = gpus
    proc = start_process(litlab_command(*argv), env=child_env, log_path=run_dir / LOG_FILE)
    proc.run_dir = run_dir
    log.debug("launched pid %d in %s: litlab %s", proc.pid, run_dir, " ".join(argv))
    return proc


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The ``result.json`` a finished ``litlab fit`` wrote in ``run_dir``, or ``None``.

    Keys: ``status`` (finished, diverged or failed), ``monitor``, ``mode``, ``best_score``,
    ``best_model_path``, ``kept_epoch``, ``val`` (the kept epoch's val metrics), ``test``,
    ``epochs``, ``error``. Non-finite numbers are written as JSON ``NaN``/``Infinity``.
    """
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        log.warning("%s is not valid JSON (%s); treating the run as failed", path, err)
        return None


def gpu_slots(gpus: str, per_slot: int, option: str = "--gpus-per-trial") -> list[str]:
    """``gpu_slots("0,1,2,3", 2) -> ["0,1", "2,3"]``: the GPU set of each concurrent run.

    Args:
        gpus: Comma-separated GPU ids.
        per_slot: GPUs per run.
        option: How the caller's command spells ``per_slot``, for the error message.

    Raises:
        ValueError: ``per_slot`` is not positive or does not divide the number of GPUs.
    """
    ids = [g.strip() for g in gpus.split(",") if g.strip()]
    if per_slot < 1:
        raise ValueError(f"{option} must be >= 1, got {per_slot}")
    if not ids or len(ids) % per_slot:
        raise ValueError(
            f"--gpus {gpus!r} holds {len(ids)} GPU(s), not a multiple of {option} "
            f"{per_slot}: list a multiple of {per_slot} ids, or change {option}"
        )
    return [",".join(ids[i : i + per_slot]) for i in range(0, len(ids), per_slot)]


@atexit.register
def _kill_live_groups() -> None:
    with _live_lock:
        groups = list(_live)
        _live.clear()
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
