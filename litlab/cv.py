"""``litlab cv``: subject-independent k-fold cross-validation of a preset, each fold a run.

``litlab cv --config ckplus-resnet50 --folds 10 [--only 0,1,2] [--workers 2 | --gpus 0,1,2,3
[--gpus-per-fold 1]] [--csv cv.csv] [--output_dir runs] [overrides]``

Fold ``k`` is a child ``litlab fit --config <preset> --data.split=subject --data.fold=k
--data.n_folds=N <overrides>`` (fit, then test of its best checkpoint) with its own run folder
``<output_dir>/<preset>-cv/<key>/fold<k>/``, where the key covers the preset file, the number
of folds and every override that changes a result. So every image is tested exactly once across
the folds and no subject is in both the training and the test part of a fold. Folds run one at a
time, ``--workers N`` at once, or one per GPU set (``--gpus``, ``--gpus-per-fold``), as sweep
trials do.

Running the same command again skips every finished fold, continues a killed one from its
``last.ckpt`` and runs the rest. The summary is rebuilt each time from the folds' ``result.json``
files: every finished fold's test metrics, then their mean and sample standard deviation, printed
and written to ``<output_dir>/<preset>-cv/<key>/summary.csv`` (and to ``--csv``).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from litlab.datamodules.cache import write_atomically
from litlab.overrides import parse_options
from litlab.presets import resolve_preset
from litlab.runs import gpu_slots
from litlab.workflows.steps import BadStepInput, Step, StepEnd, run_key, run_steps

log = logging.getLogger(__name__)

# Set by cv for every fold; a user override of them would silently break the protocol.
_RESERVED = ("--data.split", "--data.fold", "--data.n_folds", "--test_after_fit", "--ckpt_path")
SUMMARY = "summary.csv"
PLAN = "cv.json"


def fold_args(config: str, fold: int, n_folds: int, overrides: Sequence[str]) -> list[str]:
    """The ``litlab fit`` arguments for one fold.

    Args:
        config: Preset name or YAML path.
        fold: Test fold, in ``[0, n_folds)``.
        n_folds: Number of subject folds.
        overrides: Extra ``--dotted.key=value`` arguments passed through unchanged.

    Raises:
        ValueError: ``fold`` out of range, or an override that sets the split, fold or test.
    """
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must lie in [0, {n_folds}), got {fold}")
    for arg in overrides:
        if arg.split("=", 1)[0] in _RESERVED:
            raise ValueError(
                f"{arg!r} conflicts with cross-validation, which sets {', '.join(_RESERVED)}"
            )
    args = [
        "--config",
        config,
        "--data.split=subject",
        f"--data.fold={fold}",
        f"--data.n_folds={n_folds}",
    ]
    names = {a.split("=", 1)[0] for a in overrides}
    stem = Path(config).stem
    if "--preset_name" not in names:
        args.append(f"--preset_name={stem}-cv")
    if "--wandb_group" not in names:
        args.append(f"--wandb_group={stem}-cv")
    return args + list(overrides)


def cv_folder(config: str, n_folds: int, overrides: Sequence[str], output_dir: Path) -> Path:
    """``<output_dir>/<preset>-cv/<key>``: the same command finds the same folder."""
    key = run_key(config, list(overrides), "cv", n_folds)
    return Path(output_dir) / f"{Path(config).stem}-cv" / key


def fold_steps(config: str, n_folds: int, overrides: Sequence[str], folder: Path) -> list[Step]:
    """One ``litlab fit`` step per fold, in ``folder/fold<k>``."""
    return [
        Step(f"fold {k}", ["fit", *fold_args(config, k, n_folds, overrides)], folder / f"fold{k}")
        for k in range(n_folds)
    ]


def fold_results(steps: Sequence[Step]) -> tuple[list[int], list[dict[str, float]], dict[int, str]]:
    """``(finished folds, their test metrics, {unfinished fold: state})`` read from the folders."""
    folds, results, others = [], [], {}
    for k, step in enumerate(steps):
        result = step.result()
        if result is not None and result.get("status") == "finished":
            folds.append(k)
            results.append({m: float(v) for m, v in (result.get("test") or {}).items()})
        else:
            others[k] = step.state()
    return folds, results, others


def aggregate(results: Sequence[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Mean and sample standard deviation (``ddof=1``; 0 for a single fold) of each metric.

    Metrics missing from some folds are aggregated over the folds that have them.
    """
    names = sorted({k for r in results for k in r})
    out = {}
    for name in names:
        values = np.array([r[name] for r in results if name in r], dtype=float)
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[name] = (float(values.mean()), std)
    return out


def write_csv(path: Path, folds: Sequence[int], results: Sequence[dict[str, float]]) -> Path:
    """One row per fold, then ``mean`` and ``std`` rows; one column per metric."""
    summary = aggregate(results)
    names = list(summary)

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["fold", *names])
            for fold, result in zip(folds, results, strict=True):
                writer.writerow([fold, *(result.get(n, "") for n in names)])
            writer.writerow(["mean", *(summary[n][0] for n in names)])
            writer.writerow(["std", *(summary[n][1] for n in names)])

    return write_atomically(path, write)


