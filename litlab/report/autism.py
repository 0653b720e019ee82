"""The autism paper's Table 1 for both arms, with 95 % intervals (``litlab report autism``).

.. warning::
   The autism face set was scraped from the web and its labels cannot be verified; papers that
   used it are being retracted. These numbers describe a reproduction of a published pipeline,
   not a screening or diagnostic tool.

Each autism run writes ``test_confusion.json`` into its run folder (the
:class:`litlab.callbacks.confusion_writer.TestConfusionWriter` callback the presets add): the test
confusion matrix and what the data module knows about the data (split sizes, train/test duplicate
count, segmented-copy folders). The report reads the newest run of each preset under ``runs/`` (or
the folders given) and sets, per arm, accuracy, recall, precision and F1 of the positive class
(``autistic``, the paper's equations 1-4) with 95 % intervals (:mod:`litlab.report.intervals`)
beside the paper's Table 1.

The accuracy difference between the arms gets a bootstrap interval too (unpaired: both arms see
the same test images, so this is conservative).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from litlab.callbacks.run_files import CONFUSION_FILE
from litlab.report.document import Report, Row
from litlab.report.intervals import METRICS, bootstrap_metrics, metric_intervals

# Table 1 of the paper (000_4b6d53ea43115825.txt), fractions.
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "raw": {"acc": 0.837, "recall": 0.824, "precision": 0.837, "f1": 0.83},
    "segmented": {"acc": 0.859, "recall": 0.90, "precision": 0.859, "f1": 0.87},
}
ARM_PRESETS = {"raw": "autism-resnet50", "segmented": "autism-seg-resnet50"}
# The command that makes each arm's run.
ARM_COMMANDS = {
    "autism-resnet50": "litlab fit --config autism-resnet50",
    "autism-seg-resnet50": "litlab workflow segment-then-classify",
}
POSITIVE_CLASS = "autistic"


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """The ``test_confusion.json`` of a run folder (or the file itself)."""
    path = Path(run_dir).expanduser()
    path = path / CONFUSION_FILE if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: run the arm first (`{ARM_COMMANDS[ARM_PRESETS['raw']]}` / "
            f"`{ARM_COMMANDS[ARM_PRESETS['segmented']]}`); its test writes this file"
        )
    payload = json.loads(path.read_text())
    payload["run_dir"] = str(path.parent)
    return payload


def latest_run(runs_dir: str | Path, preset: str) -> Path:
    """The newest ``<runs_dir>/<preset>/<stamp>/`` holding a ``test_confusion.json``."""
    folder = Path(runs_dir) / preset
    found = sorted(folder.glob(f"*/{CONFUSION_FILE}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(
            f"no finished run of {preset} under {folder} (looked for */{CONFUSION_FILE}); run "
            f"`{ARM_COMMANDS.get(preset, f'litlab fit --config {preset}')}` first, or pass the "
            "run folder"
        )
    return found[-1].parent


def arm_rows(run: dict[str, Any], n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Metrics with intervals, test size and duplicates of one run."""
    classes = run.get("classes") or []
    if POSITIVE_CLASS not in classes:
        raise ValueError(
            f"{run['run_dir']}: classes {classes} lack {POSITIVE_CLASS!r}; is this an autism run?"
        )
    matrix = np.asarray(run["matrix"])
    positive = classes.index(POSITIVE_CLASS)
    return {
        "metrics": metric_intervals(matrix, positive, n_boot, seed),
        "boot_acc": bootstrap_metrics(matrix, positive, n_boot, seed + 1)["acc"],
        "n_test": int(matrix.sum()),
        "duplicates": (run.get("data") or {}).get("duplicates", {}),
        "run_dir": run["run_dir"],
        "fast_dev_run": run.get("fast_dev_run", False),
    }


def format_table(arms: dict[str, dict[str, Any]]) -> str:
    """Table 1 as plain text: paper rows and ours with 95 % intervals, in percent."""
    head = f"{'model':<34}" + "".join(
        f"{name:>22}" for name in ("accuracy", "recall", "precision", "F-score")
    )
    lines = [head, "-" * len(head)]
    labels = {"raw": "without segmentation", "segmented": "with segmentation"}
    for arm in ("raw", "segmented"):
        paper = PAPER_TABLE1[arm]
        lines.append(
            f"{'paper, ' + labels[arm]:<34}" + "".join(f"{100 * paper[m]:>21.1f}%" for m in METRICS)
        )
    for arm, rows in arms.items():
        cells = "".join(
            f"{100 * v:>9.1f}% [{100 * lo:4.1f}, {100 * hi:5.1f}]"
            for v, lo, hi in (rows["metrics"][m] for m in METRICS)
        )
        label = f"ours, {labels[arm]} (n={rows['n_test']})"
        lines.append(f"{label:<34}{cells}")
    return "\n".join(lines)


def accuracy_difference(arms: dict[str, dict[str, Any]]) -> tuple[float, float, float] | None:
    """Segmented minus raw accuracy with an unpaired bootstrap 95 % interval, if both arms exist."""
    if set(arms) != {"raw", "segmented"}:
        return None
    diff = arms["segmented"]["metrics"]["acc"][0] - arms["raw"]["metrics"]["acc"][0]
    boot = arms["segmented"]["boot_acc"] - arms["raw"]["boot_acc"]
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return float(diff), float(lo), float(hi)


