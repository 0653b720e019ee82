"""Resume in place: a fit killed with SIGKILL and resumed ends as if never stopped; options that
contradict the checkpoint are refused, options meant to change apply."""

from __future__ import annotations

import csv
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from litlab.cli import main, run_cli
from tests.litlab.tiny_fer import TINY_FER

BATCHES = 8  # of the 16 batches (160 training images, 10 a batch) of the embedded FER2013 set
FER = [*TINY_FER, "--trainer.enable_progress_bar=false", "--trainer.limit_val_batches=1"]


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "LITLAB_RUN_DIR")}
    return {**env, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}


def _launch(args: list[str], log: Path) -> subprocess.Popen:
    """``litlab fit`` as a child in its own process group (so the kill reaches all of it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "litlab.cli", "fit", *args],
        env=_child_env(),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "csv" / "metrics.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def _only_run(output_dir: Path) -> Path:
    (run_dir,) = (output_dir / "fer2013-resnet50").iterdir()
    return run_dir


def _wait_for_epoch_start(proc: subprocess.Popen, output_dir: Path, epoch: int) -> Path:
    """Poll the run's CSV until the learning-rate row that opens ``epoch`` is written."""
    step = str(epoch * BATCHES)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the fit ended (exit {proc.returncode}) before epoch {epoch}"
        runs = list((output_dir / "fer2013-resnet50").glob("*/csv/metrics.csv"))
        if runs and any(r.get("lr-SGD") and r["step"] == step for r in _rows(runs[0].parents[1])):
            return runs[0].parents[1]
        time.sleep(0.02)
    raise AssertionError(f"epoch {epoch} did not start within 300 s")


def _kill_in_epoch(proc: subprocess.Popen, output_dir: Path, epoch: int, found: list[Path]) -> None:
    try:
        found.append(_wait_for_epoch_start(proc, output_dir, epoch))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)


def test_killed_mid_epoch_and_resumed_ends_as_if_never_stopped(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE")  # this run's W&B folders are checked
    args = [*FER, "--trainer.max_epochs=3", f"--trainer.limit_train_batches={BATCHES}"]
    args.append("--wandb_mode=offline")
    killed = _launch([*args, f"--output_dir={tmp_path / 'killed'}"], tmp_path / "killed.log")
    found: list[Path] = []
    killer = threading.Thread(target=_kill_in_epoch, args=(killed, tmp_path / "killed", 2, found))
    killer.start()
    try:  # meanwhile, the same fit uninterrupted
        whole = run_cli(
            ["fit", *args, "--wandb_mode=disabled", f"--output_dir={tmp_path / 'whole'}"]
        )
    finally:
        killer.join(timeout=600)
        if killed.poll() is None:
            os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL and found, (tmp_path / "killed.log").read_text()
    run_dir = found[0]
    last = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 1  # the kill came within epoch 2
    assert any(r["step"] == str(2 * BATCHES) for r in _rows(run_dir))  # a row past last.ckpt

    # The checkpoint alone resumes: the run's own config, its folder, CSV and W&B run.
    run_cli(["fit", f"--ckpt_path={last}"])
    assert _only_run(tmp_path / "killed") == run_dir
    whole_dir = Path(whole.trainer.default_root_dir)
    assert _rows(run_dir) == _rows(whole_dir)  # the running best (val/acc_best) included
    assert any(r.get("test/acc") for r in _rows(run_dir))

    best, whole_best = (d / "checkpoints" / "best.ckpt" for d in (run_dir, whole_dir))
    a, b = torch.load(best, weights_only=True), torch.load(whole_best, weights_only=True)
    assert a["epoch"] == b["epoch"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in b["state_dict"])

    run_id = (run_dir / "wandb" / "run_id").read_text().strip()
    offline = sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(name.endswith("-" + run_id) for name in offline), offline


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch, one-batch fit; its run folder."""
    output = tmp_path_factory.mktemp("short")
    cli = run_cli(
        [
            "fit",
            *FER,
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=1",
            "--test_after_fit=false",
            "--wandb_mode=disabled",
            f"--output_dir={output}",
        ]
    )
    return Path(cli.trainer.default_root_dir)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--model.backbone=resnet34"], ["--model.backbone=resnet34", "backbone=resnet18"]),
        (["--model.stem=fer48", "--model.lr=0.5"], ["stem=fer48", "stem=standard", "lr=0.01"]),
        (["--seed_everything=3"], ["--seed_everything=3", "seeded with 42"]),
    ],
)
def test_an_option_contradicting_the_checkpoint_is_refused(short_run, capsys, options, expected):
    last = short_run / "checkpoints" / "last.ckpt"
    before = (short_run / "csv" / "metrics.csv").read_text()
    code = main(["fit", *FER, "--wandb_mode=disabled", *options, f"--ckpt_path={last}"])
    err = capsys.readouterr().err
    assert code == 2
    for text in expected:
        assert text in err, err
    assert "Traceback" not in err
    assert (short_run / "csv" / "metrics.csv").read_text() == before  # nothing ran


def test_options_meant_to_change_apply_on_resume(short_run, tmp_path, caplog):
    """More epochs and batches apply, each change is logged, and the run stays in its folder."""
    run_dir = tmp_path / "fer2013-resnet50" / short_run.name  # a copied run resumes too
    shutil.copytree(short_run, run_dir)
    caplog.set_level(logging.INFO, logger="litlab.resume")
    cli = run_cli(
        [
            "fit",
            f"--ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
            "--trainer.max_epochs=2",
            "--trainer.limit_train_batches=2",
        ]
    )
    assert Path(cli.trainer.default_root_dir) == run_dir
    assert cli.trainer.current_epoch == 2 and cli.trainer.global_step == 1 + 2
    changes = [r.getMessage() for r in caplog.records if "changed option" in r.getMessage()]
    assert any("trainer.max_epochs: 1 -> 2" in c for c in changes), changes
    assert any("trainer.limit_train_batches: 1 -> 2" in c for c in changes), changes
    epochs = [r["epoch"] for r in _rows(run_dir) if r.get("train/loss")]
    assert epochs == ["0", "1"]  # the CSV continued: epoch 0's row kept, epoch 1's appended


class _PeekLast(pl.Callback):
    """The global step of ``last.ckpt`` as each training step starts (``None``: no file yet)."""

    def __init__(self) -> None:
        self.steps: list[int | None] = []

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        path = Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        self.steps.append(
            torch.load(path, weights_only=True)["global_step"] if path.exists() else None
        )


def test_checkpoint_every_n_steps_writes_last_within_epochs(tmp_path):
    peek = _PeekLast()
    options = [
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=5",
        "--test_after_fit=false",
    ]
    run_cli(
        [
            "fit",
            *FER,
            *options,
            "--checkpoint_every_n_steps=2",
            "--wandb_mode=disabled",
            f"--output_dir={tmp_path}",
        ],
        extra_callbacks=[peek],
    )
    assert peek.steps == [None, None, 2, 2, 4]
    assert torch.load(_only_run(tmp_path) / "checkpoints/last.ckpt")["global_step"] == 5


def test_a_checkpoint_alone_is_tested_with_its_runs_config(short_run):
    best = short_run / "checkpoints" / "best.ckpt"
    cli = run_cli(["test", f"--ckpt_path={best}", "--trainer.limit_test_batches=1"])
    assert 0.0 <= cli.test_results["test/acc"] <= 1.0
    assert Path(cli.trainer.default_root_dir).parent == short_run.parent  # runs/<preset>/
