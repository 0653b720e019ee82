"""Runs as the steps of a workflow: each one's state read from its folder, resumed in place, run.

A step is one ``litlab`` command with the run folder it owns (``Step``). Its state comes from the
folder alone, so a workflow started again finds what is done:

- ``finished`` / ``diverged`` / ``failed``: the ``result.json`` the run wrote when it ended
  (:func:`litlab.runs.read_result`);
- ``interrupted``: no result, but a ``checkpoints/last.ckpt``: the command is run again with
  ``--ckpt_path`` on it, which continues the run in its folder (``litlab fit``'s resume in place);
- ``new``: nothing yet.

:func:`run_steps` launches steps through :func:`litlab.runs.launch_run` on a list of slots (GPU
sets, or ``None`` for a CPU process), as many at once as there are slots, and returns how each
ended. Folders are named by a key of everything that changes a run's output
(:func:`run_key`), so the same inputs find the same folder and other inputs another one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litlab.overrides import parse_options
from litlab.presets import load_preset
from litlab.runs import Outcome, RunProcess, launch_run, read_result

log = logging.getLogger(__name__)

BAD_INPUT_EXIT = 2  # litlab's exit code for bad input: running it again fails the same way
DIVERGED_EXIT = 3  # litlab fit stopped a diverging run
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
# Options that change where or how fast a run goes, never what it computes: left out of keys,
# so a resumed workflow may change them.
NOT_IN_KEY = (
    "trainer.accelerator", "trainer.devices", "trainer.strategy", "trainer.num_nodes",
    "trainer.enable_progress_bar", "trainer.enable_model_summary", "data.num_workers",
    "data.pin_memory", "wandb_mode", "wandb_group", "preset_name", "output_dir",
    "checkpoint_every_n_steps", "ckpt_path",
)  # fmt: skip


def digest(*parts: Any) -> str:
    """A 16-hex-digit key of ``parts``."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:16]


def run_key(config: str, argv: Sequence[str], *inputs: Any) -> str:
    """Key of a run: its config's values (not its comments or layout), the options that change
    its output, and ``inputs`` (e.g. a data folder's fingerprint, an upstream step's key)."""
    kept = [o.arg() for o in parse_options(argv) if o.name not in NOT_IN_KEY]
    values = json.dumps(load_preset(config), sort_keys=True, default=str)
    return digest(values, *kept, *inputs)


def folder_fingerprint(root: str | Path) -> str:
    """A key of every file under ``root``: relative path, size and modification time."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"folder {root} does not exist")
    parts = [str(root)]
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        st = path.stat()
        parts.append(f"{path.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}")
    return digest(*parts)


@dataclass
class Step:
    """One run of a workflow.

    Args:
        name: What it is, for messages (``"segmenter"``, ``"fold 3"``).
        argv: The ``litlab`` command, e.g. ``["fit", "--config", ...]``.
        run_dir: The folder it owns (``LITLAB_RUN_DIR`` of the child).
        env: Extra environment variables for the child.
    """

    name: str
    argv: list[str]
    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def result(self) -> dict[str, Any] | None:
        """The run's ``result.json``, once it has ended."""
        return read_result(self.run_dir)

    def state(self) -> str:
        """``finished``, ``diverged``, ``failed``, ``interrupted`` or ``new`` (module docstring)."""
        result = self.result()
        if result is not None:
            return str(result.get("status", "failed"))
        return "interrupted" if self.resumable() else "new"

    def resumable(self) -> bool:
        """Whether a ``litlab fit`` step left a ``last.ckpt`` to continue from."""
        return (
            bool(self.argv) and self.argv[0] == "fit" and (self.run_dir / LAST_CHECKPOINT).is_file()
        )

    def command(self) -> list[str]:
        """``argv``, continuing the run from its ``last.ckpt`` when it has one."""
        if self.resumable():
            return [*self.argv, f"--ckpt_path={self.run_dir / LAST_CHECKPOINT}"]
        return list(self.argv)


