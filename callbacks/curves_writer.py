"""``<run>/images/curves.png`` when a fit ends: loss and the main metric per epoch, train and val.

The curves are read back from the run's CSV log (``csv/metrics.csv``), so a run resumed in its
folder draws every epoch, those before the resume included.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
import matplotlib.pyplot as plt
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from litlab.plots.curves import curves_figure, read_history

log = logging.getLogger(__name__)

CURVES_FILE = Path("images") / "curves.png"


class CurvesWriter(Callback):
    """Draw :func:`litlab.plots.curves.curves_figure` from the CSV log when a fit ends.

    Also written when the fit stops on an error or interrupt, with the epochs done by then.
    Needs a ``CSVLogger`` among the Trainer's loggers; warns once and writes nothing without.

    Args:
        metric: The metric panel (``"acc"``, ``"miou"``, ``"knn_acc"`` ...); ``None`` picks the
            first of :data:`litlab.plots.curves.MAIN_METRICS` the run logged.
    """

    def __init__(self, metric: str | None = None) -> None:
        self.metric = metric
        self.path: Path | None = None

    def write(self, trainer: pl.Trainer) -> Path | None:
        """Save the figure (rank 0); returns its path, or ``None`` when nothing was written."""
        if not trainer.is_global_zero:
            return None
        logger = next((lg for lg in trainer.loggers if isinstance(lg, CSVLogger)), None)
        if logger is None:
            log.warning("no CSV logger in this run, so no %s is drawn", CURVES_FILE)
            return None
        logger.save()  # rows still buffered in memory
        metrics_csv = Path(logger.experiment.metrics_file_path)
        if not metrics_csv.is_file():
            return None
        history = read_history(metrics_csv)
        if not history:
            return None
        run_dir = Path(trainer.default_root_dir)
        fig = curves_figure(history, self.metric, title=f"{run_dir.parent.name} / {run_dir.name}")
        path = run_dir / CURVES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        self.path = path
        return path

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        path = self.write(trainer)
        if path is not None:
            log.info("training curves: %s", path)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if trainer.state.fn == "fit" and not trainer.fast_dev_run:
            try:
                self.write(trainer)
            except Exception as err:  # the original error matters more than the figure
                log.warning("could not draw the training curves: %s", err)
