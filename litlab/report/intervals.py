"""95 % intervals of the figures reports print, and binary metrics from a confusion matrix.

Accuracy, recall and precision are proportions: Wilson score intervals. F1 is not: a percentile
bootstrap over test images (resampling the confusion matrix cells multinomially is the same as
resampling test images). Per-volume segmentation scores are bootstrapped over volumes: the mean
Dice per case, and the global Dice with each volume's voxel counts kept together.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

METRICS: tuple[str, ...] = ("acc", "recall", "precision", "f1")


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


def proportion_interval(value: float, n: int | None) -> tuple[float, float] | None:
    """Wilson interval of a reported proportion ``value`` of ``n`` items (successes rounded from
    ``value * n``); ``None`` when ``n`` is unknown or the value is not finite."""
    if not n or value is None or not math.isfinite(value):
        return None
    return wilson_interval(round(value * n), n)


def bootstrap_mean_interval(
    values: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile-bootstrap 95 % interval of the mean of ``values`` (NaN left out; ``None``
    below 2 values): the spread of a per-volume mean over the volumes one might have drawn."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def bootstrap_pooled_dice_interval(
    tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile-bootstrap 95 % interval of the global Dice ``2 sum(tp) / (2 sum(tp) + sum(fp)
    + sum(fn))``, resampling volumes (their voxel counts stay together); ``None`` below 2."""
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    if len(tp) < 2:
        return None
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(tp), (n_boot, len(tp)))
    t, p, f = tp[pick].sum(1), fp[pick].sum(1), fn[pick].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = 2 * t / (2 * t + p + f)
    lo, hi = np.nanpercentile(dice, [2.5, 97.5])
    return float(lo), float(hi)
