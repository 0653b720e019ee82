"""``litlab report liver``: per-volume Dice beside the paper's mIoU / PA, with the erratum stated.

The paper (004) reports validation mIoU 0.965 and PA 0.929, pooled over slices; LiTS and
nnU-Net score each scan (volume) whole. For each liver preset the newest run gives our pooled
test mIoU, PA and loss (as the paper's) and, from its ``per_volume.csv``, the 3-D Dice per test
volume: their mean with a bootstrap interval over volumes, and the global Dice (voxels of all
volumes pooled) with a bootstrap interval that keeps each volume's voxels together.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from litlab.callbacks.run_files import PER_VOLUME_FILE
from litlab.report.data_facts import run_data_facts
from litlab.report.document import Report, Row
from litlab.report.intervals import bootstrap_mean_interval, bootstrap_pooled_dice_interval
from litlab.report.papers import LIVER, LIVER_ERRATUM
from litlab.report.rows import leakage_lines, missing, run_notes
from litlab.report.run_folders import RunFolder, latest_run

PRESETS = {
    "liver-deeplabv3plus": "DeepLabV3Plus (ResNet-34)",
    "liver-resnet": "ResNet baseline (FCN-32s reading)",
}


def read_per_volume(path: Path, structure: str = "") -> dict[str, np.ndarray]:
    """Columns of a ``per_volume.csv``: ``dice``, ``iou``, ``tp``, ``fp``, ``fn`` of the first
    scored structure (or ``structure``) and ``spacing`` ``(V, 3)``.

    Raises:
        ValueError: The file has no Dice column.
    """
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0]) if rows else []
    names = [c[: -len("_dice")] for c in header if c.endswith("_dice")]
    if not names:
        raise ValueError(f"{path} has no <structure>_dice column; is it a litlab per_volume.csv?")
    s = structure or names[0]

    def column(name: str) -> np.ndarray:
        return np.array([float(r[name]) if r[name] != "" else math.nan for r in rows])

    spacing = np.stack(
        [column(f"spacing_{a}_mm") for a in ("row", "col", "slice")], axis=1
    ) if rows else np.zeros((0, 3))  # fmt: skip
    out = {k: column(f"{s}_{k}") for k in ("dice", "iou", "tp", "fp", "fn")}
    return {**out, "spacing": spacing, "structure": np.array(s)}


def _spacing_text(spacing: np.ndarray, requested: float | None) -> str:
    known = spacing[np.isfinite(spacing).all(axis=1)]
    if not len(known):
        return "voxel spacing not recorded (PNG slices)"
    med = np.median(known, axis=0)
    lo, hi = known[:, 0].min(), known[:, 0].max()
    how = f"resampled to {requested} mm (data.spacing)" if requested else "resized, not resampled"
    span = f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}-{hi:.2f}"
    return (
        f"pixel spacing as served {span} mm (median {med[0]:.2f} x {med[1]:.2f} mm, slices "
        f"{med[2]:.2f} mm) over {len(known)} volume(s), {how}"
    )


def _volume_rows(report: Report, setting: str, run: RunFolder) -> None:
    path = run.file(PER_VOLUME_FILE)
    if path is None:
        report.notes.append(
            f"{run.path}: no {PER_VOLUME_FILE} (a run from before per-volume scoring, or data "
            "without volume ids); test it again: litlab test --ckpt_path <its best.ckpt>"
        )
        return
    table = read_per_volume(path)
    dice, n = table["dice"], int(np.isfinite(table["dice"]).sum())
    mean = float(np.nanmean(dice)) if n else None
    pooled = 2 * table["tp"].sum() + table["fp"].sum() + table["fn"].sum()
    s, volumes = table["structure"], f"{n} volume{'s' if n != 1 else ''}"
    report.rows += [
        Row(setting, f"{s} Dice per volume (3-D), mean", None, None, mean,
            bootstrap_mean_interval(dice), volumes, points=[float(d) for d in dice]),
        Row(setting, f"{s} IoU per volume (3-D), mean", None, None,
            float(np.nanmean(table["iou"])) if n else None, bootstrap_mean_interval(table["iou"]),
            volumes),
        Row(setting, f"{s} Dice global (voxels of all volumes pooled)", None, None,
            float(2 * table["tp"].sum() / pooled) if pooled else None,
            bootstrap_pooled_dice_interval(table["tp"], table["fp"], table["fn"]), volumes),
    ]  # fmt: skip
    if n > 1:
        report.notes.append(
            f"{run.preset}: per-volume Dice {mean:.3f} ± {np.nanstd(dice, ddof=1):.3f} (sd), "
            f"worst volume {np.nanmin(dice):.3f}"
        )
    report.protocol.append(
        f"ours, {run.preset}: {_spacing_text(table['spacing'], run.data_args.get('spacing'))}"
    )


def build(runs_root: Path, check_data: bool = True) -> Report:
    """The liver report from the newest run of each liver preset under ``runs_root``."""
    report = Report.on_paper(
        "liver", "Liver CT segmentation: per-volume Dice beside the paper's mIoU and PA", LIVER
    )
    for preset, setting in PRESETS.items():
        paper = LIVER.results[preset].metrics
        run = latest_run(runs_root, preset)
        test = run.test if run is not None else {}
        pooled = "test, pooled over slices" if run is not None else "pooled over slices"
        report.rows += [
            Row(setting, f"mIoU ({pooled}; paper: validation)", paper["miou"], None,
                test.get("test/miou")),
            Row(setting, f"pixel accuracy ({pooled}; paper: validation)", paper["pixel_acc"],
                None, test.get("test/pixel_acc")),
            Row(setting, "loss", paper["loss"], None, test.get("test/loss"), percent=False),
        ]  # fmt: skip
        if run is None:
            missing(report, runs_root, preset)
            continue
        fractions = run.data_args.get("split_fractions", [0.70, 0.16, 0.14])
        report.protocol.append(
            f"ours, {preset}: patients split {'/'.join(f'{100 * f:.0f}' for f in fractions)} "
            "(train/val/test), every slice of a patient in one part; validation and test score "
            "every slice of their scans"
        )
        _volume_rows(report, setting, run)
        miou, pa = test.get("test/miou"), test.get("test/pixel_acc")
        if miou is not None and pa is not None:
            holds = "holds" if miou <= pa + 1e-6 else "FAILS"
            report.notes.append(f"{preset}: mIoU {miou:.3f} <= PA {pa:.3f} {holds}")
        if check_data:
            facts = run_data_facts(run.config, pixels=False, run_dir=run.path)
            report.leakage += leakage_lines(preset, facts, groups="patients", what="slices")
        run_notes(report, run)
    report.notes.insert(0, LIVER_ERRATUM)
    return report
