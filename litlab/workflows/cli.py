"""``litlab workflow <name>``: run a workflow of runs, or one of its steps by hand.

``litlab workflow segment-then-classify [--config P] [--segmenter-config P]
[--segmenter-checkpoint CKPT] [--output_dir runs] [options]`` and ``litlab workflow
remove-background ...`` (its middle step, also for preparing new faces for ``litlab predict``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from litlab.metric_table import print_metric_table
from litlab.workflows import remove_background
from litlab.workflows.segment_then_classify import (
    CLASSIFIER_PRESET,
    NAME,
    SEGMENTER_PRESET,
    SegmentThenClassify,
    StepFailed,
)
from litlab.workflows.steps import BadStepInput, StepEnd

log = logging.getLogger(__name__)

WORKFLOWS = {
    NAME: "fit the face segmenter, write the background-removed copy, fit the classifier on it",
    "remove-background": "copy a face folder with its background removed by a face segmenter",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"litlab workflow {NAME}",
        description="The segmented autism arm as three cached, resumable runs. Other "
        "--dotted.key=value options go to the classifier as `litlab fit` takes them (those naming "
        "the faces and devices reach the segmenter too); --segmenter.<option> goes to the "
        "segmenter alone.",
    )
    p.add_argument("--config", default=CLASSIFIER_PRESET, help="the classifier's preset or YAML")
    p.add_argument(
        "--segmenter-config", default=SEGMENTER_PRESET, help="the segmenter's preset or YAML"
    )
    p.add_argument(
        "--segmenter-checkpoint",
        default=None,
        help="use this face segmenter instead of fitting one",
    )
    p.add_argument("--output_dir", default="runs", help="root folder of the steps' run folders")
    return p


def _print_result(ends: list[StepEnd]) -> None:
    classifier = ends[-1]
    print_metric_table((classifier.result or {}).get("test") or {})
    print()
    for end in ends:
        how = "reused" if end.reused else "ran"
        print(f"{end.step.name:<11} {how:<7} {end.step.run_dir}")
    print("\ncompare with the raw arm: litlab report autism")


def segment_then_classify(argv: list[str]) -> int:
    """``litlab workflow segment-then-classify``; returns the exit status."""
    args, options = _parser().parse_known_args(argv)
    try:
        workflow = SegmentThenClassify(
            options,
            args.config,
            args.segmenter_config,
            Path(args.output_dir),
            Path(args.segmenter_checkpoint).expanduser() if args.segmenter_checkpoint else None,
        )
        ends = workflow.run()
    except BadStepInput as err:
        print(f"litlab workflow: error: {err}", file=sys.stderr)
        return 2
    except StepFailed as err:
        print(f"litlab workflow: error: {err}", file=sys.stderr)
        return err.exit_code
    except (FileNotFoundError, ValueError) as err:
        print(f"litlab workflow: error: {err}", file=sys.stderr)
        return 2
    _print_result(ends)
    return 0


def main(argv: list[str]) -> int:
    """Console entry: ``litlab workflow <name> ...``."""
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in WORKFLOWS:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"litlab workflow: error: unknown workflow {argv[0]!r}", file=sys.stderr)
        print("usage: litlab workflow <name> [options]   (litlab workflow <name> --help)\n")
        for name, what in WORKFLOWS.items():
            print(f"  {name:<22} {what}")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    if argv[0] == "remove-background":
        return remove_background.main(argv[1:])
    return segment_then_classify(argv[1:])
