"""``litlab report autism``: the autism paper's Table 1 for both arms, with 95 % intervals.

.. warning::
   The autism face set was scraped from the web and its labels cannot be verified; papers that
   used it are being retracted. These numbers describe a reproduction of a published pipeline,
   not a screening or diagnostic tool.

Each autism run writes ``test_confusion.json`` into its run folder (the
:class:`TestConfusionWriter` callback the presets add): the test confusion matrix and what the
data module knows about the data (split sizes, train/test duplicate count, segmented-copy
folders). The report reads the newest run of each preset under ``runs/`` (or the folders given)
and prints, per arm, accuracy, recall, precision and F1 of the positive class (``autistic``, the
paper's equations 1-4) with 95 % intervals beside the paper's Table 1:

- accuracy, recall and precision are proportions: Wilson score intervals;
- F1 is not: a percentile bootstrap over test images (resampling the confusion matrix cells
  multinomially is the same as resampling test images).

The accuracy difference between the arms gets a bootstrap interval too (unpaired: both arms see
the same test images, so this is conservative). The report saves a raw / mask / segmented grid
of test images from the segmented run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np

log = logging.getLogger(__name__)

CONFUSION_FILE = "test_confusion.json"
METRICS: tuple[str, ...] = ("acc", "recall", "precision", "f1")
# Table 1 of the paper (000_4b6d53ea43115825.txt), fractions.
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "raw": {"acc": 0.837, "recall": 0.824, "precision": 0.837, "f1": 0.83},
    "segmented": {"acc": 0.859, "recall": 0.90, "precision": 0.859, "f1": 0.87},
}
ARM_PRESETS = {"raw": "autism-resnet50", "segmented": "autism-seg-resnet50"}
POSITIVE_CLASS = "autistic"


class TestConfusionWriter(pl.Callback):
    """Write the test confusion matrix and the data description to ``<run>/test_confusion.json``.

    Reads the module's ``test_confusion`` metric (``ClassificationModule`` has one; it is synced
    across processes) at the end of the test epoch, before the module's own hook resets it.
    """

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metric = getattr(pl_module, "test_confusion", None)
        if metric is None:
            log.warning(
                "%s has no test_confusion metric; nothing written", type(pl_module).__name__
            )
            return
        matrix = metric.compute().cpu().numpy().astype(int)
        if not trainer.is_global_zero:
            return
        describe = getattr(trainer.datamodule, "describe", None)
        payload = {
            "classes": list(getattr(pl_module, "class_names", [])),
            "matrix": matrix.tolist(),
            "metrics": {
                k: float(v)
                for k, v in trainer.callback_metrics.items()
                if k.startswith("test/") and v.numel() == 1
            },
            "data": describe() if callable(describe) else {},
            "fast_dev_run": bool(trainer.fast_dev_run),
        }
        path = Path(trainer.default_root_dir) / CONFUSION_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2))
        log.info("test confusion matrix written to %s", path)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion (``nan`` bounds when ``n`` is 0)."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def binary_counts(matrix: np.ndarray, positive: int) -> tuple[int, int, int, int]:
    """``(tp, fp, fn, tn)`` of class ``positive`` from a confusion matrix (rows true, cols predicted)."""
    m = np.asarray(matrix, dtype=np.int64)
    tp = int(m[positive, positive])
    fp = int(m[:, positive].sum() - tp)
    fn = int(m[positive, :].sum() - tp)
    tn = int(m.sum() - tp - fp - fn)
    return tp, fp, fn, tn


def binary_metrics(tp: int | np.ndarray, fp: Any, fn: Any, tn: Any) -> dict[str, Any]:
    """Accuracy, recall, precision, F1 (the paper's equations 1-4); 0 where undefined.

    Works on scalars or same-shape arrays of counts (the bootstrap passes arrays).
    """
    tp, fp, fn, tn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn, tn))
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = (tp + tn) / (tp + fp + fn + tn)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        f1 = np.where(recall + precision > 0, 2 * recall * precision / (recall + precision), 0.0)
    out = {"acc": acc, "recall": recall, "precision": precision, "f1": f1}
    return {k: float(v) if np.ndim(v) == 0 else v for k, v in out.items()}


def bootstrap_metrics(
    matrix: np.ndarray, positive: int, n_boot: int = 2000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of each metric: test images resampled with replacement.

    Returns:
        ``{metric: (n_boot,) array}``.
    """
    tp, fp, fn, tn = binary_counts(matrix, positive)
    n = tp + fp + fn + tn
    if n == 0:
        return {k: np.full(n_boot, np.nan) for k in METRICS}
    rng = np.random.default_rng(seed)
    cells = rng.multinomial(n, np.array([tp, fp, fn, tn]) / n, size=n_boot)
    return binary_metrics(cells[:, 0], cells[:, 1], cells[:, 2], cells[:, 3])


def metric_intervals(
    matrix: np.ndarray, positive: int, n_boot: int = 2000, seed: int = 0
) -> dict[str, tuple[float, float, float]]:
    """``{metric: (value, low, high)}``: Wilson for acc/recall/precision, bootstrap for F1."""
    tp, fp, fn, tn = binary_counts(matrix, positive)
    values = binary_metrics(tp, fp, fn, tn)
    boot = bootstrap_metrics(matrix, positive, n_boot, seed)
    return {
        "acc": (values["acc"], *wilson_interval(tp + tn, tp + fp + fn + tn)),
        "recall": (values["recall"], *wilson_interval(tp, tp + fn)),
        "precision": (values["precision"], *wilson_interval(tp, tp + fp)),
        "f1": (values["f1"], *(float(q) for q in np.nanpercentile(boot["f1"], [2.5, 97.5]))),
    }


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """The ``test_confusion.json`` of a run folder (or the file itself)."""
    path = Path(run_dir).expanduser()
    path = path / CONFUSION_FILE if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: run the preset first (litlab fit --config "
            f"{ARM_PRESETS['raw']} / {ARM_PRESETS['segmented']}); its test writes this file"
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
            f"`litlab fit --config {preset}` first, or pass the run folder"
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


def example_grid(data: dict[str, Any], n: int = 6) -> np.ndarray | None:
    """A raw / mask / segmented grid of the first ``n`` test images of a segmented run."""
    from litlab.datamodules.face_masks import mask_preview_grid
    from litlab.datamodules.folders import decode_image, resize_image

    seg_paths = [Path(p) for p in data.get("test_paths", [])][:n]
    raw_paths = [Path(p) for p in data.get("source_test_paths", [])][:n]
    masks_root = data.get("masks_root")
    if not seg_paths or not masks_root or len(raw_paths) != len(seg_paths):
        return None
    data_root = Path(data["data_root"])
    size = int(data.get("image_size", 224))
    raw, masks, seg = [], [], []
    for raw_path, seg_path in zip(raw_paths, seg_paths, strict=True):
        raw.append(resize_image(decode_image(raw_path, "rgb"), (size, size)))
        mask_path = Path(masks_root) / seg_path.relative_to(data_root)
        masks.append(decode_image(mask_path, "gray") > 0)
        seg.append(decode_image(seg_path, "rgb"))
    return mask_preview_grid(np.stack(raw), np.stack(masks), np.stack(seg), max_rows=n)


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
    """Console entry: ``litlab report autism [--raw RUN] [--seg RUN] [--out DIR]``."""
    args = _parser().parse_args(argv)
    arms: dict[str, dict[str, Any]] = {}
    runs: dict[str, dict[str, Any]] = {}
    try:
        for arm, given in (("raw", args.raw), ("segmented", args.seg)):
            if given:
                runs[arm] = load_run(given)
            else:
                try:
                    runs[arm] = load_run(latest_run(args.runs, ARM_PRESETS[arm]))
                except FileNotFoundError as err:
                    print(f"litlab report: skipping the {arm} arm: {err}", file=sys.stderr)
        if not runs:
            raise FileNotFoundError(f"no autism runs found under {args.runs}; pass --raw/--seg")
        # Distinct seeds: the arms' bootstraps must be independent draws, or the interval of
        # their difference collapses.
        arms = {
            arm: arm_rows(run, args.bootstrap, seed=1000 * k)
            for k, (arm, run) in enumerate(runs.items())
        }
    except (FileNotFoundError, ValueError) as err:
        print(f"litlab report: error: {err}", file=sys.stderr)
        return 2

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
    text = "\n".join(lines)
    print(text)

    out = Path(args.out) if args.out else Path(args.runs) / "autism-report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.txt").write_text(text + "\n")
    if "segmented" in runs:
        grid = example_grid(runs["segmented"].get("data") or {}, args.examples)
        if grid is not None:
            from litlab.datamodules.face_masks import save_rgb_png

            path = save_rgb_png(out / "examples-raw-mask-segmented.png", grid)
            print(f"\nexample images (raw | mask | segmented): {path}")
    print(f"table: {out / 'table.txt'}")
    return 0
