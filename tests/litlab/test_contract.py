"""The model<->data contract: classes, channels and class names linked from data to model, once."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from litlab.cli import main, run_cli
from litlab.contract import CONTRACT, contract_values

QUIET = ["--wandb_mode=disabled", "--trainer.accelerator=cpu", "--data.num_workers=0"]
TINY_LIVER = [
    "--data.synthetic_patients=6",
    "--data.synthetic_slices=3",
    "--data.synthetic_size=32",
    "--data.image_size=32",
    "--data.batch_size=2",
    "--model.encoder_name=resnet18",
]


def _class_folders(root: Path, names: list[str], per_class: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 256, (48, 48), dtype=np.uint8)
            cv2.imwrite(str(root / name / f"S{i:03d}_001_00000001.png"), image)
    return root


def _ckplus(tmp_path: Path, root: Path, *extra: str) -> list[str]:
    return [
        "--config", "ckplus-resnet50-scratch", f"--data.root={root}", "--data.detect_face=false",
        "--model.backbone=resnet18", "--data.batch_size=4", f"--output_dir={tmp_path / 'runs'}",
        *QUIET, *extra,
    ]  # fmt: skip


def test_the_model_takes_classes_channels_and_names_from_the_data(tmp_path: Path) -> None:
    root = _class_folders(tmp_path / "three", ["calm", "angry", "happy"])
    cli = run_cli(["fit", *_ckplus(tmp_path, root, "--data.input_mode=both"),
                   "--trainer.fast_dev_run=1"])  # fmt: skip
    hparams = cli.model.hparams
    assert (hparams.num_classes, hparams.in_chans) == (3, 2)
    assert hparams.class_names == ["angry", "calm", "happy"] == cli.datamodule.class_names
    # smp's spellings belong to the segmenter, not to this classifier
    assert "classes" not in hparams and "in_channels" not in hparams


def test_a_model_without_an_argument_is_not_linked_to_it(tmp_path: Path) -> None:
    cli = run_cli(["fit", "--config", "liver-deeplabv3plus", "--data.num_classes=3",
                   "--trainer.fast_dev_run=1", f"--output_dir={tmp_path}", *QUIET,
                   *TINY_LIVER])  # fmt: skip
    hparams = cli.model.hparams
    assert (hparams.classes, hparams.in_channels) == (3, 1)
    assert hparams.class_names == ["background", "liver", "tumour"]
    assert "num_classes" not in hparams and "in_chans" not in hparams


def test_a_checkpoint_records_only_the_arguments_its_model_takes(tmp_path: Path) -> None:
    fit = run_cli(["fit", "--config", "liver-deeplabv3plus", "--trainer.max_epochs=1",
                   "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
                   "--trainer.limit_test_batches=1", f"--output_dir={tmp_path}", *QUIET,
                   *TINY_LIVER])  # fmt: skip
    best = Path(fit.trainer.checkpoint_callback.best_model_path)
    saved = torch.load(best, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert saved["classes"] == 2 and saved["in_channels"] == 1
    assert "num_classes" not in saved and "in_chans" not in saved
    tested = run_cli(["test", "--config", "liver-deeplabv3plus", f"--ckpt_path={best}",
                      "--trainer.limit_test_batches=1", f"--output_dir={tmp_path}", *QUIET,
                      *TINY_LIVER])  # fmt: skip
    assert "test/miou" in tested.test_results


def test_a_forced_value_that_contradicts_the_data_names_both(tmp_path: Path) -> None:
    root = _class_folders(tmp_path / "ck", ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match=r"--model\.in_chans=1.*in_chans=2.*--model\.in_chans=2"):
        run_cli(["fit", *_ckplus(tmp_path, root, "--data.input_mode=both", "--model.in_chans=1")])
    with pytest.raises(ValueError, match=r"--model\.num_classes=7.*num_classes=4"):
        run_cli(["fit", *_ckplus(tmp_path, root, "--model.num_classes=7")])
    agreeing = [
        "--model.num_classes=4",
        "--model.class_names=[a,b,c,d]",
        "--trainer.fast_dev_run=1",
    ]
    assert run_cli(["fit", *_ckplus(tmp_path, root, *agreeing)]).model.hparams.num_classes == 4


def test_the_autism_faces_need_three_channels(tmp_path: Path, capsys) -> None:
    code = main(["fit", "--config", "autism-resnet50", "--model.in_chans=1",
                 f"--output_dir={tmp_path}", *QUIET])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "--model.in_chans=1" in err and "in_chans=3" in err and "Traceback" not in err


def test_embedding_class_count_follows_the_folders(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for split in ("train", "validation"):
        _class_folders(root / split, [f"class{i}" for i in range(4)], per_class=4)
    args = ["--config", "faceexpr-facenet", f"--data.root={root}", "--data.image_size=48",
            "--data.double_train=false", "--data.batch_size=8", "--data.m_per_class=2",
            f"--output_dir={tmp_path / 'runs'}", *QUIET]  # fmt: skip
    with pytest.raises(ValueError, match="num_classes=4"):
        run_cli(["fit", *args, "--model.num_classes=7"])
    cli = run_cli(["fit", *args, "--trainer.fast_dev_run=1"])
    assert cli.model.hparams.num_classes == 4
    assert cli.model.hparams.class_names == [f"class{i}" for i in range(4)]


def test_a_checkpoint_for_other_classes_is_refused_with_both_counts(tmp_path: Path) -> None:
    three = _class_folders(tmp_path / "three", ["a", "b", "c"])
    fit = run_cli(["fit", *_ckplus(tmp_path, three, "--trainer.max_epochs=1",
                                   "--trainer.limit_train_batches=1",
                                   "--trainer.limit_val_batches=1", "--test_after_fit=false")])  # fmt: skip
    best = fit.trainer.checkpoint_callback.best_model_path
    two = _class_folders(tmp_path / "two", ["a", "b"])
    with pytest.raises(ValueError, match=r"checkpoint .* num_classes=3 but .* num_classes=2"):
        run_cli(["test", *_ckplus(tmp_path, two, f"--ckpt_path={best}")])


def test_the_old_liver_split_option_names_the_new_one(tmp_path: Path, capsys) -> None:
    code = main(["fit", "--config", "liver-deeplabv3plus", "--data.split=[0.7,0.16,0.14]",
                 f"--output_dir={tmp_path}", *QUIET])  # fmt: skip
    assert code == 2
    assert "--data.split_fractions=" in capsys.readouterr().err


def test_contract_values_read_model_sections() -> None:
    assert set(CONTRACT) == {"num_classes", "in_chans", "class_names"}
    section = {"init_args": {"num_classes": 3, "class_names": None, "lr": 0.1}}
    assert contract_values(section) == {"num_classes": 3}
    assert contract_values({"classes": 2, "in_channels": 1}) == {"classes": 2, "in_channels": 1}
    assert contract_values(None) == {}
