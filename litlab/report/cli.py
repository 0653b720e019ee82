"""``litlab report <experiment>``: read finished runs, print the paper's table beside ours."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from litlab.datamodules.face_masks import save_rgb_png
from litlab.plots.autism_examples import example_grid
from litlab.report.autism import find_runs, report_text, score_arms


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="litlab report",
        description="Tables and figures comparing runs with the papers.",
    )
    parser.add_argument("experiment", choices=["autism"], help="which paper's table to build")
    parser.add_argument(
        "--raw", help="run folder of autism-resnet50 (default: newest under --runs)"
    )
    parser.add_argument(
        "--seg", help="run folder of autism-seg-resnet50 (default: newest under --runs)"
    )
    parser.add_argument("--runs", default="runs", help="root of run folders (default: runs)")
    parser.add_argument(
        "--out", help="folder for table.md and the example grid (default: <runs>/autism-report)"
    )
    parser.add_argument("--examples", type=int, default=6, help="test images in the example grid")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    return parser


def main(argv: list[str]) -> int:
    """Console entry: ``litlab report autism [--raw RUN] [--seg RUN] [--out DIR]``.

    Returns:
        0 on success, 2 when a run is missing or is not an autism run (the message says which).
    """
    args = _parser().parse_args(argv)
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

    out = Path(args.out) if args.out else Path(args.runs) / "autism-report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.txt").write_text(text + "\n")
    if "segmented" in runs:
        grid = example_grid(runs["segmented"].get("data") or {}, args.examples)
        if grid is not None:
            path = save_rgb_png(out / "examples-raw-mask-segmented.png", grid)
            print(f"\nexample images (raw | mask | segmented): {path}")
    print(f"table: {out / 'table.txt'}")
    return 0
