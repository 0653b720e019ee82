"""``litlab report fer2013``: the paper's best ResNet-50 cell and its grid beside our runs.

The paper (003) gives train / validation / test accuracy of its best configuration only (the grid
of Appendix A is not in the text). For each FER2013 preset the newest finished run is read; the
accuracies get Wilson intervals from the split sizes of the run's own data, which is rebuilt from
its config to count test images that are pixel-identical to, or near copies of, training images
(FER2013 has such duplicates across its Usage parts).
"""

from __future__ import annotations

from pathlib import Path

from litlab.report.data_facts import run_data_facts
from litlab.report.document import Report, Row
from litlab.report.papers import FER2013
from litlab.report.rows import leakage_lines, missing, proportion_row, run_notes, test_size
from litlab.report.run_folders import latest_run

PRESETS: dict[str, str] = {
    "fer2013-resnet50": "modified 48-px stem, augmented, SGD lr 0.01",
    "fer2013-resnet50-standard": "standard stem, augmented, SGD lr 0.01",
    "fer2013-resnet50-noaug": "modified stem, no augmentation, SGD lr 0.01",
    "fer2013-resnet50-adam": "modified stem, augmented, Adam",
}
SPLITS = {
    "usage": "Usage column: Training / PublicTest / PrivateTest (the official parts)",
    "random": "seeded stratified 80/10/10 resplit of all rows",
}


def build(runs_root: Path, check_data: bool = True) -> Report:
    """The FER2013 report from the newest run of each preset under ``runs_root``."""
    report = Report.on_paper("fer2013", "FER2013, ResNet-50 from scratch: paper and ours", FER2013)
    for preset, setting in PRESETS.items():
        paper = FER2013.results.get(preset)
        run = latest_run(runs_root, preset)
        if run is None:
            missing(report, runs_root, preset)
            if paper is not None:
                for key, metric in (("val_acc", "val accuracy"), ("acc", "test accuracy")):
                    report.rows.append(proportion_row(setting, metric, paper, key, None, None))
            continue
        split = run.data_args.get("split", "usage")
        report.protocol.append(f"ours, {preset}: {SPLITS.get(split, split)}")
        facts = run_data_facts(run.config, run_dir=run.path) if check_data else {}
        sizes = facts.get("sizes") or {}
        if paper is not None:
            train_acc = run.train.get("train/acc")
            report.rows.append(
                Row(
                    setting,
                    "train accuracy (augmented, kept epoch)",
                    paper.metrics["train_acc"],
                    None,
                    train_acc,
                    None,
                    "not a held-out estimate",
                )  # fmt: skip
            )
            report.rows.append(
                proportion_row(
                    setting,
                    "val accuracy",
                    paper,
                    "val_acc",
                    run.val.get("val/acc"),
                    sizes.get("val"),
                )  # fmt: skip
            )
        report.rows.append(
            proportion_row(
                setting, "test accuracy", paper, "acc", run.test.get("test/acc"), test_size(facts)
            )  # fmt: skip
        )
        if facts:
            report.leakage += leakage_lines(preset, facts)
        run_notes(report, run)
    report.notes.append(
        "The paper's other grid cells (Appendix A) are not in its text, so only its best "
        "configuration has paper values."
    )
    return report
