"""Fixtures shared by the command-line tests: ``litlab`` run in process and the bad-input check."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from litlab.cli import main

#: Runs ``litlab <argv>`` in this process; returns its exit code and everything it printed.
RunLitlab = Callable[[list[str]], tuple[int, str]]
#: ``check(build, names, hint, env=..., root_cannot_run=...)``: see :func:`bad_input`.
BadInputCheck = Callable[..., None]

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own; no variable that litlab sets leaks into other tests."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.delenv("LITLAB_DEBUG", raising=False)
    monkeypatch.delenv("LITLAB_RUN_DIR", raising=False)
    return tmp_path


@pytest.fixture
def run_litlab(capsys: pytest.CaptureFixture) -> RunLitlab:
    """``litlab.cli.main`` on a command line, as the shell would see it: code and output."""

    def run(argv: list[str]) -> tuple[int, str]:
        try:
            code = main(argv)
        except SystemExit as stop:  # the option parser exits by itself
            code = stop.code if isinstance(stop.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


@pytest.fixture
def bad_input(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, run_litlab: RunLitlab
) -> BadInputCheck:
    """Runs one broken input and asserts that litlab stops as bad input should.

    ``build(tmp)`` writes files under ``tmp`` and returns the command line after ``litlab``; the
    run must exit with code 2, print no traceback, and print each of ``names`` (``{tmp}`` stands
    for that folder) and the ``hint`` at the fix. ``env`` values are set first (``{tmp}`` again);
    ``root_cannot_run`` skips a case that relies on permission bits, which root ignores.
    """

    def check(
        build: Callable[[Path], list[str]],
        names: tuple[str, ...],
        hint: str,
        env: Mapping[str, str] | None = None,
        root_cannot_run: bool = False,
    ) -> None:
        if root_cannot_run and IS_ROOT:
            pytest.skip(
                "root ignores permission bits; the '-under-a-file' cases cover the same path"
            )
        tmp = cli_env
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value.format(tmp=tmp))
        code, output = run_litlab(build(tmp))
        assert code == 2, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
        for needle in names:
            assert needle.format(tmp=tmp) in output, (needle, output[-3000:])
        assert hint in output, (hint, output[-3000:])

    return check
