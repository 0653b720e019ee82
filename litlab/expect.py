"""What a default Make target should show: its run's headline metric beside chance and the paper.

Each ``make train-*`` target and ``make sweep-liver`` ends with ``python -m litlab.expect
<target>``, which reads the newest finished run of the target's preset (its ``result.json``, as
:func:`litlab.report.run_folders.latest_run` reads it) or, for the sweep, the study's
``best-test`` run (its test metrics) and ``trials.csv``, and prints one block::

    train-fer2013: test/acc = 0.612   (chance 0.263: always the majority class; paper 0.607)

Chance is the score of a model that learned nothing, on the embedded data: the share of the
test split's majority class for classifiers and kNN, 0 liver Dice for the segmenter (it predicts
background everywhere). On your own data (``DATA=``) the chance figure differs; the metric and
the paper's figure still apply.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from litlab.report.run_folders import latest_run, read_run

#: Below this validation liver Dice a sweep trial sits on the all-background plateau.
PLATEAU_DICE = 0.05
#: Trial states whose value is a liver Dice the trial reached (a pruned trial's is its last).
SCORED = ("COMPLETE", "PRUNED")


@dataclass(frozen=True)
class Expectation:
    """What one target's user should look at.

    Attributes:
        presets: The presets the target fits, in order.
        metric: The ``test/*`` key to read.
        chance: That metric for a model that learned nothing, on the embedded data.
        chance_why: How ``chance`` arises.
        paper: The paper's figure for each preset (a fraction), in ``presets`` order.
        paper_what: What the paper's figure measures, where it is not ``metric``.
        alternatives: Presets the target fits instead of ``presets[0]`` in some settings
            (``--preset``), each with the paper's figure for it, or None where the paper gives
            none.
    """

    presets: tuple[str, ...]
    metric: str
    chance: float
    chance_why: str
    paper: tuple[float, ...]
    paper_what: str = ""
    alternatives: tuple[tuple[str, float | None], ...] = ()


_MAJORITY = "always the majority class"
EXPECTATIONS: dict[str, Expectation] = {
    # On the embedded data the target fits the standard-stem arm: the modified stem costs 20x more
    # per image at 48 px (one epoch of the embedded set alone would take ten minutes on a CPU).
    "train-fer2013": Expectation(
        ("fer2013-resnet50",),
        "test/acc",
        0.263,
        _MAJORITY,
        (0.6071,),
        alternatives=(("fer2013-resnet50-standard", None),),
    ),
    "train-ckplus": Expectation(
        ("ckplus-resnet50-scratch",), "test/acc", 0.25, _MAJORITY, (0.9541,)
    ),
    "train-faceexpr": Expectation(
        ("faceexpr-facenet",), "test/knn_acc", 0.258, _MAJORITY, (0.9996,)
    ),
    "train-autism": Expectation(
        ("autism-resnet50", "autism-seg-resnet50"),
        "test/acc",
        0.5,
        "balanced classes",
        (0.837, 0.859),
    ),
    "train-liver": Expectation(
        ("liver-deeplabv3plus",),
        "test/dice_liver",
        0.0,
        "background everywhere",
        (0.965,),
        "validation mIoU; it reports no Dice",
    ),
}
EXPECTATIONS["sweep-liver"] = EXPECTATIONS["train-liver"]  # the sweep's best trial, same metric


def _fmt(value: float | None) -> str:
    return "missing" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _line(
    target: str, what: str, value: float | None, exp: Expectation, paper: float | None
) -> str:
    if paper is None:
        paper_text = f"the paper gives no figure for this preset; its best is {exp.paper[0]:.3f}"
    else:
        paper_text = f"paper {paper:.3f}" + (f" {exp.paper_what}" if exp.paper_what else "")
    return (
        f"{target}: {what}{exp.metric} = {_fmt(value)}   "
        f"(chance {exp.chance:.3f}: {exp.chance_why}; {paper_text})"
    )


def fit_lines(target: str, runs_root: Path, preset: str | None = None) -> list[str]:
    """One line per preset of a ``train-*`` target, from its newest finished run.

    ``preset`` names the one preset the target fitted, where it fitted one of its alternatives.
    """
    exp = EXPECTATIONS[target]
    pairs = list(zip(exp.presets, exp.paper, strict=True))
    if preset is not None:
        known = dict(pairs) | dict(exp.alternatives)
        if preset not in known:
            raise ValueError(f"{target} fits one of {', '.join(known)}, not {preset!r}")
        pairs = [(preset, known[preset])]
    lines = []
    for name, paper in pairs:
        run = latest_run(runs_root, name)
        if run is None:
            lines.append(f"{target}: no finished run of {name} under {runs_root / name}")
            continue
        prefix = f"{name} " if len(pairs) > 1 or name != exp.presets[0] else ""
        lines.append(_line(target, prefix, run.test.get(exp.metric), exp, paper))
        lines.append(f"  run folder: {run.path}")
    return lines


def sweep_lines(study_dir: Path) -> list[str]:
    """The best trial's test metric and how many trials ended on the all-background plateau."""
    exp = EXPECTATIONS["sweep-liver"]
    # The best trial's test run (``litlab test``): its metrics.csv, or a result.json where one is.
    test = read_run(study_dir / "best-test").test
    lines = [_line("sweep-liver", "best trial ", test.get(exp.metric), exp, exp.paper[0])]
    trials_csv = study_dir / "trials.csv"
    if trials_csv.is_file():
        with trials_csv.open(newline="") as f:
            values = [r["value"] for r in csv.DictReader(f) if r["state"] in SCORED and r["value"]]
        stuck = sum(float(v) < PLATEAU_DICE for v in values)
        lines.append(
            f"  {stuck} of {len(values)} trials (complete or pruned) ended on the all-background "
            f"plateau (val liver Dice < {PLATEAU_DICE}); study folder: {study_dir}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m litlab.expect <target> [--runs DIR] [--study DIR]``: print the block."""
    parser = argparse.ArgumentParser(prog="python -m litlab.expect", description=__doc__)
    parser.add_argument("target", choices=sorted(EXPECTATIONS))
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="runs folder")
    parser.add_argument("--study", type=Path, help="sweep-liver: the study folder")
    parser.add_argument("--preset", help="the preset the target fitted, where it has alternatives")
    args = parser.parse_args(argv)
    if args.target == "sweep-liver":
        if args.study is None:
            parser.error("sweep-liver needs --study <runs/sweeps/STUDY>")
        lines = sweep_lines(args.study)
    else:
        try:
            lines = fit_lines(args.target, args.runs, args.preset)
        except ValueError as err:
            parser.error(str(err))
    print("\nwhat to look at:")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
