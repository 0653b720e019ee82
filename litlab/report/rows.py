"""Building blocks the experiment reports share: metric rows, leakage sentences, run notes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litlab.report.document import Report, Row
from litlab.report.intervals import proportion_interval
from litlab.report.papers import PaperResult
from litlab.report.run_folders import RunFolder, finite


def proportion_row(
    setting: str,
    metric: str,
    paper: PaperResult | None,
    paper_key: str,
    ours: float | None,
    n: int | None,
    what: str = "images",
) -> Row:
    """A proportion (accuracy, precision, ...) in the paper and ours, each with a Wilson interval
    where its sample size is known."""
    paper_value = paper.metrics.get(paper_key) if paper is not None else None
    return Row(
        setting=setting,
        metric=metric,
        paper=paper_value,
        paper_ci=proportion_interval(paper_value, paper.n) if paper and paper_value else None,
        ours=ours if finite(ours) else None,
        ours_ci=proportion_interval(ours, n) if finite(ours) else None,
        n=f"{n:,} {what}" if n else "",
    )


def test_size(facts: dict[str, Any]) -> int | None:
    """Test images of a run's data facts (``None`` when they could not be counted)."""
    return (facts.get("sizes") or {}).get("test") or None


def leakage_lines(
    label: str, facts: dict[str, Any], groups: str = "subjects", what: str = "images"
) -> list[str]:
    """Sentences for one run's :func:`~litlab.report.data_facts.data_facts`; ``groups`` names
    who the images belong to, ``what`` the images."""
    if "error" in facts:
        return [
            f"{label}: not counted, the run's data could not be rebuilt here ({facts['error']})"
        ]
    sizes = facts.get("sizes") or {}
    parts = "test = val" if facts.get("test_is_val") else f"{sizes.get('test', 0):,} test"
    lines = [
        f"{label}: {sizes.get('train', 0):,} train / {sizes.get('val', 0):,} val / {parts} {what}"
    ]
    exact = facts.get("exact")
    if exact is not None:
        held = ", ".join(f"{v:,} {k}" for k, v in exact.items())
        lines.append(
            f"{label}: held-out images pixel-identical to a training image: {held}; test images "
            f"within 4 bits (of 64) of a training image's difference hash: {facts.get('near', 0):,}"
        )
    for part, g in (facts.get("groups") or {}).items():
        lines.append(
            f"{label}: {part} {groups}: {g['groups']}, of which {g['shared']} also in training "
            f"({g['images_of_shared']:,} {part} {what})"
        )
    return lines


def run_notes(report: Report, run: RunFolder) -> None:
    """Record the run folder, and warn about runs whose numbers mean little."""
    report.runs.append(str(run.path))
    if run.fast_dev_run:
        report.notes.append(f"{run.path}: a fast_dev_run smoke test; its numbers mean nothing")
    if run.status == "unknown":
        report.notes.append(f"{run.path}: no result.json; metrics read from csv/metrics.csv")


def missing(report: Report, runs_root: Path, preset: str, command: str | None = None) -> None:
    """Say that ``preset`` has no finished run and how to make one."""
    report.skipped.append(
        f"{preset}: no finished run under {Path(runs_root) / preset}; make one with "
        f"`{command or f'litlab fit --config {preset}'}`"
    )
