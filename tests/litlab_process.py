"""``litlab`` run as a child process, as a shell runs it: for tests that need a real process (DDP
ranks, output piped to a file)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def run_litlab(
    argv: list[str], env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``python -m litlab.cli <argv>``; fails the test (with the end of stderr) unless it exits 0.

    The child gets this process's environment without ``LITLAB_RUN_DIR`` (an in-process run of
    an earlier test may have set it), unbuffered output, one intra-op thread, then ``env``.
    """
    base = {k: v for k, v in os.environ.items() if k != "LITLAB_RUN_DIR"}
    full = {**base, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    command = [sys.executable, "-m", "litlab.cli", *argv]
    proc = subprocess.run(command, env=full, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc
