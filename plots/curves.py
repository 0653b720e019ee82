"""Training curves: loss and the main metric per epoch, train beside val, from a run's metrics.csv."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

#: Metrics tried, in order, for the second panel: the first with a ``val/`` column is drawn.
MAIN_METRICS: tuple[str, ...] = ("acc", "miou", "knn_acc", "dice")

#: ``{key: {epoch: value}}``, e.g. ``history["val/loss"][3]``.
History = dict[str, dict[int, float]]


def epoch_history(rows: Iterable[Mapping[str, str]]) -> History:
    """Per-epoch values of every logged key, from the rows of a Lightning ``metrics.csv``.

    A key logged several times in an epoch (per step, or again after a resume) keeps its last
    value; rows without an epoch and empty or non-numeric cells are skipped.

    Args:
        rows: ``csv.DictReader`` rows with an ``epoch`` column.
    """
    history: History = {}
    for row in rows:
        try:
            epoch = int(float(row.get("epoch") or "nan"))
        except ValueError:
            continue
        for key, cell in row.items():
            if key in ("epoch", "step") or not cell:
                continue
            try:
                history.setdefault(key, {})[epoch] = float(cell)
            except ValueError:
                continue
    return history


def read_history(metrics_csv: Path) -> History:
    """:func:`epoch_history` of a ``metrics.csv`` file."""
    with Path(metrics_csv).open(newline="") as file:
        return epoch_history(csv.DictReader(file))


def _series(history: History, stage: str, name: str) -> dict[int, float] | None:
    # A key logged per step and per epoch is stored by Lightning as name_step and name_epoch.
    for key in (f"{stage}/{name}_epoch", f"{stage}/{name}"):
        if history.get(key):
            return history[key]
    return None


def main_metric(history: History, candidates: Sequence[str] = MAIN_METRICS) -> str | None:
    """The first of ``candidates`` logged for validation (or training), or ``None``."""
    for name in candidates:
        if _series(history, "val", name) or _series(history, "train", name):
            return name
    return None


def curves_figure(history: History, metric: str | None = None, title: str = "") -> Figure:
    """Loss (left) and ``metric`` (right) per epoch, train and val as separate lines.

    Args:
        history: From :func:`read_history`.
        metric: Name of the metric panel (``"acc"``, ``"miou"`` ...); ``None`` picks
            :func:`main_metric`. Without one, only the loss panel is drawn.
        title: Figure title.

    Returns:
        The figure; lines are labelled ``train/<name>`` and ``val/<name>``.
    """
    metric = metric or main_metric(history)
    names = ["loss"] + ([metric] if metric else [])
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        drawn = 0
        for stage, style in (("train", "-o"), ("val", "-s")):
            series = _series(history, stage, name)
            if not series:
                continue
            epochs = sorted(e for e, v in series.items() if math.isfinite(v))
            ax.plot(epochs, [series[e] for e in epochs], style, ms=3, label=f"{stage}/{name}")
            drawn += 1
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend()
        else:
            ax.text(0.5, 0.5, f"no {name} logged", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
