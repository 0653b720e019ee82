"""Write each test volume's 3-D Dice and IoU to ``<run>/per_volume.csv`` and log their summary.

The scores come from the module's ``test_volume_scores`` metric
(:class:`litlab.metrics.volume_scores.VolumeScores`, synced across processes); the volume names,
splits and voxel spacing from the DataModule's ``volume_names`` and ``volume_info()`` (the liver
DataModule has both). Read at the end of the test epoch, before the module's own hook resets the
metric.

Columns: ``volume``, ``split``, ``slices``, ``spacing_row_mm``, ``spacing_col_mm``,
``spacing_slice_mm`` (NaN where the data records none), then per scored structure ``S`` (``liver``
for 2 classes): ``S_dice``, ``S_iou``, ``S_tp``, ``S_fp``, ``S_fn`` (voxels) and ``S_truth_ml``,
``S_pred_ml`` (volumes in millilitres, from the spacing). The TP/FP/FN columns let a report
recompute the global Dice and bootstrap intervals.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from litlab.callbacks.run_files import PER_VOLUME_FILE
from litlab.metrics.functional.volume_scores import FN, FP, TP, structure_names

log = logging.getLogger(__name__)


def per_volume_rows(
    scores: dict[str, torch.Tensor],
    structures: list[str],
    names: list[str],
    info: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """One CSV row per scored volume.

    Args:
        scores: :meth:`VolumeScores.scores` (``volumes`` index ``names``).
        structures: Names of the ``K`` scored structures.
        names: Volume id -> name (``str(id)`` beyond the list).
        info: Per name: ``split``, ``spacing`` ``(row, col, slice)`` mm (missing: unknown).
    """
    rows = []
    for v, volume in enumerate(scores["volumes"].tolist()):
        name = names[volume] if 0 <= volume < len(names) else str(volume)
        meta = info.get(name, {})
        spacing = tuple(meta.get("spacing") or (math.nan,) * 3)
        voxel_ml = math.prod(spacing) / 1000.0
        row: dict[str, Any] = {
            "volume": name,
            "split": meta.get("split", ""),
            "slices": int(scores["slices"][v]),
            "spacing_row_mm": spacing[0],
            "spacing_col_mm": spacing[1],
            "spacing_slice_mm": spacing[2],
        }
        for k, structure in enumerate(structures):
            tp, fp, fn = (int(scores["counts"][v, k, i]) for i in (TP, FP, FN))
            row[f"{structure}_dice"] = float(scores["dice"][v, k])
            row[f"{structure}_iou"] = float(scores["iou"][v, k])
            row[f"{structure}_tp"], row[f"{structure}_fp"], row[f"{structure}_fn"] = tp, fp, fn
            row[f"{structure}_truth_ml"] = (tp + fn) * voxel_ml
            row[f"{structure}_pred_ml"] = (tp + fp) * voxel_ml
        rows.append(row)
    return rows


def write_per_volume_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` (from :func:`per_volume_rows`) as CSV; floats with 6 significant digits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["volume"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    tmp.replace(path)
    return path


def summary_line(scores: dict[str, torch.Tensor], structure: str, k: int = 0) -> str:
    """``"liver: per-volume Dice 0.912 ± 0.031, IoU 0.84 ± 0.05 over 3 volumes; global Dice
    0.934"`` for structure ``k``."""
    n = int((~torch.isnan(scores["dice"][:, k])).sum())
    return (
        f"{structure}: per-volume Dice {float(scores['dice_mean'][k]):.4f} ± "
        f"{float(scores['dice_std'][k]):.4f}, IoU {float(scores['iou_mean'][k]):.4f} ± "
        f"{float(scores['iou_std'][k]):.4f} over {n} volume(s); global Dice "
        f"{float(scores['dice_global'][k]):.4f}"
    )


class PerVolumeWriter(pl.Callback):
    """Write ``<run>/per_volume.csv`` at the end of every test and log mean ± std and global Dice.

    Needs a module with a ``test_volume_scores`` metric fed by batches that name their volumes
    (``SegmentationModule`` with the liver data); otherwise it warns once and writes nothing.
    """

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metric = getattr(pl_module, "test_volume_scores", None)
        if metric is None or not metric.update_called:
            log.warning(
                "no per-volume scores to write: %s",
                f"{type(pl_module).__name__} has no test_volume_scores"
                if metric is None
                else "the test batches do not say which volume each slice belongs to",
            )
            return
        scores = metric.scores()  # every rank: the sync is collective
        if not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        names = list(getattr(datamodule, "volume_names", []) or [])
        volume_info = getattr(datamodule, "volume_info", None)
        info = volume_info() if callable(volume_info) else {}
        structures = structure_names(list(getattr(pl_module, "class_names", ["bg", "fg"])))
        rows = per_volume_rows(scores, structures, names, info)
        path = write_per_volume_csv(Path(trainer.default_root_dir) / PER_VOLUME_FILE, rows)
        for k, structure in enumerate(structures):
            log.info("%s", summary_line(scores, structure, k))
        log.info("per-volume scores of %d volume(s) written to %s", len(rows), path)
