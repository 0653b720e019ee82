"""Bad options, environment, checkpoints and sweep spaces never end in a traceback, and the last
net: an unexpected exception is one line, exit code 1, its traceback in the run folder's log.

The bad-input cases run as in ``test_bad_input.py``: in process, exit code 2, no traceback, the
offending file or value named with a hint at the fix.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path

import cv2
import lightning.pytorch  # noqa: F401 - its log handler binds the session's stderr, not a test's
import numpy as np
import pytest
import torch

from litlab.cli import main

#: Options that make every training case cheap: the error comes before any training.
_FAST = [
    "--data.num_workers=0",
    "--wandb_mode=disabled",
    "--trainer.accelerator=cpu",
    "--trainer.fast_dev_run=1",
]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _png(path: Path) -> Path:
    """A gray PNG (whatever the file name's suffix)."""
    return _write(path, cv2.imencode(".png", np.full((48, 48), 128, np.uint8))[1].tobytes())


def _ckpt_cmd(tmp: Path, ckpt: Path) -> list[str]:
    return [
        "test", "--config", "fer2013-resnet50", "--model.backbone=resnet18",
        "--model.stem=standard", "--data.synthetic_rows=70", f"--ckpt_path={ckpt}",
        f"--output_dir={tmp / 'runs'}", *_FAST,
    ]  # fmt: skip


class _RunsCode:
    """A pickled object whose unpickling would call ``os.system``: never unpickled here."""

    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def _code_checkpoint(tmp: Path, legacy: bool) -> list[str]:
    path = tmp / "evil.ckpt"
    payload = {"state_dict": {}, "hyper_parameters": {}, "x": _RunsCode()}
    if legacy:
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    return _ckpt_cmd(tmp, path)


def _truncated_checkpoint(tmp: Path) -> list[str]:
    path = tmp / "cut.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "global_step": 3}, path)
    path.write_bytes(path.read_bytes()[:2000])
    return _ckpt_cmd(tmp, path)


def _sweep(space_text: str | None, *extra: str):
    def build(tmp: Path) -> list[str]:
        space = tmp / "space.yaml"
        if space_text is not None:
            space.write_text(space_text)
        return [
            "sweep", "--config", "liver-deeplabv3plus", "--space", str(space), "--n-trials", "1",
            "--output-dir", str(tmp / "sweeps"), *extra,
        ]  # fmt: skip

    return build


def _read_only(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    return folder


def _fer_embedded(tmp: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", "fer2013-resnet50", "--model.backbone=resnet18",
        "--model.stem=standard", "--data.synthetic_rows=70", *_FAST, *extra,
    ]  # fmt: skip


#: name -> (build, names, hint), as the ``bad_input`` fixture takes them.
CASES: dict[str, tuple[Callable[[Path], list[str]], tuple[str, ...], str]] = {
    # command line -----------------------------------------------------------------------------
    "cli-unknown-preset": (
        lambda tmp: ["fit", "--config", "fer2013-resnet5O"],
        ("fer2013-resnet5O",),
        "fer2013-resnet50",
    ),
    "cli-typo-in-an-option": (
        lambda tmp: _fer_embedded(tmp, "--trainer.max_epohcs=3"),
        ("max_epohcs",),
        "max_epochs",
    ),
    "cli-wrong-type": (lambda tmp: _fer_embedded(tmp, "--trainer.max_epochs=abc"), ("abc",), "int"),
    "cli-bad-choice": (
        lambda tmp: _fer_embedded(tmp, "--data.split=bogus"),
        ("'bogus'",),
        "'usage' or 'random'",
    ),
    "cli-negative-num-workers": (
        lambda tmp: _fer_embedded(tmp, f"--output_dir={tmp}", "--data.num_workers=-1"),
        ("num_workers", "-1"),
        ">= 0",
    ),
    "cli-negative-max-epochs": (
        lambda tmp: _fer_embedded(tmp, f"--output_dir={tmp}", "--trainer.max_epochs=-5"),
        ("--trainer.max_epochs", "-5"),
        "non-negative integer or -1",
    ),
    "cli-unknown-precision": (
        lambda tmp: _fer_embedded(tmp, f"--output_dir={tmp}", "--trainer.precision=bogus"),
        ("trainer.precision", "bogus"),
        "32-true",
    ),
    "cli-bad-config-yaml": (
        lambda tmp: [
            "fit",
            "--config",
            str(_write(tmp / "bad.yaml", b"trainer: [max_epochs: 1\n")),
        ],
        ("bad.yaml",),
        "yaml",
    ),
    "cli-output-dir-under-a-file": (
        lambda tmp: _fer_embedded(tmp, f"--output_dir={_png(tmp / 'img.png')}/runs"),
        ("{tmp}/img.png/runs", "cannot write the run folder"),
        "--output_dir",
    ),
    "cli-read-only-working-directory": (
        lambda tmp: [*_fer_embedded(tmp), f"--output_dir={_read_only(tmp / 'ro')}/runs"],
        ("{tmp}/ro/runs", "Permission denied"),
        "--output_dir",
    ),
    "cli-cache-under-a-file": (
        lambda tmp: _write(tmp / "blocker", b"") and _fer_embedded(tmp, f"--output_dir={tmp}/r"),
        ("{tmp}/blocker/cache",),
        "LITLAB_CACHE",
    ),
    "cli-read-only-cache": (
        lambda tmp: _read_only(tmp / "cache") and _fer_embedded(tmp, f"--output_dir={tmp / 'r'}"),
        ("{tmp}/cache", "Permission denied"),
        "LITLAB_CACHE",
    ),
    # checkpoints ------------------------------------------------------------------------------
    "ckpt-truncated": (
        _truncated_checkpoint,
        ("{tmp}/cut.ckpt", "damaged or incomplete"),
        "Copy it again",
    ),
    "ckpt-pickle-carrying-code": (
        lambda tmp: _code_checkpoint(tmp, legacy=False),
        ("{tmp}/evil.ckpt", "refused", "posix.system"),
        "weights_only=True",
    ),
    "ckpt-plain-pickle-carrying-code": (
        lambda tmp: _code_checkpoint(tmp, legacy=True),
        ("{tmp}/evil.ckpt", "refused", "posix.system"),
        "arbitrary code",
    ),
    "ckpt-not-a-checkpoint": (
        lambda tmp: _ckpt_cmd(tmp, _png(tmp / "x.ckpt")),
        ("{tmp}/x.ckpt", "not a PyTorch checkpoint"),
        "litlab fit",
    ),
    "ckpt-missing": (
        lambda tmp: _ckpt_cmd(tmp, tmp / "gone.ckpt"),
        ("{tmp}/gone.ckpt", "does not exist"),
        "checkpoints/last.ckpt",
    ),
    "ckpt-empty-file": (
        lambda tmp: _ckpt_cmd(tmp, _write(tmp / "e.ckpt", b"")),
        ("{tmp}/e.ckpt", "empty"),
        "litlab fit",
    ),
    # sweep options ----------------------------------------------------------------------------
    "sweep-space-not-yaml": (
        _sweep("metric: val/loss\nparams:\n  model.lr: {type: float, low: 1\n"),
        ("{tmp}/space.yaml", "line "),
        "fix the file",
    ),
    "sweep-space-not-a-mapping": (
        _sweep("- model.lr\n- data.batch_size\n"),
        ("{tmp}/space.yaml", "list"),
        "sweeps/space.py",
    ),
    "sweep-space-unknown-type": (
        _sweep("params:\n  model.lr: {type: real, low: 0.1, high: 1}\n"),
        ("{tmp}/space.yaml", "'real'"),
        "categorical",
    ),
    "sweep-space-log-from-zero": (
        _sweep("params:\n  model.lr: {type: float, low: 0, high: 1, log: true}\n"),
        ("{tmp}/space.yaml", "model.lr"),
        "low > 0",
    ),
    "sweep-space-missing": (_sweep(None), ("{tmp}/space.yaml",), "--space"),
}


#: Variables set before a case runs (``{tmp}`` is its folder).
ENV = {
    "cli-cache-under-a-file": {"LITLAB_CACHE": "{tmp}/blocker/cache"},
    "cli-read-only-cache": {"LITLAB_CACHE": "{tmp}/cache"},
}
#: Cases that rely on permission bits, which root ignores.
ROOT_CANNOT_RUN = {"cli-read-only-working-directory", "cli-read-only-cache"}


def test_the_corpus_is_large():
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_exits_2_naming_the_fault_and_the_fix(name: str, bad_input) -> None:
    bad_input(*CASES[name], env=ENV.get(name), root_cannot_run=name in ROOT_CANNOT_RUN)


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


def test_unexpected_error_is_one_line_exit_1_with_the_traceback_in_the_run_log(buggy, run_litlab):
    argv = _fer_embedded(buggy, f"--output_dir={buggy / 'runs'}")
    code, output = run_litlab([*argv, "--trainer.callbacks+=buggy_parts.Boom"])
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


def test_unexpected_error_before_a_run_folder_logs_under_the_output_dir(buggy, run_litlab):
    argv = _fer_embedded(buggy, f"--output_dir={buggy / 'out'}", "--model=buggy_parts.BoomModel")
    code, output = run_litlab(argv)
    assert code == 1, output[-3000:]
    (line,) = _litlab_lines(output)
    assert "internal error: RuntimeError: a model that cannot be built" in line
    log = buggy / "out" / "litlab-errors.log"
    assert str(log) in line and "RuntimeError: a model that cannot be built" in log.read_text()
    assert not list((buggy / "out").glob("*/*"))  # no run folder was made


def test_litlab_debug_lets_the_exception_through(buggy, monkeypatch):
    monkeypatch.setenv("LITLAB_DEBUG", "1")
    argv = _fer_embedded(buggy, f"--output_dir={buggy / 'runs'}")
    with pytest.raises(KeyError, match="a bug, not bad input"):
        main([*argv, "--trainer.callbacks+=buggy_parts.Boom"])
    with pytest.raises(FileNotFoundError, match="fer2013-resnet5O"):
        main(["fit", "--config", "fer2013-resnet5O"])
