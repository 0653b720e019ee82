"""Training curves: per-epoch values read from metrics.csv rows, drawn as train and val lines."""

from __future__ import annotations

import csv

import matplotlib.pyplot as plt
import pytest
from litlab.plots.curves import curves_figure, epoch_history, main_metric, read_history

# What Lightning's CSV logger writes: one row per logging call, train and val in separate rows,
# a per-step key beside its epoch mean, and an lr row without metrics.
ROWS = [
    {"epoch": "0", "step": "1", "train/loss_step": "2.5", "train/loss_epoch": "", "val/loss": ""},
    {"epoch": "0", "step": "1", "train/loss_step": "", "train/loss_epoch": "", "val/loss": "1.9"},
    {"epoch": "0", "step": "1", "train/loss_step": "", "train/loss_epoch": "2.0", "val/loss": ""},
    {"epoch": "1", "step": "3", "train/loss_step": "", "train/loss_epoch": "", "val/loss": "1.5"},
    {"epoch": "1", "step": "3", "train/loss_step": "", "train/loss_epoch": "1.2", "val/loss": ""},
    {"epoch": "", "step": "3", "train/loss_step": "", "train/loss_epoch": "", "val/loss": "9"},
]


def test_history_keeps_each_keys_last_value_per_epoch() -> None:
    history = epoch_history(ROWS)
    assert history["train/loss_epoch"] == {0: 2.0, 1: 1.2}
    assert history["val/loss"] == {0: 1.9, 1: 1.5}  # the row without an epoch is not one
    assert history["train/loss_step"] == {0: 2.5}


def test_figure_draws_train_and_val_of_loss_and_the_main_metric(tmp_path) -> None:
    path = tmp_path / "metrics.csv"
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, ["epoch", "step", "train/loss", "val/loss", "train/miou",
                                       "val/miou", "val/miou_best"])  # fmt: skip
        writer.writeheader()
        for epoch, (tl, vl, tm, vm) in enumerate([(1.0, 1.1, 0.2, 0.3), (0.5, 0.7, 0.6, 0.5)]):
            writer.writerow({"epoch": epoch, "step": epoch, "train/loss": tl, "train/miou": tm})
            writer.writerow({"epoch": epoch, "step": epoch, "val/loss": vl, "val/miou": vm})
    history = read_history(path)
    assert main_metric(history) == "miou"
    fig = curves_figure(history)
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
             for ax in fig.axes for line in ax.get_lines()}  # fmt: skip
    assert lines == {
        "train/loss": ([0, 1], [1.0, 0.5]),
        "val/loss": ([0, 1], [1.1, 0.7]),
        "train/miou": ([0, 1], [0.2, 0.6]),
        "val/miou": ([0, 1], [0.3, 0.5]),
    }
    plt.close(fig)


def test_embedding_runs_plot_the_epoch_loss_and_val_knn_accuracy() -> None:
    history = epoch_history(ROWS) | {"val/knn_acc": {0: 0.4, 1: 0.6}}
    fig = curves_figure(history)
    labels = sorted(line.get_label() for ax in fig.axes for line in ax.get_lines())
    assert labels == ["train/loss", "val/knn_acc", "val/loss"]
    loss = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "train/loss")
    assert list(loss.get_ydata()) == pytest.approx([2.0, 1.2])  # the epoch means, not steps
    plt.close(fig)