def find_runs(
    runs_dir: str | Path, raw: str | None = None, seg: str | None = None
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each arm's run: the folder given, else the newest under ``runs_dir``.

    Returns:
        ``(runs, skipped)``: the ``test_confusion.json`` payload of each arm found, and one
        message per arm left out for lack of a run (naming the command that makes one).

    Raises:
        FileNotFoundError: A given run folder lacks its file.
    """
    runs: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for arm, given in (("raw", raw), ("segmented", seg)):
        if given:
            runs[arm] = load_run(given)
            continue
        try:
            runs[arm] = load_run(latest_run(runs_dir, ARM_PRESETS[arm]))
        except FileNotFoundError as err:
            skipped.append(f"skipping the {arm} arm: {err}")
    return runs, skipped


def score_arms(runs: dict[str, dict[str, Any]], n_boot: int = 2000) -> dict[str, dict[str, Any]]:
    """:func:`arm_rows` of every run, each arm with its own bootstrap seed.

    Raises:
        FileNotFoundError: ``runs`` is empty.
        ValueError: A run is not an autism run.
    """
    if not runs:
        raise FileNotFoundError("no autism runs found; pass --raw/--seg or --runs")
    # Distinct seeds: the arms' bootstraps must be independent draws, or the interval of
    # their difference collapses.
    return {arm: arm_rows(run, n_boot, seed=1000 * k) for k, (arm, run) in enumerate(runs.items())}


def report_text(arms: dict[str, dict[str, Any]]) -> str:
    """The whole report: Table 1, the accuracy difference, duplicates, run folders, warning."""
    lines = [
        "Autism faces, Table 1 (positive class: autistic; 95 % intervals: Wilson, F1 bootstrap)",
        "",
        format_table(arms),
        "",
    ]
    diff = accuracy_difference(arms)
    if diff is not None:
        lines.append(
            f"segmented - raw accuracy: {100 * diff[0]:+.1f} points "
            f"(95 % bootstrap interval {100 * diff[1]:+.1f} to {100 * diff[2]:+.1f}; paper: +2.2)"
        )
    for arm, rows in arms.items():
        dup = rows["duplicates"]
        if dup:
            lines.append(
                f"{arm}: {dup.get('exact', 0)} of {dup.get('test', rows['n_test'])} test images have an "
                f"identical training image by 64-bit dHash, {dup.get('near', 0)} a near-duplicate"
            )
        if rows["fast_dev_run"]:
            lines.append(f"{arm}: WARNING this run used fast_dev_run; its numbers mean nothing")
        lines.append(f"{arm} run: {rows['run_dir']}")
    lines += [
        "",
        "Reproduction of a published pipeline on a web-scraped dataset whose labels cannot be",
        "verified (papers using it are being retracted); not a screening or diagnostic tool.",
    ]
    return "\n".join(lines)


def autism_document(arms: dict[str, dict[str, Any]]) -> Report:
    """Table 1 of both arms as a :class:`~litlab.report.document.Report` (Markdown and PNG)."""
    labels = {"raw": "ResNet-50 on raw faces", "segmented": "DeepLabV3+ segmented, then ResNet-50"}
    names = {"acc": "accuracy", "recall": "recall", "precision": "precision", "f1": "F1"}
    report = Report(
        "autism",
        "Autism faces, Table 1: paper and ours (positive class: autistic)",
        "000_4b6d53ea43115825.txt",
        protocol=[
            "paper: a '70:30' train/validation split of 2,168 images, given as 1,890 train and "
            "378 validation images (neither 70:30 nor 2,168 in total); the set Table 1 is "
            "measured on is not described",
        ],
    )
    for arm, rows in arms.items():
        for metric in METRICS:
            value, lo, hi = rows["metrics"][metric]
            report.rows.append(
                Row(
                    labels[arm],
                    names[metric],
                    PAPER_TABLE1[arm][metric],
                    None,
                    value,
                    (lo, hi),
                    f"{rows['n_test']:,} images",
                )  # fmt: skip
            )
        dup = rows["duplicates"]
        if dup:
            report.leakage.append(
                f"{arm}: {dup.get('exact', 0)} of {dup.get('test', rows['n_test'])} test images "
                f"have an identical training image by 64-bit dHash, {dup.get('near', 0)} a "
                "near-duplicate"
            )
        report.runs.append(rows["run_dir"])
        if rows["fast_dev_run"]:
            report.notes.append(f"{arm}: this run used fast_dev_run; its numbers mean nothing")
    diff = accuracy_difference(arms)
    if diff is not None:
        report.notes.append(
            f"segmented - raw accuracy: {100 * diff[0]:+.1f} points (95 % bootstrap interval "
            f"{100 * diff[1]:+.1f} to {100 * diff[2]:+.1f}; paper: +2.2)"
        )
    report.notes.append(
        "Intervals: Wilson for accuracy, recall and precision; bootstrap for F1. Reproduction of "
        "a published pipeline on a web-scraped dataset whose labels cannot be verified (papers "
        "using it are being retracted); not a screening or diagnostic tool."
    )
    return report
