"""Broken options, environment, checkpoints and sweep search spaces."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from tests.litlab.bad_input_kit import FAST, Case, fer_fit, png, write


def _ckpt_cmd(tmp: Path, ckpt: Path) -> list[str]:
    return [
        "test", "--config", "fer2013-resnet50", "--model.backbone=resnet18",
        "--model.stem=standard", "--data.synthetic_rows=70", f"--ckpt_path={ckpt}",
        f"--output_dir={tmp / 'runs'}", *FAST,
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


CASES: dict[str, Case] = {
    # command line -----------------------------------------------------------------------------
    "cli-unknown-preset": Case(
        lambda tmp: ["fit", "--config", "fer2013-resnet5O"],
        ("fer2013-resnet5O",),
        "fer2013-resnet50",
    ),
    "cli-typo-in-an-option": Case(
        lambda tmp: fer_fit(tmp, "--trainer.max_epohcs=3"), ("max_epohcs",), "max_epochs"
    ),
    "cli-wrong-type": Case(lambda tmp: fer_fit(tmp, "--trainer.max_epochs=abc"), ("abc",), "int"),
    "cli-bad-choice": Case(
        lambda tmp: fer_fit(tmp, "--data.split=bogus"), ("'bogus'",), "'usage' or 'random'"
    ),
    "cli-negative-num-workers": Case(
        lambda tmp: fer_fit(tmp, f"--output_dir={tmp}", "--data.num_workers=-1"),
        ("num_workers", "-1"),
        ">= 0",
    ),
    "cli-negative-max-epochs": Case(
        lambda tmp: fer_fit(tmp, f"--output_dir={tmp}", "--trainer.max_epochs=-5"),
        ("--trainer.max_epochs", "-5"),
        "non-negative integer or -1",
    ),
    "cli-unknown-precision": Case(
        lambda tmp: fer_fit(tmp, f"--output_dir={tmp}", "--trainer.precision=bogus"),
        ("trainer.precision", "bogus"),
        "32-true",
    ),
    "cli-bad-config-yaml": Case(
        lambda tmp: [
            "fit",
            "--config",
            str(write(tmp / "bad.yaml", b"trainer: [max_epochs: 1\n")),
        ],
        ("bad.yaml",),
        "yaml",
    ),
    "cli-output-dir-under-a-file": Case(
        lambda tmp: fer_fit(tmp, f"--output_dir={png(tmp / 'img.png')}/runs"),
        ("{tmp}/img.png/runs", "cannot write the run folder"),
        "--output_dir",
    ),
    "cli-read-only-working-directory": Case(
        lambda tmp: [*fer_fit(tmp), f"--output_dir={_read_only(tmp / 'ro')}/runs"],
        ("{tmp}/ro/runs", "Permission denied"),
        "--output_dir",
        root_cannot_run=True,
    ),
    "cli-cache-under-a-file": Case(
        lambda tmp: write(tmp / "blocker", b"") and fer_fit(tmp, f"--output_dir={tmp}/r"),
        ("{tmp}/blocker/cache",),
        "LITLAB_CACHE",
        env={"LITLAB_CACHE": "{tmp}/blocker/cache"},
    ),
    "cli-read-only-cache": Case(
        lambda tmp: _read_only(tmp / "cache") and fer_fit(tmp, f"--output_dir={tmp / 'r'}"),
        ("{tmp}/cache", "Permission denied"),
        "LITLAB_CACHE",
        env={"LITLAB_CACHE": "{tmp}/cache"},
        root_cannot_run=True,
    ),
    # checkpoints ------------------------------------------------------------------------------
    "ckpt-truncated": Case(
        _truncated_checkpoint, ("{tmp}/cut.ckpt", "damaged or incomplete"), "Copy it again"
    ),
    "ckpt-pickle-carrying-code": Case(
        lambda tmp: _code_checkpoint(tmp, legacy=False),
        ("{tmp}/evil.ckpt", "refused", "posix.system"),
        "weights_only=True",
    ),
    "ckpt-plain-pickle-carrying-code": Case(
        lambda tmp: _code_checkpoint(tmp, legacy=True),
        ("{tmp}/evil.ckpt", "refused", "posix.system"),
        "arbitrary code",
    ),
    "ckpt-not-a-checkpoint": Case(
        lambda tmp: _ckpt_cmd(tmp, png(tmp / "x.ckpt")),
        ("{tmp}/x.ckpt", "not a PyTorch checkpoint"),
        "litlab fit",
    ),
    "ckpt-missing": Case(
        lambda tmp: _ckpt_cmd(tmp, tmp / "gone.ckpt"),
        ("{tmp}/gone.ckpt", "does not exist"),
        "checkpoints/last.ckpt",
    ),
    "ckpt-empty-file": Case(
        lambda tmp: _ckpt_cmd(tmp, write(tmp / "e.ckpt", b"")),
        ("{tmp}/e.ckpt", "empty"),
        "litlab fit",
    ),
    # sweep options ----------------------------------------------------------------------------
    "sweep-space-not-yaml": Case(
        _sweep("metric: val/loss\nparams:\n  model.lr: {type: float, low: 1\n"),
        ("{tmp}/space.yaml", "line "),
        "fix the file",
    ),
    "sweep-space-not-a-mapping": Case(
        _sweep("- model.lr\n- data.batch_size\n"), ("{tmp}/space.yaml", "list"), "sweeps/space.py"
    ),
    "sweep-space-unknown-type": Case(
        _sweep("params:\n  model.lr: {type: real, low: 0.1, high: 1}\n"),
        ("{tmp}/space.yaml", "'real'"),
        "categorical",
    ),
    "sweep-space-log-from-zero": Case(
        _sweep("params:\n  model.lr: {type: float, low: 0, high: 1, log: true}\n"),
        ("{tmp}/space.yaml", "model.lr"),
        "low > 0",
    ),
    "sweep-space-missing": Case(_sweep(None), ("{tmp}/space.yaml",), "--space"),
}
