"""``litlab report`` for fer2013, ckplus, faceexpr and liver, from hand-made run folders."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import yaml
from litlab.datamodules.synthetic.ckplus import write_ckplus_folder
from litlab.datamodules.synthetic.face_folders import write_face_folders

from litlab import report
from litlab.report.intervals import wilson_interval


def _run(
    folder: Path,
    data: dict[str, Any],
    test: dict[str, float],
    *,
    val: dict[str, float] | None = None,
    train_acc: float | None = None,
) -> Path:
    """A finished run folder: csv/config.yaml, result.json and (with ``train_acc``) metrics.csv."""
    (folder / "csv").mkdir(parents=True)
    (folder / "csv" / "config.yaml").write_text(yaml.safe_dump({"data": data, "trainer": {}}))
    result = {"status": "finished", "kept_epoch": 1, "val": val or {}, "test": test}
    (folder / "result.json").write_text(json.dumps(result))
    if train_acc is not None:
        rows = [{"epoch": 0, "train/acc": 0.2}, {"epoch": 1, "train/acc": train_acc}]
        with (folder / "csv" / "metrics.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, ["epoch", "train/acc"])
            writer.writeheader()
            writer.writerows(rows)
    return folder


def _ci(successes: int, n: int) -> str:
    lo, hi = wilson_interval(successes, n)
    return f"[{100 * lo:.1f}, {100 * hi:.1f}] %"


def _report(capsys, *args: str) -> tuple[int, str, str]:
    code = report.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _fer_csv(path: Path) -> Path:
    """20 Training, 4 PublicTest, 6 PrivateTest rows; 2 test rows and 1 validation row copy
    training pixels, and one test row is a brightened (near) copy."""
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, 48 * 48) for _ in range(30)]
    pixels[24], pixels[25], pixels[20] = pixels[0], pixels[1], pixels[2]
    pixels[26] = np.clip(pixels[3] + 3, 0, 255)
    usage = ["Training"] * 20 + ["PublicTest"] * 4 + ["PrivateTest"] * 6
    lines = ["emotion,pixels,Usage"]
    lines += [
        f"{i % 7},{' '.join(map(str, p))},{u}"
        for i, (p, u) in enumerate(zip(pixels, usage, strict=True))
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fer2013_report_sets_the_best_cell_beside_ours(tmp_path: Path, capsys) -> None:
    data = {
        "class_path": "litlab.datamodules.fer2013.FER2013DataModule",
        "init_args": {"csv_path": str(_fer_csv(tmp_path / "fer.csv")), "split": "usage"},
    }
    runs = tmp_path / "runs"
    _run(runs / "fer2013-resnet50" / "20240101-000000", data, {"test/acc": 0.5},
         val={"val/acc": 0.75}, train_acc=0.9)  # fmt: skip
    code, out, _ = _report(capsys, "fer2013", "--runs", str(runs))
    assert code == 0
    md = (runs / "fer2013-report" / "report.md").read_text()
    assert md.strip() in out and (runs / "fer2013-report" / "report.png").stat().st_size > 0
    # paper: 2,179 of 3,589 PrivateTest images (Fig. 4.10); ours: 3 of the 6 test rows
    assert (
        f"| test accuracy | 60.71 % | {_ci(2179, 3589)} | 50.00 % | {_ci(3, 6)} | 6 images |" in md
    )
    assert (
        f"| val accuracy | 60.49 % | {_ci(2171, 3589)} | 75.00 % | {_ci(3, 4)} | 4 images |" in md
    )
    assert "| 64.28 % | — | 90.00 % |" in md  # train accuracy of the kept epoch, from metrics.csv
    assert "Usage column: Training / PublicTest / PrivateTest" in md
    assert "pixel-identical to a training image: 1 val, 2 test" in md
    assert "difference hash: 3" in md  # the two copies and the brightened one
    assert "fer2013-resnet50-adam: no finished run" in md


def test_ckplus_report_sets_random_split_beside_subject_folds(tmp_path: Path, capsys) -> None:
    root = write_ckplus_folder(tmp_path / "ck", n_subjects=16, min_subjects_per_class=2)
    base = {"root": str(root), "detect_face": False}
    cls = "litlab.datamodules.ckplus.CKPlusDataModule"
    runs = tmp_path / "runs"
    random = {"class_path": cls, "init_args": {**base, "split": "random"}}
    _run(runs / "ckplus-resnet50-scratch" / "20240101-000000", random,
         {"test/acc": 23 / 24, "test/precision": 0.9, "test/recall": 0.8, "test/f1": 0.85})  # fmt: skip
    for fold, acc in ((0, 0.5), (1, 0.6)):
        args = {**base, "split": "subject", "n_folds": 2, "fold": fold, "val_fraction": 0.3}
        folder = runs / "ckplus-resnet50-scratch-cv" / f"fold{fold}" / "20240101-000000"
        _run(folder, {"class_path": cls, "init_args": args}, {"test/acc": acc})
    code, out, _ = _report(capsys, "ckplus", "--runs", str(runs))
    assert code == 0
    md = (runs / "ckplus-report" / "report.md").read_text()
    scratch = "ResNet-50 scratch, random 80/20 split (paper's protocol) | accuracy | 95.41 %"
    assert f"{scratch} | {_ci(187, 196)} | 95.83 % | {_ci(23, 24)} | 24 images |" in md
    # the folds pooled: 30 + 36 of 60 + 60 images, every image tested once
    folds = "ResNet-50 scratch, subject 2-fold (no subject in two parts) | accuracy, folds pooled"
    assert f"{folds} | 95.41 % | {_ci(187, 196)} | 55.00 % | {_ci(66, 120)} | 120 images |" in md
    random_line = next(x for x in md.splitlines() if "random split: test subjects" in x)
    assert "of which 0 also" not in random_line  # the random split shares subjects
    assert "subject folds: test subjects also in training, summed over folds: 0" in md
    assert "ckplus-resnet50: no finished run" in md and "litlab cv --config ckplus-resnet50" in md


def test_faceexpr_report_states_the_erratum_and_duplicates(tmp_path: Path, capsys) -> None:
    root = write_face_folders(tmp_path / "faces", n_train=70, n_val=21)
    planted = next((root / "train").rglob("*.png"))
    shutil.copy(planted, root / "validation" / planted.parent.name / "copy.png")
    data = {
        "class_path": "litlab.datamodules.face_expression.FaceExpressionDataModule",
        "init_args": {"root": str(root), "double_train": False},
    }
    runs = tmp_path / "runs"
    _run(runs / "faceexpr-facenet" / "20240101-000000", data,
         {"test/knn_acc": 0.5, "test/f1": 0.4, "test/self_matches": 1.0})  # fmt: skip
    code, out, _ = _report(capsys, "faceexpr", "--runs", str(runs))
    assert code == 0
    md = (runs / "faceexpr-report" / "report.md").read_text()
    n = len(list((root / "validation").rglob("*.png")))  # the held-out images, copy included
    assert (
        f"| kNN accuracy, held-out | 99.96 % | {_ci(7063, 7066)} | 50.00 % | {_ci(n // 2, n)} |"
        in md
    )
    assert "pixel-identical to a training image: 1 val;" in md  # test is val: counted once
    assert "left out of their own vote: 1" in md
    assert "not credible" in md


def _volumes(root: Path, n: int = 6) -> None:
    root.mkdir(parents=True)
    for i in range(n):
        hu = np.full((16, 16, 3), -50, np.int16)
        seg = np.zeros((16, 16, 3), np.uint8)
        seg[4:10, 4:12] = 1
        affine = np.diag([0.8, 0.8, 2.0, 1.0])
        nib.save(nib.Nifti1Image(hu, affine), root / f"volume-{i}.nii.gz")
        nib.save(nib.Nifti1Image(seg, affine), root / f"segmentation-{i}.nii.gz")


def test_liver_report_puts_per_volume_dice_beside_the_papers_miou(tmp_path: Path, capsys) -> None:
    _volumes(tmp_path / "lits")
    data = {
        "class_path": "litlab.datamodules.liver.LiverDataModule",
        "init_args": {"root": str(tmp_path / "lits"), "image_size": 16,
                      "split_fractions": [0.5, 0.17, 0.33]},
    }  # fmt: skip
    runs = tmp_path / "runs"
    run = _run(runs / "liver-deeplabv3plus" / "20240101-000000", data,
               {"test/miou": 0.80, "test/pixel_acc": 0.95, "test/loss": 0.05})  # fmt: skip
    counts = [(90, 10, 0), (50, 0, 50), (40, 20, 20)]  # tp, fp, fn of 3 volumes
    dice = [2 * tp / (2 * tp + fp + fn) for tp, fp, fn in counts]  # 0.947, 0.667, 0.667
    with (run / "per_volume.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["volume", "split", "slices", "spacing_row_mm", "spacing_col_mm",
                         "spacing_slice_mm", "liver_dice", "liver_iou", "liver_tp", "liver_fp",
                         "liver_fn"])  # fmt: skip
        for k, ((tp, fp, fn), d) in enumerate(zip(counts, dice, strict=True)):
            writer.writerow([f"volume-{k}", "test", 3, 0.8, 0.8, 2.0, d, d / (2 - d), tp, fp, fn])
    code, out, _ = _report(capsys, "liver", "--runs", str(runs))
    assert code == 0
    md = (runs / "liver-report" / "report.md").read_text()
    row = next(x for x in md.splitlines() if "liver Dice per volume (3-D), mean" in x)
    cells = [c.strip() for c in row.split("|")]
    assert cells[3] == "—" and cells[5] == f"{100 * np.mean(dice):.2f} %"
    lo, hi = (float(v) for v in cells[6].strip("[] %").split(", "))
    assert lo <= 100 * np.mean(dice) <= hi and lo >= 100 * min(dice) - 0.1
    glob = 2 * 180 / (2 * 180 + 30 + 70)
    assert f"Dice global (voxels of all volumes pooled) | — | — | {100 * glob:.2f} %" in md
    assert "| mIoU (test, pooled over slices; paper: validation) | 96.50 % | — | 80.00 %" in md
    assert "mIoU 0.965 > PA 0.929 cannot both be right" in md
    assert "mIoU 0.800 <= PA 0.950 holds" in md
    assert "test patients: 2, of which 0 also in training" in md
    assert "spacing as served 0.80 mm (median 0.80 x 0.80 mm, slices 2.00 mm) over 3" in md


def test_report_without_runs_names_the_command(tmp_path: Path, capsys) -> None:
    for experiment, command in (
        ("fer2013", "litlab fit --config fer2013-resnet50"),
        ("liver", "litlab fit --config liver-deeplabv3plus"),
    ):
        code, _, err = _report(capsys, experiment, "--runs", str(tmp_path))
        assert code == 2 and command in err
    with pytest.raises(SystemExit):
        report.main(["unknown-experiment"])


def test_a_second_report_reuses_the_counted_facts_and_its_figure(tmp_path: Path, capsys) -> None:
    """The run folder keeps its data facts, so asking again needs neither the data nor torch, and
    an unchanged report keeps its figure without loading matplotlib."""
    root = write_face_folders(tmp_path / "faces", n_train=70, n_val=21)
    data = {
        "class_path": "litlab.datamodules.face_expression.FaceExpressionDataModule",
        "init_args": {"root": str(root), "double_train": False},
    }
    runs = tmp_path / "runs"
    run = _run(runs / "faceexpr-facenet" / "20240101-000000", data, {"test/knn_acc": 0.5})
    assert _report(capsys, "faceexpr", "--runs", str(runs))[0] == 0
    first = (runs / "faceexpr-report" / "report.md").read_text()
    kept = json.loads((run / "data_facts.json").read_text())
    assert kept["facts"]["sizes"] and len(kept["key"]) == 16
    shutil.rmtree(root)  # the data is gone: only the kept facts can give the same report
    probe = (
        "import sys\nfrom litlab.cli import main\n"
        f"assert main(['report', 'faceexpr', '--runs', {str(runs)!r}]) == 0\n"
        "print([m for m in ('torch', 'lightning', 'matplotlib', 'cv2') if m in sys.modules])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr
    assert (runs / "faceexpr-report" / "report.md").read_text() == first
    # Facts kept under another key (another data config) are not used: they are counted again,
    # which here fails because the data is gone, and the report says so.
    (run / "data_facts.json").write_text(json.dumps({"key": "0" * 16, "facts": {}}))
    assert _report(capsys, "faceexpr", "--runs", str(runs))[0] == 0
    assert (
        "not counted, the run's data could not be rebuilt here"
        in (runs / "faceexpr-report" / "report.md").read_text()
    )
