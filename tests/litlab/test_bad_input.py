"""Bad input never ends in a traceback: a corpus of broken inputs run through ``litlab``.

Each case builds its broken input in ``tmp_path`` and runs the command line in process through
:func:`litlab.cli.main`. It must exit with code 2, print no traceback, name the offending file,
line or value, and hint at the fix. The cases live in one module per kind of input
(``bad_input_files.py``: FER2013 CSVs and class folders; ``bad_input_liver.py``; and
``bad_input_options.py``: options, environment, checkpoints, sweep spaces); a new DataModule adds
its rows to its kind's module. The last net (an unexpected exception: one line, exit 1, the
traceback in the run folder's log) is tested below.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch  # noqa: F401 - its log handler binds the session's stderr, not a test's
import pytest

from litlab.cli import main
from tests.litlab import bad_input_files, bad_input_liver, bad_input_options
from tests.litlab.bad_input_kit import Case, fer_fit

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
#: Every case, by the kind of input it breaks.
CASES: dict[str, Case] = {
    **bad_input_files.CASES,
    **bad_input_liver.CASES,
    **bad_input_options.CASES,
}


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as stop:  # the option parser exits by itself
        code = stop.code if isinstance(stop.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own; no variable that litlab sets leaks into other tests."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.delenv("LITLAB_DEBUG", raising=False)
    monkeypatch.delenv("LITLAB_RUN_DIR", raising=False)
    return tmp_path


def test_the_corpus_is_large():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_exits_2_naming_the_fault_and_the_fix(name, cli_env, monkeypatch, capsys):
    case = CASES[name]
    if case.root_cannot_run and IS_ROOT:
        pytest.skip("root ignores permission bits; the '-under-a-file' cases cover the same path")
    tmp = cli_env
    for key, value in case.env.items():
        monkeypatch.setenv(key, value.format(tmp=tmp))
    code, output = _run(case.build(tmp), capsys)
    assert code == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    for needle in case.names:
        assert needle.format(tmp=tmp) in output, (needle, output[-3000:])
    assert case.hint in output, (case.hint, output[-3000:])


# -- the last net -------------------------------------------------------------------------------
_BUGGY = """
import lightning.pytorch as pl


class Boom(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        raise KeyError("a bug, not bad input")


class BoomModel(pl.LightningModule):
    def __init__(self, num_classes: int = 2, in_chans: int = 1, class_names: list | None = None):
        raise RuntimeError("a model that cannot be built")
"""


def _litlab_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("litlab")]


@pytest.fixture
def buggy(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user module with a callback and a model that fail with an unexpected exception."""
    (cli_env / "buggy_parts.py").write_text(_BUGGY)
    monkeypatch.syspath_prepend(str(cli_env))
    return cli_env


def test_unexpected_error_is_one_line_exit_1_with_the_traceback_in_the_run_log(buggy, capsys):
    argv = fer_fit(buggy, f"--output_dir={buggy / 'runs'}")
    code, output = _run([*argv, "--trainer.callbacks+=buggy_parts.Boom"], capsys)
    assert code == 1, output[-3000:]
    assert "Traceback" not in output
    (line,) = _litlab_lines(output)
    assert line.startswith("litlab: internal error: KeyError: 'a bug, not bad input' (")
    assert "set LITLAB_DEBUG=1 for the traceback" in line
    (log,) = (buggy / "runs").glob("fer2013-resnet50/*/fit.log")
    assert str(log) in line
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "on_train_start" in text
    assert "KeyError: 'a bug, not bad input'" in text


def test_unexpected_error_before_a_run_folder_logs_under_the_output_dir(buggy, capsys):
    argv = fer_fit(buggy, f"--output_dir={buggy / 'out'}", "--model=buggy_parts.BoomModel")
    code, output = _run(argv, capsys)
    assert code == 1, output[-3000:]
    (line,) = _litlab_lines(output)
    assert "internal error: RuntimeError: a model that cannot be built" in line
    log = buggy / "out" / "litlab-errors.log"
    assert str(log) in line and "RuntimeError: a model that cannot be built" in log.read_text()
    assert not list((buggy / "out").glob("*/*"))  # no run folder was made


def test_litlab_debug_lets_the_exception_through(buggy, monkeypatch, capsys):
    monkeypatch.setenv("LITLAB_DEBUG", "1")
    argv = fer_fit(buggy, f"--output_dir={buggy / 'runs'}")
    with pytest.raises(KeyError, match="a bug, not bad input"):
        main([*argv, "--trainer.callbacks+=buggy_parts.Boom"])
    with pytest.raises(FileNotFoundError, match="fer2013-resnet5O"):
        main(["fit", "--config", "fer2013-resnet5O"])
