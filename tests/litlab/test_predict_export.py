"""After training: plain logs, curves, small best checkpoints, predict on new inputs, export.

One short FER2013 fit runs as a child process with stdout to a pipe (as a log file would be);
the predict and export tests use its checkpoint.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from litlab.lightning_modules.classification import ClassificationModule

from litlab import export
from litlab.cli import main
from tests.litlab.tiny_fer import TINY_FER
from tests.litlab_process import run_litlab

FER = [
    *TINY_FER,
    "--data.augment=false",
    "--trainer.limit_train_batches=2",
    "--trainer.limit_val_batches=1",
    "--trainer.limit_test_batches=1",
    "--wandb_mode=disabled",
]


@pytest.fixture(scope="module")
def fer_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """Two short epochs of ``litlab fit`` in a child process; (run folder, stdout, stderr)."""
    out = tmp_path_factory.mktemp("fer")
    env = {"LITLAB_CACHE": str(tmp_path_factory.getbasetemp() / "litlab-cache"),
           "WANDB_MODE": "disabled"}  # fmt: skip
    proc = run_litlab(
        ["fit", *FER, "--trainer.max_epochs=2", f"--output_dir={out}"], env=env, timeout=900
    )
    (run_dir,) = (out / "fer2013-resnet50").iterdir()
    return run_dir, proc.stdout, proc.stderr


def test_a_piped_log_has_one_plain_line_per_epoch(fer_run) -> None:
    _, stdout, stderr = fer_run
    assert "\r" not in stdout and "\r" not in stderr  # no redrawn bars
    epochs = [line for line in stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["0", "1"]
    assert all("train/loss=" in line and "val/acc=" in line for line in epochs)


def test_curves_are_drawn_when_the_fit_ends(fer_run) -> None:
    run_dir, stdout, _ = fer_run
    curves = run_dir / "images" / "curves.png"
    image = cv2.imread(str(curves))
    assert image is not None and image.shape[1] > image.shape[0] > 200
    assert f"figure:          {curves}" in stdout


def test_best_checkpoint_holds_weights_and_hyperparameters_only(fer_run, capsys) -> None:
    run_dir, _, _ = fer_run
    best, last = run_dir / "checkpoints" / "best.ckpt", run_dir / "checkpoints" / "last.ckpt"
    kept = torch.load(best, weights_only=True, map_location="cpu")
    full = torch.load(last, weights_only=True, map_location="cpu")
    assert {"state_dict", "hyper_parameters"} <= set(kept)
    assert not {"optimizer_states", "callbacks"} & set(kept)
    assert {"optimizer_states", "callbacks", "lr_schedulers"} <= set(full)
    assert best.stat().st_size < 0.6 * last.stat().st_size  # SGD momentum: one buffer per weight
    assert main(["fit", f"--ckpt_path={best}"]) == 2
    err = capsys.readouterr().err
    assert "weights and hyperparameters only" in err and "last.ckpt" in err
    assert "Traceback" not in err


def _faces(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    images = {"a.png": rng.integers(0, 256, (60, 50), dtype=np.uint8),
              "deep/er/b.png": rng.integers(0, 256, (48, 48), dtype=np.uint8)}  # fmt: skip
    for name, image in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), image)
    return images


def _predictions(output: Path) -> tuple[Path, list[dict[str, str]]]:
    (run_dir,) = (output / "fer2013-resnet50").iterdir()
    with (run_dir / "predictions" / "predictions.csv").open(newline="") as file:
        return run_dir, list(csv.DictReader(file))


def test_predict_a_folder_of_images_at_any_depth(fer_run, tmp_path, capsys) -> None:
    run_dir, _, _ = fer_run
    best = run_dir / "checkpoints" / "best.ckpt"
    images = _faces(tmp_path / "faces")
    code = main(["predict", f"--ckpt_path={best}", f"--predict_from={tmp_path / 'faces'}",
                 f"--output_dir={tmp_path / 'out'}"])  # fmt: skip
    assert code == 0
    predicted_dir, rows = _predictions(tmp_path / "out")
    assert f"predictions:     {predicted_dir / 'predictions' / 'predictions.csv'}" in (
        capsys.readouterr().out
    )
    assert [r["source"] for r in rows] == [str(tmp_path / "faces" / n) for n in images]
    model = ClassificationModule.load_from_checkpoint(best, map_location="cpu").eval()
    names = model.class_names
    for row, image in zip(rows, images.values(), strict=True):
        probs = np.array([float(row[f"p_{n}"]) for n in names])
        x = cv2.resize(image, (48, 48), interpolation=cv2.INTER_AREA).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x / 127.5 - 1.0)[None, None]).softmax(1)[0]
        np.testing.assert_allclose(probs, expected.numpy(), atol=2e-6)
        assert row["predicted_class"] == names[int(expected.argmax())]


def test_predict_a_fer2013_csv_with_and_without_labels(fer_run, tmp_path) -> None:
    run_dir, _, _ = fer_run
    pixels = [" ".join(map(str, np.random.default_rng(i).integers(0, 256, 2304))) for i in range(3)]
    path = tmp_path / "faces.csv"
    path.write_text(
        "emotion,pixels\n3," + pixels[0] + "\n," + pixels[1] + "\n0," + pixels[2] + "\n"
    )
    code = main(["predict", f"--ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}",
                 f"--predict_from={path}", f"--output_dir={tmp_path / 'out'}"])  # fmt: skip
    assert code == 0
    _, rows = _predictions(tmp_path / "out")
    assert [r["source"] for r in rows] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert [r["true_class"] for r in rows] == ["happy", "", "angry"]
    for row in rows:
        assert sum(float(v) for k, v in row.items() if k.startswith("p_")) == pytest.approx(1, 1e-4)


def test_bad_predict_input_is_a_clear_error(fer_run, tmp_path, capsys) -> None:
    best = fer_run[0] / "checkpoints" / "best.ckpt"
    bad = tmp_path / "bad.csv"
    bad.write_text("pixels\n1 2 3\n")
    for source, message in ((bad, f"{bad} line 2: row has 3 pixel values"),
                            (tmp_path / "nope", "does not exist")):  # fmt: skip
        code = main(["predict", f"--ckpt_path={best}", f"--predict_from={source}",
                     f"--output_dir={tmp_path / 'out'}"])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch_at_any_batch_size(fer_run, tmp_path, fmt) -> None:
    best = fer_run[0] / "checkpoints" / "best.ckpt"
    path = tmp_path / f"model.{fmt}"
    assert export.main([f"--ckpt_path={best}", f"--format={fmt}", f"--output={path}"]) == 0
    model = ClassificationModule.load_from_checkpoint(best, map_location="cpu").eval()
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        meta = json.loads(props["litlab"])
        run = lambda x: session.run(None, {"image": x.numpy()})[0]  # noqa: E731
    else:
        extra = {"litlab.json": ""}
        scripted = torch.jit.load(str(path), _extra_files=extra)
        meta = json.loads(extra["litlab.json"])
        run = lambda x: scripted(x).detach().numpy()  # noqa: E731
    for n in (1, 4):
        x = torch.randn(n, 1, 48, 48)
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(run(x), expected, atol=1e-4, rtol=1e-4)
    assert meta["input"]["shape"] == ["N", 1, 48, 48]
    assert meta["class_names"] == model.class_names
    assert meta["preprocessing"]["normalize"] == {"mean": [0.5], "std": [0.5]}
    assert meta["output"]["name"] == "logits"


def test_export_of_something_else_is_a_clear_error(tmp_path, capsys) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    assert export.main([f"--ckpt_path={junk}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("litlab export: error:") and str(junk) in err and "Traceback" not in err
    assert export.main([f"--ckpt_path={tmp_path / 'none.ckpt'}"]) == 2
    assert "does not exist; pass --ckpt_path" in capsys.readouterr().err
