"""``litlab cv``: subject-independent k-fold cross-validation of a preset.

``litlab cv --config ckplus-resnet50 --folds 10 [--only 0,1,2] [--csv cv.csv] [overrides]``

Each fold ``k`` runs ``litlab fit --config <preset> --data.split=subject --data.fold=k
--data.n_folds=N <overrides>`` in this process (fit, then test of the best checkpoint), so every
image is tested exactly once across the folds and no subject is in both the training and the test
part of a fold. The test metrics of every fold, then their mean and sample standard deviation, are
printed and written to a CSV.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

Runner = Callable[[list[str]], dict[str, float]]
# Set by cv for every fold; a user override of them would silently break the protocol.
_RESERVED = ("--data.split", "--data.fold", "--data.n_folds")


def fold_args(config: str, fold: int, n_folds: int, overrides: Sequence[str]) -> list[str]:
    """The ``litlab fit`` arguments for one fold.

    Args:
        config: Preset name or YAML path.
        fold: Test fold, in ``[0, n_folds)``.
        n_folds: Number of subject folds.
        overrides: Extra ``--dotted.key=value`` arguments passed through unchanged.

    Raises:
        ValueError: ``fold`` out of range, or an override that sets the split or fold.
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
        args.append(f"--preset_name={stem}-cv/fold{fold}")
    if "--wandb_group" not in names:
        args.append(f"--wandb_group={stem}-cv")
    return args + list(overrides)


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
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["fold", *names])
        for fold, result in zip(folds, results, strict=True):
            writer.writerow([fold, *(result.get(n, "") for n in names)])
        writer.writerow(["mean", *(summary[n][0] for n in names)])
        writer.writerow(["std", *(summary[n][1] for n in names)])
    return path


def format_summary(summary: dict[str, tuple[float, float]], n_folds: int) -> str:
    """``metric  mean ± std`` lines."""
    width = max((len(k) for k in summary), default=6)
    lines = [f"{'metric'.ljust(width)}   mean ± std over {n_folds} fold(s)"]
    for name, (mean, std) in summary.items():
        lines.append(f"{name.ljust(width)}   {mean:.4f} ± {std:.4f}")
    return "\n".join(lines)


def run_cv(
    config: str,
    n_folds: int,
    folds: Sequence[int] | None = None,
    overrides: Sequence[str] = (),
    runner: Runner | None = None,
) -> tuple[list[int], list[dict[str, float]]]:
    """Run the given folds (all by default) and return ``(folds, test metrics per fold)``."""
    if n_folds < 2:
        raise ValueError(f"--folds must be >= 2, got {n_folds}")
    folds = list(range(n_folds)) if folds is None else list(folds)
    all_args = [fold_args(config, k, n_folds, overrides) for k in folds]  # validate all first
    if runner is None:
        from litlab.cli import fit_and_test

        runner = fit_and_test
    results = []
    for k, args in zip(folds, all_args, strict=True):
        log.info("cross-validation fold %d of %d: litlab fit %s", k, n_folds, " ".join(args))
        results.append(runner(args))
    return folds, results


def _parse_folds(text: str | None, n_folds: int) -> list[int] | None:
    if not text:
        return None
    try:
        folds = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError as err:
        raise ValueError(f"--only takes comma-separated fold numbers, got {text!r}") from err
    bad = [k for k in folds if not 0 <= k < n_folds]
    if bad or not folds:
        raise ValueError(f"--only folds must lie in [0, {n_folds}), got {text!r}")
    return folds


def main(argv: list[str]) -> int:
    """``litlab cv`` entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="litlab cv",
        description="Subject-independent k-fold cross-validation of a preset; extra "
        "--dotted.key=value arguments go to every fold's `litlab fit`.",
    )
    parser.add_argument("--config", required=True, help="preset name or YAML path")
    parser.add_argument("--folds", type=int, default=10, help="number of subject folds")
    parser.add_argument("--only", default=None, help="run only these folds, e.g. 0,1,2")
    parser.add_argument("--csv", default=None, help="CSV output (default cv-<preset>-<time>.csv)")
    args, overrides = parser.parse_known_args(argv)
    try:
        folds = _parse_folds(args.only, args.folds)
        done, results = run_cv(args.config, args.folds, folds, overrides)
    except (FileNotFoundError, ValueError) as err:
        print(f"litlab cv: error: {err}")
        return 2
    summary = aggregate(results)
    stem = Path(args.config).stem
    path = Path(args.csv) if args.csv else Path(f"cv-{stem}-{time.strftime('%Y%m%d-%H%M%S')}.csv")
    write_csv(path, done, results)
    print("\n" + format_summary(summary, len(done)))
    if len(done) < args.folds:
        print(f"(folds {done} of {args.folds}: a partial cross-validation)")
    if any(math.isnan(m) for m, _ in summary.values()):
        print("warning: some metrics are NaN")
    print(f"per-fold results: {path}")
    return 0
