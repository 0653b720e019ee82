"""The litlab command: presets, fast_dev_run of every preset, resume, DDP, learning."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import yaml

from litlab.cli import fit_and_test, main, resolve_config_args, run_cli
from litlab.presets import load_preset, preset_names, resolve_preset
from tests.litlab.tiny_fer import TINY_FER
from tests.litlab_process import run_litlab

# Tiny settings every preset accepts; heavy networks stay as the preset has them.
TINY = [
    "--data.num_workers=0",
    "--wandb_mode=disabled",
    "--trainer.accelerator=cpu",
]


def _preset_tiny(name: str) -> list[str]:
    data = load_preset(name)["data"]["init_args"]
    extra = []
    if "synthetic_rows" in data or data.get("csv_path", "x") is None:
        extra.append("--data.synthetic_rows=210")
    if "synthetic_patients" in load_preset(name)["data"].get("init_args", {}) or "liver" in name:
        extra += ["--data.synthetic_patients=6", "--data.synthetic_slices=3"]
    return extra


def test_presets_are_listed_with_descriptions(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("fer2013-resnet50", "liver-deeplabv3plus"):
        assert name in out
    assert "sweep" not in "".join(preset_names())  # search spaces are not presets
    assert all(line.split(maxsplit=1)[1].strip() for line in out.strip().splitlines())


def test_unknown_preset_lists_the_known_ones(capsys):
    assert main(["fit", "--config", "fer2013-resnet5O"]) == 2
    err = capsys.readouterr().err
    assert "fer2013-resnet5O" in err and "fer2013-resnet50" in err


def test_bad_value_is_reported_without_the_parser_noise(capsys, tmp_path):
    code = main(
        ["fit", "--config", "fer2013-resnet50", "--data.split=bogus", f"--output_dir={tmp_path}"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "split must be 'usage' or 'random', got 'bogus'" in err
    assert "Union subtypes" not in err


def test_config_names_resolve_to_packaged_yaml(tmp_path):
    args = resolve_config_args(
        ["fit", "--config", "fer2013-resnet50", "--config=liver-resnet", "--x=1"]
    )
    assert Path(args[2]) == resolve_preset("fer2013-resnet50") and args[2].endswith(".yaml")
    assert args[3].startswith("--config=") and args[3].endswith("liver-resnet.yaml")
    own = tmp_path / "mine.yaml"
    own.write_text("trainer: {max_epochs: 1}\n")
    assert resolve_config_args(["--config", str(own)])[1] == str(own)


def test_print_config_shows_the_resolved_preset(capsys):
    with pytest.raises(SystemExit):
        run_cli(["fit", "--config", "fer2013-resnet50", "--model.lr=0.05", "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["init_args"]["lr"] == 0.05
    assert config["model"]["init_args"]["stem"] == "fer48"
    assert config["trainer"]["max_epochs"] == 60


@pytest.mark.parametrize("name", preset_names())
def test_fast_dev_run_of_every_preset(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", name, "--trainer.fast_dev_run=1", *TINY, *_preset_tiny(name)]
    if name == "autism-seg-resnet50":  # a workflow step: alone it names the workflow to run
        with pytest.raises(FileNotFoundError, match="litlab workflow segment-then-classify"):
            run_cli(args)
        return
    try:
        cli = run_cli(args)
    except ValueError as err:  # presets whose weights need the network must say so clearly
        assert "offline" in str(err).lower() or "pretrained" in str(err).lower(), err
        return
    assert cli.trainer.state.finished
    assert cli.test_results, "the best checkpoint is tested after fit"
    assert any(k.startswith("test/") for k in cli.test_results)


def _fer_args(tmp_path: Path, *extra: str) -> list[str]:
    return [
        *TINY_FER,
        "--data.augment=false",
        "--trainer.enable_progress_bar=false",
        "--wandb_mode=disabled",
        f"--output_dir={tmp_path / 'runs'}",
        *extra,
    ]


class _EpochRecorder(pl.Callback):
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs.append(trainer.current_epoch)


def test_run_folder_outputs_and_resume_from_last_ckpt(tmp_path):
    first = run_cli(
        ["fit", *_fer_args(tmp_path, "--trainer.max_epochs=2", "--trainer.limit_train_batches=2")]
    )
    run_dir = Path(first.trainer.default_root_dir)
    assert run_dir.parent == tmp_path / "runs" / "fer2013-resnet50"
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file() and (run_dir / "checkpoints" / "best.ckpt").is_file()
    rows = list(csv.DictReader((run_dir / "csv" / "metrics.csv").open()))
    assert {"val/acc", "val/f1", "train/loss"} <= set(rows[0])
    assert list((run_dir / "images").glob("test_confusion_matrix-*.png"))
    assert 0.0 <= first.test_results["test/acc"] <= 1.0

    recorder = _EpochRecorder()
    resumed = run_cli(
        [
            "fit",
            *_fer_args(
                tmp_path,
                "--trainer.max_epochs=3",
                "--trainer.limit_train_batches=2",
                f"--ckpt_path={last}",
            ),
        ],
        extra_callbacks=[recorder],
    )
    assert recorder.epochs == [2]  # continues at epoch 2, trains only the missing epoch
    assert resumed.trainer.current_epoch == 3
    assert Path(resumed.trainer.default_root_dir) == run_dir  # in place, not a new folder


class _BatchCounter(pl.Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(self, *args: object) -> None:
        self.batches += 1


def test_limit_train_batches_1_is_one_batch(tmp_path):
    counter = _BatchCounter()
    cli = run_cli(
        [
            "fit",
            *_fer_args(
                tmp_path,
                "--trainer.max_epochs=2",
                "--trainer.limit_train_batches=1",
                "--trainer.limit_val_batches=1",
                "--test_after_fit=false",
            ),
        ],
        extra_callbacks=[counter],
    )
    assert counter.batches == 2  # one a epoch, not the 16 of the full set
    saved = yaml.safe_load((Path(cli.trainer.default_root_dir) / "csv/config.yaml").read_text())
    assert type(saved["trainer"]["limit_train_batches"]) is int


def test_fractional_limits_stay_fractions(capsys):
    with pytest.raises(SystemExit):
        run_cli(
            [
                "fit",
                "--config",
                "fer2013-resnet50",
                "--trainer.limit_train_batches=0.5",
                "--trainer.limit_val_batches=1.0",
                "--trainer.limit_test_batches=3",
                "--print_config",
            ]
        )
    trainer = yaml.safe_load(capsys.readouterr().out)["trainer"]
    assert trainer["limit_train_batches"] == 0.5
    assert type(trainer["limit_val_batches"]) is float and trainer["limit_val_batches"] == 1.0
    assert type(trainer["limit_test_batches"]) is int and trainer["limit_test_batches"] == 3


def test_divergence_stops_the_run_with_exit_code_3(tmp_path, capsys):
    args = ["--model.lr=1e6", "--trainer.max_epochs=3", "--trainer.limit_train_batches=4"]
    code = main(["fit", *_fer_args(tmp_path, *args, "--trainer.limit_val_batches=1")])
    err = capsys.readouterr().err
    assert code == 3, err[-2000:]
    pattern = r"training diverged at epoch \d+ \((train|val)/loss=(nan|-?inf)\): lower --model.lr"
    assert re.search(pattern, err), err[-2000:]
    (run_dir,) = (tmp_path / "runs" / "fer2013-resnet50").iterdir()
    best = run_dir / "checkpoints" / "best.ckpt"
    if best.exists():  # an epoch before the divergence may have been kept: finite weights only
        weights = torch.load(best, weights_only=True)["state_dict"].values()
        assert all(bool(torch.isfinite(w).all()) for w in weights if w.is_floating_point())
    assert json.loads((run_dir / "result.json").read_text())["status"] == "diverged"


def test_ddp_two_processes_match_single_process_metrics(tmp_path):
    """A 2-process CPU DDP fit (gloo) finishes; its synced test metrics equal a 1-process test."""
    args = _fer_args(
        tmp_path,
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
    )
    run_litlab(["fit", *args])
    (run_dir,) = (tmp_path / "runs" / "fer2013-resnet50").iterdir()
    rows = [
        r for r in csv.DictReader((run_dir / "csv" / "metrics.csv").open()) if r.get("test/acc")
    ]
    ddp_acc = float(rows[-1]["test/acc"])
    single = run_cli(
        [
            "test",
            *_fer_args(tmp_path, f"--ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}"),
            f"--trainer.default_root_dir={tmp_path / 'single'}",
        ]
    )
    # 20 test images split 10/10 over two ranks: no padding, so the synced metric is exact.
    assert single.test_results["test/acc"] == pytest.approx(ddp_acc, abs=1e-6)


def test_learns_embedded_faces_well_above_chance(tmp_path):
    metrics = fit_and_test(
        _fer_args(
            tmp_path,
            "--data.synthetic_rows=1000",
            "--data.batch_size=32",
            "--model.optimizer=adam",
            "--model.lr=0.001",
            "--trainer.max_epochs=4",
        )
    )
    # 7 classes: chance is 14 %, always answering the commonest class ("happy") ~25 %.
    assert metrics["test/acc"] > 0.45, metrics
