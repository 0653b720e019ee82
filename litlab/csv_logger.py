"""CSV logs that a resumed run continues: ``csv/metrics.csv`` keeps its rows, new ones are appended.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when it starts, so a run resumed in
its own folder would lose every earlier row. :class:`RunCSVLogger` keeps the rows logged before
the checkpoint the run resumes from (``step`` below the checkpoint's global step), drops the
ones a killed process wrote after it (the resumed run logs those steps again), and appends. It
also writes every row as it is logged, so a kill loses none of the rows a checkpoint covers.
Rows are appended; a whole-file rewrite (a new column, the kept rows of a resume, ``hparams.yaml``)
goes through a temporary file and a rename, so a kill never leaves half a file.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from litlab.datamodules.cache import write_atomically

log = logging.getLogger(__name__)


def _step_of(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")


def _write_rows(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    """``metrics.csv`` as a whole, via a temporary file and a rename."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)

    write_atomically(path, write)


class _RunWriter(ExperimentWriter):
    """``ExperimentWriter`` whose whole-file rewrites are atomic; rows are still appended."""

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            rows = list(csv.DictReader(file))
        _write_rows(Path(self.metrics_file_path), fieldnames, rows)

    def log_hparams(self, params: dict[str, Any]) -> None:
        self.hparams.update(params)
        path = Path(self.log_dir) / self.NAME_HPARAMS_FILE
        write_atomically(path, lambda tmp: save_hparams_to_yaml(tmp, self.hparams))


class _ContinuingWriter(_RunWriter):
    """``_RunWriter`` that keeps the rows of ``metrics.csv`` below ``resume_step``."""

    def __init__(self, log_dir: str, resume_step: int) -> None:
        self._resume_step = resume_step
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            header = list(reader.fieldnames or [])
            rows = list(reader)
        kept = [r for r in rows if not _step_of(r) >= self._resume_step]
        _write_rows(path, header, kept)
        self.metrics_keys = sorted(header)
        log.info(
            "continuing %s: kept %d rows before step %d, dropped %d logged after the checkpoint",
            path,
            len(kept),
            self._resume_step,
            len(rows) - len(kept),
        )


class RunCSVLogger(CSVLogger):
    """``CSVLogger`` for a run folder; with ``resume_step`` it continues an existing file.

    Args:
        save_dir: The run folder.
        name: Subfolder name (``""``: none).
        version: Subfolder under ``name`` (``"csv"``).
        resume_step: Global step of the checkpoint being resumed; rows from this step on are
            dropped and the rest kept. ``None`` starts a fresh file, as ``CSVLogger`` does.
        flush_logs_every_n_steps: Write to disk every N logging calls (1: every row at once).
    """

    def __init__(
        self,
        save_dir: str,
        name: str = "",
        version: str = "csv",
        resume_step: int | None = None,
        flush_logs_every_n_steps: int = 1,
    ) -> None:
        super().__init__(
            save_dir=save_dir,
            name=name,
            version=version,
            flush_logs_every_n_steps=flush_logs_every_n_steps,
        )
        self.resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        """The writer (rank 0; other ranks get Lightning's no-op stand-in)."""
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            if self.resume_step is None:
                self._experiment = _RunWriter(log_dir=self.log_dir)
            else:
                self._experiment = _ContinuingWriter(self.log_dir, self.resume_step)
        return self._experiment
