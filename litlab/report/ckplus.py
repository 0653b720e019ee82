"""``litlab report ckplus``: Table II beside our random split and our subject folds, side by side.

CK+48 keeps the last frames of each posed sequence, so the paper's random 80/20 image split puts
near-identical frames of one subject on both sides. For each preset (transfer, scratch) the report
reads the newest run of the paper's random split (``runs/<preset>/``) and the newest run of each
fold of ``litlab cv --config <preset>`` (``runs/<preset>-cv/fold<k>/``), and sets them beside the
paper: accuracy with a Wilson interval (the folds pooled, every image tested once), macro
precision, recall and F1, and how many test subjects and near-duplicate frames each protocol
shares with training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from litlab.report.data_facts import run_data_facts
from litlab.report.document import Report, Row
from litlab.report.intervals import proportion_interval, wilson_interval
from litlab.report.papers import CKPLUS
from litlab.report.rows import leakage_lines, missing, proportion_row, run_notes, test_size
from litlab.report.run_folders import RunFolder, cv_runs, finished_runs

PRESETS = {"ckplus-resnet50": "ResNet-50 transfer", "ckplus-resnet50-scratch": "ResNet-50 scratch"}
METRICS = (("acc", "accuracy"), ("precision", "precision (macro)"), ("recall", "recall (macro)"))
METRICS += (("f1", "F1 (macro)"),)


def _random_run(runs_root: Path, preset: str) -> RunFolder | None:
    """The newest finished run of the paper's random split (not a single subject fold)."""
    runs = finished_runs(Path(runs_root) / preset)
    return next((r for r in runs if r.data_args.get("split", "random") == "random"), None)


def _random_rows(report: Report, setting: str, preset: str, run: RunFolder, check: bool) -> None:
    paper = CKPLUS.results[preset]
    facts = run_data_facts(run.config, run_dir=run.path) if check else {}
    n = test_size(facts)
    label = f"{setting}, random 80/20 split (paper's protocol)"
    for key, metric in METRICS:
        row = proportion_row(label, metric, paper, key, run.test.get(f"test/{key}"), n)
        if key != "acc":  # macro averages are not proportions of n images
            row.ours_ci = row.paper_ci = None
        report.rows.append(row)
    if facts:
        report.leakage += leakage_lines(f"{preset}, random split", facts)
    run_notes(report, run)


def _fold_rows(
    report: Report, setting: str, preset: str, folds: list[RunFolder], check: bool
) -> None:
    paper = CKPLUS.results[preset]
    label = f"{setting}, subject {len(folds)}-fold (no subject in two parts)"
    facts = [run_data_facts(f.config, run_dir=f.path) if check else {} for f in folds]
    sizes = [test_size(f) for f in facts]
    for key, metric in METRICS:
        values = [f.test.get(f"test/{key}") for f in folds]
        values = [v for v in values if v is not None]
        if not values:
            continue
        row = Row(label, f"{metric}, mean of folds", paper.metrics.get(key), None,
                  float(np.mean(values)), None, f"{len(values)} folds",
                  points=values)  # fmt: skip
        if key == "acc" and values and all(sizes) and len(sizes) == len(values):
            correct = sum(round(v * n) for v, n in zip(values, sizes, strict=True))
            total = sum(sizes)
            row.metric, row.ours = "accuracy, folds pooled", correct / total
            row.ours_ci, row.n = wilson_interval(correct, total), f"{total:,} images"
            row.paper_ci = proportion_interval(paper.metrics["acc"], paper.n)
        report.rows.append(row)
    shared = sum((f.get("groups") or {}).get("test", {}).get("shared", 0) for f in facts)
    near = sum(f.get("near", 0) for f in facts)
    if any(facts):
        report.leakage.append(
            f"{preset}, subject folds: test subjects also in training, summed over folds: "
            f"{shared}; test images within 4 bits of a training image: {near:,}"
        )
        errors = [f["error"] for f in facts if "error" in f]
        if errors:
            report.leakage.append(f"{preset}, subject folds: not counted ({errors[0]})")
    for fold in folds:
        run_notes(report, fold)
    std = np.std([f.test.get("test/acc", np.nan) for f in folds], ddof=1) if len(folds) > 1 else 0
    report.notes.append(f"{preset}: fold accuracy standard deviation {100 * std:.1f} points")


def build(runs_root: Path, check_data: bool = True) -> Report:
    """The CK+ report from the runs under ``runs_root``."""
    report = Report.on_paper(
        "ckplus",
        "CK+48 expressions, ResNet-50: paper's random split and subject folds",
        CKPLUS,
        "ours, random split: the paper's seeded, stratified 80/20 image split "
        "(data.split=random); validation is the test part unless data.val_fraction > 0, as "
        "the paper has no other part",
        "ours, subject folds: StratifiedGroupKFold on the S### subject id "
        "(data.split=subject, `litlab cv`); validation carved from the training subjects",
    )
    report.notes.append(
        "Difference hashes of aligned, equalised 48-px faces also match between different people "
        "(the subject folds, which share no subject, still count near-duplicates), so the shared "
        "subject counts are the leakage measure; the hash counts compare the two protocols."
    )
    for preset, setting in PRESETS.items():
        run = _random_run(runs_root, preset)
        if run is not None:
            _random_rows(report, setting, preset, run, check_data)
        else:
            missing(report, runs_root, preset)
            paper = CKPLUS.results[preset]
            report.rows.append(proportion_row(f"{setting}, random 80/20 split", "accuracy",
                                              paper, "acc", None, None))  # fmt: skip
        folds = cv_runs(runs_root, preset)
        if folds:
            _fold_rows(report, setting, preset, folds, check_data)
        else:
            missing(report, runs_root, f"{preset}-cv", f"litlab cv --config {preset} --folds 10")
    return report
