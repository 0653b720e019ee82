"""``litlab report <experiment>``: read finished runs, set the paper's table beside ours.

Every experiment writes ``report.md`` and ``report.png`` to ``--out`` (default
``<runs>/<experiment>-report/``) and prints the Markdown; autism also keeps its plain-text
``table.txt`` and example grid.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from litlab.report import ckplus, faceexpr, fer2013, liver
from litlab.report.autism import autism_document, find_runs, report_text, score_arms
from litlab.report.document import Report, write_report

BUILDERS: dict[str, Callable[[Path, bool], Report]] = {
    "fer2013": fer2013.build,
    "ckplus": ckplus.build,
    "faceexpr": faceexpr.build,
    "liver": liver.build,
}
EXPERIMENTS = ("fer2013", "ckplus", "faceexpr", "autism", "liver")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="litlab report",
        description="The paper's table beside ours from the runs found, with 95 % intervals, "
        "the split protocols and leakage counts; writes report.md and report.png.",
    )
    parser.add_argument("experiment", choices=EXPERIMENTS, help="which paper's table to build")
    parser.add_argument("--runs", default="runs", help="root of run folders (default: runs)")
    parser.add_argument(
        "--out", help="output folder (default: <runs>/<experiment>-report)", default=None
    )
    parser.add_argument(
        "--no-data-check",
        action="store_true",
        help="do not rebuild each run's data from its config to count leakage and duplicates",
    )
    autism = parser.add_argument_group("autism")
    autism.add_argument("--raw", help="run folder of autism-resnet50 (default: newest)")
    autism.add_argument("--seg", help="run folder of autism-seg-resnet50 (default: newest)")
    autism.add_argument("--examples", type=int, default=6, help="test images in the example grid")
    autism.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    return parser


def _autism(args: argparse.Namespace, out: Path) -> int:
    try:
        runs, skipped = find_runs(args.runs, args.raw, args.seg)
        for message in skipped:
            print(f"litlab report: {message}", file=sys.stderr)
        if not runs:
            raise FileNotFoundError(f"no autism runs found under {args.runs}; pass --raw/--seg")
        arms = score_arms(runs, args.bootstrap)
    except (FileNotFoundError, ValueError) as err:
        print(f"litlab report: error: {err}", file=sys.stderr)
        return 2
    text = report_text(arms)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.txt").write_text(text + "\n")
    if "segmented" in runs:
        # The example grid decodes images (OpenCV): loaded only for the autism report.
        from litlab.datamodules.face_masks import save_rgb_png
        from litlab.plots.autism_examples import example_grid

        grid = example_grid(runs["segmented"].get("data") or {}, args.examples)
        if grid is not None:
            path = save_rgb_png(out / "examples-raw-mask-segmented.png", grid)
            print(f"\nexample images (raw | mask | segmented): {path}")
    markdown, png = write_report(autism_document(arms), out)
    print(f"table: {out / 'table.txt'}\nreport: {markdown}\nfigure: {png}")
    return 0


def main(argv: list[str]) -> int:
    """Console entry: ``litlab report <experiment> [--runs DIR] [--out DIR]``.

    Returns:
        0 on success; 2 when no finished run of the experiment is found (the message names the
        command that makes one) or a run folder is not of the experiment.
    """
    args = _parser().parse_args(argv)
    out = Path(args.out) if args.out else Path(args.runs) / f"{args.experiment}-report"
    if args.experiment == "autism":
        return _autism(args, out)
    try:
        report = BUILDERS[args.experiment](Path(args.runs), not args.no_data_check)
    except (FileNotFoundError, ValueError) as err:
        print(f"litlab report: error: {err}", file=sys.stderr)
        return 2
    if not report.runs:
        print(
            f"litlab report: error: no finished {args.experiment} run under {args.runs}:",
            *(f"  {line}" for line in report.skipped),
            sep="\n",
            file=sys.stderr,
        )
        return 2
    markdown, png = write_report(report, out)
    print(markdown.read_text())
    print(f"report: {markdown}\nfigure: {png}")
    return 0
