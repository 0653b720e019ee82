"""Fixtures shared by the metric tests: a script run as real gloo ranks on this machine."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

#: Runs ``script`` as two gloo ranks, each called ``python script <rank> <port> <folder>``.
GlooRanks = Callable[[str, Path], None]


@pytest.fixture
def gloo_ranks() -> GlooRanks:
    """Run a script as two processes that join one gloo group on a free localhost port.

    The script reads its rank, the port and a shared folder from ``sys.argv[1:4]`` and writes
    what it computed there; the call fails the test unless both ranks exit 0 within two minutes,
    and kills any rank still running.
    """

    def run(script: str, folder: Path) -> None:
        path = folder / "ranks.py"
        path.write_text(script)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        procs = [
            subprocess.Popen([sys.executable, str(path), str(r), str(port), str(folder)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for r in range(2)
        ]  # fmt: skip
        try:
            outputs = [p.communicate(timeout=120)[0] for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        assert [p.returncode for p in procs] == [0, 0], outputs

    return run
