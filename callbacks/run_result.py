"""What a ``litlab fit`` run reports when it ends: ``<run>/result.json``, read by orchestrators.

:class:`ValidationHistory` keeps every validation epoch's ``val/*`` metrics (in checkpoints too,
so a resumed run keeps them); :func:`build_result` picks the epoch whose model the run keeps (the
best-model checkpoint's epoch) and says how the run ended:

- ``finished``: the fit ended and its kept epoch's monitored value and ``val/loss`` are finite;
- ``diverged``: it ended, but the kept value or its val loss is NaN/inf (no epoch to trust);
- ``failed``: it raised (the error is in ``error``) or was interrupted.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from litlab.datamodules.cache import write_atomically

from litlab.errors import BadInputError

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
STATUSES = ("finished", "diverged", "failed")
VAL_LOSS = "val/loss"


class ValidationHistory(Callback):
    """Records the ``val/*`` metrics of every validation epoch (never the sanity check).

    Attributes:
        epochs: One dict per validation: ``{"epoch": e, "val/loss": ..., ...}``.
    """

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        self.epochs.append({"epoch": trainer.current_epoch, **row})

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if trainer.state.fn == "fit" and trainer.is_global_zero:
            error = f"{type(exception).__name__}: {exception}"
            try:  # the run folder may be what failed (read-only, full): the error is the news
                save_result(
                    Path(trainer.default_root_dir), build_result(trainer, "failed", error=error)
                )
            except BadInputError as err:  # the writer names the file and the reason
                log.warning("%s", err)

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epochs = list(state_dict.get("epochs", []))


def kept_index(epochs: list[dict[str, float]], monitor: str, mode: str) -> int | None:
    """Index of the epoch a best-model checkpoint on ``monitor`` keeps; ``None`` if none is finite.

    Lightning's ``ModelCheckpoint`` never keeps a NaN and keeps the first of equal values, so
    this is the first finite best value.
    """
    finite = [
        (i, row[monitor])
        for i, row in enumerate(epochs)
        if monitor in row and math.isfinite(row[monitor])
    ]
    if not finite:
        return None
    best = (min if mode == "min" else max)(v for _, v in finite)
    return next(i for i, v in finite if v == best)


def _finite(row: dict[str, float], key: str) -> bool:
    return key not in row or math.isfinite(row[key])


def build_result(
    trainer: pl.Trainer,
    status: str = "finished",
    test_metrics: dict[str, float] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The run's result; a ``finished`` run whose kept values are not finite becomes ``diverged``.

    Args:
        trainer: The trainer after (or during) ``fit``.
        status: How the fit ended: ``finished``, ``diverged`` or ``failed``.
        test_metrics: ``test/*`` metrics of the kept model, if it was tested.
        error: What went wrong, for ``failed`` and ``diverged``.
    """
    if status not in STATUSES:
        raise ValueError(f"result status must be one of {STATUSES}, got {status!r}")
    history = next((c for c in trainer.callbacks if isinstance(c, ValidationHistory)), None)
    epochs = history.epochs if history is not None else []
    ckpt = trainer.checkpoint_callback
    monitor = getattr(ckpt, "monitor", None) or VAL_LOSS
    mode = getattr(ckpt, "mode", "min")
    kept = kept_index(epochs, monitor, mode)
    val = dict(epochs[kept]) if kept is not None else (dict(epochs[-1]) if epochs else {})
    kept_epoch = int(val.pop("epoch")) if "epoch" in val else None
    if (
        status == "finished"
        and epochs
        and not (kept is not None and _finite(val, monitor) and _finite(val, VAL_LOSS))
    ):
        status = "diverged"
        error = error or f"no validation epoch has a finite {monitor} and {VAL_LOSS}"
    best_score = getattr(ckpt, "best_model_score", None)
    return {
        "status": status,
        "monitor": monitor,
        "mode": mode,
        "best_score": float(best_score) if best_score is not None else None,
        "best_model_path": getattr(ckpt, "best_model_path", "") or None,
        "kept_epoch": kept_epoch,
        "val": val,
        "test": dict(test_metrics or {}),
        "epochs": int(trainer.current_epoch),
        "validated_epochs": len(epochs),
        "error": error,
    }


def save_result(run_dir: Path, result: dict[str, Any]) -> Path:
    """Write ``run_dir/result.json`` atomically (a reader never sees half a file)."""
    text = json.dumps(result, indent=2, sort_keys=True)
    path = write_atomically(run_dir / RESULT_FILE, lambda tmp: tmp.write_text(text))
    log.debug("wrote %s (%s)", path, result["status"])
    return path
