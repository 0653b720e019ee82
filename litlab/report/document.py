"""A paper-versus-ours report as data, and its two renderings: Markdown and a PNG figure.

Each experiment's module fills a :class:`Report` (rows of paper and our values with 95 %
intervals, the split protocols, the leakage counts, notes); :func:`write_report` turns it into
``report.md`` and ``report.png`` in the output folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from litlab.datamodules.cache import write_atomically
from litlab.report.papers import Paper

Interval = tuple[float, float]


@dataclass
class Row:
    """One line of the table: a setting's metric in the paper and in our runs.

    Attributes:
        setting: The configuration (e.g. "ResNet-50 transfer, random 80/20 split").
        metric: What is measured (e.g. "test accuracy").
        paper: The paper's value, ``None`` when it reports none.
        paper_ci: 95 % interval of the paper's value where its test size is known.
        ours: Our value, ``None`` when no run was found.
        ours_ci: Its 95 % interval.
        n: Our sample size in words ("196 images", "4 volumes").
        points: Per-fold or per-volume values, drawn as dots in the figure.
        percent: Show as a percentage (fractions); ``False`` for losses.
    """

    setting: str
    metric: str
    paper: float | None = None
    paper_ci: Interval | None = None
    ours: float | None = None
    ours_ci: Interval | None = None
    n: str = ""
    points: list[float] = field(default_factory=list)
    percent: bool = True


@dataclass
class Report:
    """Everything one ``litlab report <experiment>`` says."""

    experiment: str
    title: str
    paper_file: str
    protocol: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    leakage: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @classmethod
    def on_paper(cls, experiment: str, title: str, paper: Paper, *ours: str) -> Report:
        """An empty report set against ``paper``: its protocol comes first, then ``ours`` (how
        our runs split the data, where every run does it the same way)."""
        return cls(experiment, title, paper.file, protocol=[f"paper: {paper.protocol}", *ours])


def _value(value: float | None, percent: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:.2f} %" if percent else f"{value:.3f}"


def _interval(ci: Interval | None, percent: bool) -> str:
    if ci is None or any(math.isnan(v) for v in ci):
        return "—"
    scale, unit, digits = (100, " %", 1) if percent else (1, "", 3)
    return f"[{scale * ci[0]:.{digits}f}, {scale * ci[1]:.{digits}f}]{unit}"


def to_markdown(report: Report) -> str:
    """The report as Markdown: protocol, table, leakage, notes, runs."""
    lines = [f"# {report.title}", "", f"Paper: `shared/papers/{report.paper_file}`.", ""]
    if report.protocol:
        lines += ["## Split protocol", ""] + [f"- {p}" for p in report.protocol] + [""]
    lines += [
        "## Paper and ours (95 % intervals)",
        "",
        "| setting | metric | paper | paper 95 % | ours | ours 95 % | ours: n |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report.rows:
        cells = (
            row.setting,
            row.metric,
            _value(row.paper, row.percent),
            _interval(row.paper_ci, row.percent),
            _value(row.ours, row.percent),
            _interval(row.ours_ci, row.percent),
            row.n or "—",
        )
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if report.leakage:
        lines += ["## Leakage and duplicates", ""] + [f"- {x}" for x in report.leakage] + [""]
    if report.notes:
        lines += ["## Notes", ""] + [f"- {x}" for x in report.notes] + [""]
    if report.runs or report.skipped:
        lines += ["## Runs", ""] + [f"- `{x}`" for x in report.runs]
        lines += [f"- {x}" for x in report.skipped] + [""]
    return "\n".join(lines)


def write_report(report: Report, out: Path) -> tuple[Path, Path]:
    """Write ``out/report.md`` and ``out/report.png``; returns both paths.

    A report whose text is what ``out/report.md`` already holds keeps its figure (drawn from the
    same rows), so asking again for an unchanged report does not load matplotlib.
    """
    out.mkdir(parents=True, exist_ok=True)
    markdown, png = out / "report.md", out / "report.png"
    text = to_markdown(report) + "\n"
    if png.is_file() and markdown.is_file() and markdown.read_text() == text:
        return markdown, png
    import matplotlib.pyplot as plt

    from litlab.plots.report_figure import comparison_figure
    from litlab.plots.run_images import figure_to_array

    png.unlink(missing_ok=True)  # a figure never outlives the text it was drawn for
    write_atomically(markdown, lambda tmp: tmp.write_text(text))
    rows = [r for r in report.rows if r.percent]
    figure = comparison_figure(
        [f"{r.setting}\n{r.metric}" for r in rows],
        [r.paper for r in rows],
        [r.paper_ci for r in rows],
        [r.ours for r in rows],
        [r.ours_ci for r in rows],
        [r.points for r in rows],
        report.title,
    )
    pixels = figure_to_array(figure)
    write_atomically(
        png, lambda tmp: plt.imsave(tmp, pixels, format="png")
    )  # reused while unchanged
    plt.close(figure)
    return markdown, png
