"""Helpers for sweep tests: tiny trials, real ``litlab sweep`` processes, process-tree checks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytest
import yaml
from litlab.sweeps.liveness import process_start
from litlab.sweeps.storage import make_storage
from optuna.trial import TrialState

from tests.tiny_liver import TINY_LIVER

# The tiny liver fit, one epoch a trial.
TINY = [*TINY_LIVER, "--trainer.max_epochs=1"]

PRUNER_MODULE = '''
import time

import optuna


class PruneTrialOne(optuna.pruners.BasePruner):
    """Deterministic: prunes trial #1 at its first report and nothing else."""

    def prune(self, study, trial):
        return trial.number == 1


class TrialZeroWaitsForTrialOne(optuna.pruners.BasePruner):
    """Never prunes; trial #0 reports only once trial #1 has started (four minutes at most)."""

    def prune(self, study, trial):
        deadline = time.monotonic() + 240
        while trial.number == 0 and len(study.get_trials(deepcopy=False)) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("trial 1 did not start within 240 s")
            time.sleep(0.2)
        return False
'''


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _log_size(run_dir: str | None) -> int:
    log = Path(run_dir or "/nonexistent", "fit.log")
    return log.stat().st_size if log.is_file() else 0


def wait_until(predicate: Callable[[], object], deadline_s: float, what: str) -> object:
    """Poll ``predicate`` until it is truthy; fail the test after ``deadline_s`` seconds."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {deadline_s:.0f}s waiting for {what}")


@dataclass
class SweepRig:
    """Runs ``litlab sweep`` processes on tiny trials in one temporary folder."""

    root: Path
    study: str = "tiny"
    space: dict = field(
        default_factory=lambda: {
            "metric": "val/dice_liver",
            "direction": "maximize",
            "params": {"model.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        }
    )
    procs: list[subprocess.Popen] = field(default_factory=list)
    storages: dict[str, object] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.root / "sweeps"

    @property
    def journal(self) -> Path:
        return self.out / f"{self.study}.journal"

    def argv(self, n_trials: int, *extra: str, storage: str | None = None) -> list[str]:
        space_file = self.root / "space.yaml"
        space_file.write_text(yaml.safe_dump(self.space))
        return [
            "--config",
            "liver-deeplabv3plus",
            "--sampler",
            "random",
            "--n-trials",
            str(n_trials),
            "--study-name",
            self.study,
            "--space",
            str(space_file),
            "--output-dir",
            str(self.out),
            "--no-test-best",
            "--pruner",
            "none",
            *(["--storage", storage] if storage else []),
            *TINY,
            *extra,
        ]

    def env(self, **extra: str) -> dict[str, str]:
        (self.root / "tiny_pruners.py").write_text(PRUNER_MODULE)
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(self.root), os.environ.get("PYTHONPATH")])
            ),
            "OMP_NUM_THREADS": "1",
            "LITLAB_TEST_THREADS": "1",
            **extra,
        }

    def start(self, argv: list[str], cwd: Path | None = None, **env: str) -> subprocess.Popen:
        """``litlab sweep`` in its own session (as a user's shell would start it)."""
        cwd = cwd or self.root
        log = (cwd / f"sweep-{len(self.procs)}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "litlab.cli", "sweep", *argv],
            cwd=cwd,
            env=self.env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.log_path = Path(log.name)  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def run(self, argv: list[str], timeout: float = 400, **env: str) -> tuple[int, str]:
        proc = self.start(argv, **env)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            raise
        return code, proc.log_path.read_text()  # type: ignore[attr-defined]

    def load(self, storage: str | None = None) -> optuna.Study:
        spec = storage or str(self.journal)
        if spec not in self.storages:  # one connection pool per database for all the polling
            self.storages[spec] = make_storage(spec, 60)
        return optuna.load_study(study_name=self.study, storage=self.storages[spec])

    def running_with_child(self, storage: str | None = None) -> list[optuna.trial.FrozenTrial]:
        """Running trials whose ``litlab fit`` child has started (it has written to its log)."""
        try:
            trials = self.load(storage).get_trials(states=(TrialState.RUNNING,))
        except (KeyError, ValueError):
            return []
        return [t for t in trials if _log_size(t.user_attrs.get("run_dir")) > 0]

    def kill(self, proc: subprocess.Popen) -> list[int]:
        """SIGKILL ``proc``'s process group; returns the pids that were below it."""
        below = descendants(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        return below

    wait_until = staticmethod(wait_until)

    @staticmethod
    def all_dead(pids: list[int]) -> bool:
        """Whether every pid is gone (or a zombie: dead, not yet reaped)."""
        return all(process_start(pid) is None for pid in pids)

    def cleanup(self) -> None:
        for proc in self.procs:
            for pid in [proc.pid, *descendants(proc.pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


@pytest.fixture
def rig(tmp_path: Path):
    rig = SweepRig(tmp_path)
    yield rig
    rig.cleanup()
