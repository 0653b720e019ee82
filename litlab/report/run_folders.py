"""Finished runs as a report reads them: config, result, test and validation metrics, extra files.

A run folder is ``<runs>/<preset>/<stamp>/`` (cross-validation folds: ``litlab cv``'s
``<runs>/<preset>-cv/<key>/fold<k>/``, or the older ``<runs>/<preset>-cv/fold<k>/<stamp>/``).
What a report uses from it:

- the run's config: ``config.yaml`` or ``csv/config.yaml`` (LightningCLI's copy);
- ``result.json`` (``litlab fit``: status, kept epoch, its ``val/*`` and the ``test/*`` metrics),
  else the last ``test/*`` and ``val/*`` values of ``csv/metrics.csv``;
- optional files other callbacks write: ``test_confusion.json``, ``per_volume.csv``.

Reports never train: a run without test metrics is not a finished run and is skipped.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_FILES = ("config.yaml", "csv/config.yaml")


@dataclass
class RunFolder:
    """What a report needs from one run folder.

    Attributes:
        path: The run folder.
        preset: The run's preset (its folder's parent name, ``-cv/fold<k>`` removed).
        config: The run's resolved config (empty when none was saved).
        test: ``test/*`` metrics of the kept model.
        val: ``val/*`` metrics of the kept epoch (of the last validation without result.json).
        train: ``train/*`` metrics of the kept epoch (when metrics.csv has them).
        status: ``finished``, ``diverged``, ``failed`` (result.json) or ``unknown``.
        fold: The cross-validation fold, for ``<preset>-cv/fold<k>`` runs.
    """

    path: Path
    preset: str
    config: dict[str, Any] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    val: dict[str, float] = field(default_factory=dict)
    train: dict[str, float] = field(default_factory=dict)
    status: str = "unknown"
    fold: int | None = None

    @property
    def data_args(self) -> dict[str, Any]:
        """The DataModule's ``init_args`` from the config."""
        return dict((self.config.get("data") or {}).get("init_args") or {})

    @property
    def fast_dev_run(self) -> bool:
        """Whether the run was a ``fast_dev_run`` smoke test (its numbers mean nothing)."""
        return bool((self.config.get("trainer") or {}).get("fast_dev_run"))

    def file(self, name: str) -> Path | None:
        """``path/name`` if that file exists."""
        candidate = self.path / name
        return candidate if candidate.is_file() else None


def _floats(row: dict[str, Any], prefix: str) -> dict[str, float]:
    out = {}
    for key, value in row.items():
        if key.startswith(prefix) and value not in ("", None):
            try:
                out[key] = float(value)
            except (TypeError, ValueError):
                continue
    return out


def _csv_metrics(path: Path, kept_epoch: int | None) -> dict[str, dict[str, float]]:
    """Last non-empty ``test/*``, and ``val/*``/``train/*`` of ``kept_epoch`` (else the last)."""
    found: dict[str, dict[str, float]] = {"test": {}, "val": {}, "train": {}}
    if not path.is_file():
        return found
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        epoch = row.get("epoch")
        at_kept = kept_epoch is None or (epoch not in ("", None) and int(epoch) == kept_epoch)
        for stage in ("test", "val", "train"):
            values = _floats(row, f"{stage}/")
            if values and (stage == "test" or at_kept):
                found[stage].update(values)
    return found


def read_run(path: Path) -> RunFolder:
    """Read one run folder (missing files leave their fields empty)."""
    path = Path(path)
    config: dict[str, Any] = {}
    for name in CONFIG_FILES:
        if (path / name).is_file():
            config = yaml.safe_load((path / name).read_text()) or {}
            break
    result = None
    if (path / "result.json").is_file():
        try:
            result = json.loads((path / "result.json").read_text())
        except json.JSONDecodeError:
            result = None
    kept = result.get("kept_epoch") if result else None
    from_csv = _csv_metrics(path / "csv" / "metrics.csv", kept)
    preset, fold = path.parent.name, None
    match = re.fullmatch(r"fold(\d+)", preset)
    if match:
        fold, preset = int(match[1]), path.parent.parent.name.removesuffix("-cv")
    elif re.fullmatch(r"fold\d+", path.name) and path.parent.parent.name.endswith("-cv"):
        fold, preset = int(path.name[4:]), path.parent.parent.name.removesuffix("-cv")
    return RunFolder(
        path=path,
        preset=preset,
        config=config,
        test=dict((result or {}).get("test") or from_csv["test"]),
        val=dict((result or {}).get("val") or from_csv["val"]),
        train=from_csv["train"],
        status=(result or {}).get("status", "unknown"),
        fold=fold,
    )


def finished_runs(folder: Path) -> list[RunFolder]:
    """Runs directly under ``folder`` that have test metrics, newest first (by folder name,
    the ``YYYYmmdd-HHMMSS`` stamp)."""
    if not folder.is_dir():
        return []
    runs = [read_run(p) for p in sorted(folder.iterdir(), reverse=True) if p.is_dir()]
    return [r for r in runs if r.test and r.status in ("finished", "unknown")]


def latest_run(runs_root: Path, preset: str) -> RunFolder | None:
    """The newest finished run of ``preset`` under ``runs_root``, or ``None``."""
    runs = finished_runs(Path(runs_root) / preset)
    return runs[0] if runs else None


def cv_runs(runs_root: Path, preset: str) -> list[RunFolder]:
    """The newest finished run of each fold of ``litlab cv --config <preset>``, by fold.

    ``litlab cv`` keeps each cross-validation in ``<preset>-cv/<key>/`` with one run folder per
    fold; the one whose fold finished last is read. Older folders hold ``fold<k>/<stamp>/``.
    """
    base = Path(runs_root) / f"{preset}-cv"
    if not base.is_dir():
        return []
    keyed = []
    for cv_dir in (p for p in base.iterdir() if p.is_dir() and not p.name.startswith("fold")):
        folds = [read_run(p) for p in sorted(cv_dir.glob("fold*"), key=lambda p: p.name)]
        folds = [r for r in folds if r.test and r.status == "finished" and r.fold is not None]
        if folds:
            newest = max((r.path / "result.json").stat().st_mtime for r in folds)
            keyed.append((newest, sorted(folds, key=lambda r: r.fold)))
    if keyed:
        return max(keyed, key=lambda item: item[0])[1]
    folds = [p for p in base.glob("fold*") if p.is_dir() and p.name[4:].isdigit()]
    out = []
    for fold_dir in sorted(folds, key=lambda p: int(p.name[4:])):
        runs = finished_runs(fold_dir)
        if runs:
            out.append(runs[0])
    return out


def finite(value: float | None) -> bool:
    """Whether ``value`` is a finite number."""
    return value is not None and math.isfinite(value)