@dataclass
class StepEnd:
    """How a step ended.

    Attributes:
        step: The step.
        outcome: The process's exit (``None`` when it was not run: its result was reused).
        result: Its ``result.json`` (``None`` if it wrote none).
        log_path: Its log (``None`` when it was not run).
    """

    step: Step
    outcome: Outcome | None
    result: dict[str, Any] | None
    log_path: Path | None = None

    @property
    def reused(self) -> bool:
        return self.outcome is None

    @property
    def status(self) -> str:
        """The result's status; ``failed`` without one."""
        return str((self.result or {}).get("status", "failed"))

    @property
    def ok(self) -> bool:
        return self.status == "finished" and (self.outcome is None or self.outcome.returncode == 0)

    def describe(self) -> str:
        """One line: what happened and where to look."""
        if self.reused:
            return f"{self.step.name}: reused ({self.status}) {self.step.run_dir}"
        detail = self.outcome.describe()
        error = (self.result or {}).get("error")
        return (
            f"{self.step.name}: {self.status} ({detail}{f': {error}' if error else ''}) "
            f"after {self.outcome.seconds:.0f} s; log {self.log_path}"
        )


class BadStepInput(RuntimeError):
    """A step stopped on bad input (exit code 2): every step like it would; nothing goes on.

    Attributes:
        end: The step's end.
        tail: The last lines of its log.
    """

    def __init__(self, end: StepEnd, tail: str) -> None:
        super().__init__(
            f"{end.step.name} stopped on bad input (exit code 2); its log {end.log_path} "
            f"ends with:\n{tail}"
        )
        self.end = end
        self.tail = tail


def run_steps(
    steps: Sequence[Step],
    slots: Sequence[str | None] = (None,),
    poll: float = 0.5,
) -> list[StepEnd]:
    """Run each step that has not ended yet, as many at once as there are ``slots``.

    A ``finished`` or ``diverged`` step is reused, not run again; an ``interrupted`` one
    continues from its ``last.ckpt``; a ``failed`` or ``new`` one runs (a failed fit resumes too
    when it left a ``last.ckpt``).

    Args:
        steps: The steps, started in this order.
        slots: One entry per concurrent run: the GPU ids it gets (``CUDA_VISIBLE_DEVICES``), or
            ``None`` to inherit this process's devices.
        poll: Seconds between checks of the running processes.

    Returns:
        The end of every step, in the order of ``steps``.

    Raises:
        BadStepInput: A step exited with code 2; the running ones are killed first.
        ValueError: ``slots`` is empty.
    """
    if not slots:
        raise ValueError("run_steps needs at least one slot")
    ends: dict[int, StepEnd] = {}
    pending: deque[int] = deque()
    for i, step in enumerate(steps):
        if step.state() in ("finished", "diverged"):
            ends[i] = StepEnd(step, None, step.result())
            log.info("%s", ends[i].describe())
        else:
            pending.append(i)
    free = list(slots)
    running: list[tuple[int, RunProcess, str | None]] = []
    try:
        while pending or running:
            while pending and free:
                i, slot = pending.popleft(), free.pop(0)
                running.append((i, _launch(steps[i], slot), slot))
            time.sleep(poll)
            for entry in list(running):
                i, proc, slot = entry
                outcome = proc.poll()
                if outcome is None:
                    continue
                running.remove(entry)
                free.append(slot)
                end = StepEnd(steps[i], outcome, steps[i].result(), proc.log_path)
                ends[i] = end
                log.info("%s", end.describe())
                if outcome.returncode == BAD_INPUT_EXIT:
                    raise BadStepInput(end, proc.log_tail(12))
    finally:
        for _, proc, _ in running:
            proc.kill()
    return [ends[i] for i in range(len(steps))]


def _launch(step: Step, slot: str | None) -> RunProcess:
    command = step.command()
    how = "continuing from last.ckpt" if command != step.argv else "starting"
    where = f" on GPU(s) {slot}" if slot is not None else ""
    log.info("%s: %s%s in %s", step.name, how, where, step.run_dir)
    return launch_run(command, step.run_dir, env=step.env, gpus=slot)