def format_summary(summary: dict[str, tuple[float, float]], n_folds: int) -> str:
    """``metric  mean ± std`` lines."""
    width = max((len(k) for k in summary), default=6)
    lines = [f"{'metric'.ljust(width)}   mean ± std over {n_folds} fold(s)"]
    for name, (mean, std) in summary.items():
        lines.append(f"{name.ljust(width)}   {mean:.4f} ± {std:.4f}")
    return "\n".join(lines)


def device_slots(gpus: str | None, per_fold: int, workers: int) -> list[str | None]:
    """The concurrent folds' devices: GPU sets from ``gpus``, else ``workers`` CPU slots."""
    if gpus:
        return list(gpu_slots(gpus, per_fold, "--gpus-per-fold"))
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    return [None] * workers


def run_cv(
    steps: Sequence[Step], folds: Sequence[int], slots: Sequence[str | None]
) -> list[StepEnd]:
    """Run (or reuse) the given folds' steps over ``slots``; returns their ends."""
    for k in folds:
        log.info("cross-validation fold %d: %s", k, steps[k].state())
    return run_steps([steps[k] for k in folds], slots)


def _parse_folds(text: str | None, n_folds: int) -> list[int]:
    if not text:
        return list(range(n_folds))
    try:
        folds = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError as err:
        raise ValueError(f"--only takes comma-separated fold numbers, got {text!r}") from err
    bad = [k for k in folds if not 0 <= k < n_folds]
    if bad or not folds:
        raise ValueError(f"--only folds must lie in [0, {n_folds}), got {text!r}")
    return folds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="litlab cv",
        description="Subject-independent k-fold cross-validation of a preset, each fold a "
        "`litlab fit` run; extra --dotted.key=value arguments go to every fold. Running the same "
        "command again resumes it.",
    )
    parser.add_argument("--config", required=True, help="preset name or YAML path")
    parser.add_argument("--folds", type=int, default=10, help="number of subject folds")
    parser.add_argument("--only", default=None, help="run only these folds, e.g. 0,1,2")
    parser.add_argument("--workers", type=int, default=1, help="folds run at once (no --gpus)")
    parser.add_argument("--gpus", default=None, help="GPU ids to spread folds over, e.g. 0,1,2,3")
    parser.add_argument("--gpus-per-fold", type=int, default=1, help="GPUs of each fold's run")
    parser.add_argument("--csv", default=None, help="also write the summary CSV here")
    parser.add_argument("--output_dir", default="runs", help="root folder of the fold runs")
    return parser


def _device_overrides(args: argparse.Namespace, overrides: list[str]) -> list[str]:
    """With ``--gpus``, each fold runs on its GPU set unless the overrides say otherwise."""
    if not args.gpus:
        return []
    given = {o.name for o in parse_options(overrides)}
    out = [] if "trainer.accelerator" in given else ["--trainer.accelerator=gpu"]
    return out + ([] if "trainer.devices" in given else [f"--trainer.devices={args.gpus_per_fold}"])


def main(argv: list[str]) -> int:
    """``litlab cv`` entry point; returns the exit status (2 for bad input, 1 if a fold failed)."""
    args, overrides = _parser().parse_known_args(argv)
    try:
        resolve_preset(args.config)  # fail now, with the list of presets, on a typo
        if args.folds < 2:
            raise ValueError(f"--folds must be >= 2, got {args.folds}")
        folds = _parse_folds(args.only, args.folds)
        slots = device_slots(args.gpus, args.gpus_per_fold, args.workers)
        overrides = _device_overrides(args, overrides) + overrides
        folder = cv_folder(args.config, args.folds, overrides, Path(args.output_dir))
        steps = fold_steps(args.config, args.folds, overrides, folder)
        _write_plan(folder, args, overrides)
        print(f"cross-validation folder: {folder}", flush=True)
        ends = run_cv(steps, folds, slots)
    except BadStepInput as err:
        print(f"litlab cv: error: {err}")
        return 2
    except (FileNotFoundError, ValueError) as err:
        print(f"litlab cv: error: {err}")
        return 2
    done, results, unfinished = fold_results(steps)
    if not done:
        print("no fold has finished: nothing to summarise")
        return 1
    summary_path = write_csv(folder / SUMMARY, done, results)
    if args.csv:
        write_csv(Path(args.csv), done, results)
    summary = aggregate(results)
    print("\n" + format_summary(summary, len(done)))
    if unfinished:
        states = ", ".join(f"{k} {s}" for k, s in sorted(unfinished.items()))
        print(f"(finished folds {done} of {args.folds}; not finished: {states})")
    if any(math.isnan(m) for m, _ in summary.values()):
        print("warning: some metrics are NaN")
    print(f"per-fold results: {summary_path}" + (f" and {args.csv}" if args.csv else ""))
    return 0 if all(end.ok for end in ends) else 1


def _write_plan(folder: Path, args: argparse.Namespace, overrides: list[str]) -> None:
    """``cv.json``: the command the folder belongs to, for whoever finds the folder later."""
    plan: dict[str, Any] = {"config": args.config, "folds": args.folds, "overrides": overrides}
    text = json.dumps(plan, indent=2) + "\n"
    write_atomically(folder / PLAN, lambda tmp: tmp.write_text(text))
