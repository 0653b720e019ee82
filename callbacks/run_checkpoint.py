"""A run's ``best.ckpt`` and ``last.ckpt`` writers, whose state survives a resume.

Lightning's ``ModelCheckpoint`` keeps its best-so-far bookkeeping in every checkpoint under a key
built from its settings (monitor, mode, every_n_train_steps ...), and restores it only when the
key and the checkpoint folder are unchanged. A resumed run that adds a step interval, or a run
folder copied to another machine, would silently forget which epoch was best. :class:`RunCheckpoint`
keys its state by role (``best``, ``last``, ``last-steps``), maps a moved folder's paths onto the
new one, and never lets a non-finite monitored value become best.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from litlab.checks import check_at_least

log = logging.getLogger(__name__)

_PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` with a stable state key and a finite-only best model.

    Args:
        role: What this writer keeps (``"best"``, ``"last"``, ``"last-steps"``): its state key,
            unique among a run's checkpoint callbacks.
        **kwargs: ``ModelCheckpoint`` arguments.
    """

    def __init__(self, role: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.role = role

    @property
    def state_key(self) -> str:
        return self._generate_state_key(role=self.role)

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Adopt the state a plain ``ModelCheckpoint`` with these settings saved (older runs)."""
        states = checkpoint.get("callbacks") or {}
        if self.state_key in states:
            return
        settings = ModelCheckpoint.state_key.fget(self)  # type: ignore[attr-defined]
        legacy = "ModelCheckpoint" + settings[len(type(self).__qualname__) :]
        if legacy in states:
            states[self.state_key] = states[legacy]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore best-model tracking, also when the run folder has moved since it was saved."""
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:
            state_dict = _moved(state_dict, Path(old), Path(self.dirpath))
            log.info(
                "checkpoint folder moved from %s to %s; best-model paths follow", old, self.dirpath
            )
        super().load_state_dict(state_dict)

    def check_monitor_top_k(self, trainer: pl.Trainer, current: torch.Tensor | None = None) -> bool:
        """Lightning's rule, except that a NaN or infinite value is never kept."""
        non_finite = current is not None and not bool(torch.isfinite(current).all())
        if trainer.strategy.reduce_boolean_decision(non_finite, all=False):
            log.warning(
                "%s is not finite (%s); %s.ckpt keeps its previous model",
                self.monitor,
                current,
                self.role,
            )
            return False
        return super().check_monitor_top_k(trainer, current)


def _moved(state: dict[str, Any], old: Path, new: Path) -> dict[str, Any]:
    """``state`` with every path under ``old`` rewritten to lie under ``new``."""

    def move(path: str) -> str:
        if not path:
            return path
        try:
            return str(new / Path(path).relative_to(old))
        except ValueError:  # not under the old folder: leave it alone
            return path

    out = dict(state, dirpath=str(new))
    for key in _PATH_KEYS:
        if isinstance(out.get(key), str):
            out[key] = move(out[key])
    if isinstance(out.get("best_k_models"), dict):
        out["best_k_models"] = {move(k): v for k, v in out["best_k_models"].items()}
    return out


def run_checkpoints(
    dirpath: Path, monitor: str, mode: str, every_n_steps: int = 0, best_full_state: bool = False
) -> list[RunCheckpoint]:
    """A run's writers: ``best.ckpt`` on ``monitor``, ``last.ckpt`` every epoch (and N steps).

    Separate writers, because ``ModelCheckpoint(save_last=True)`` refreshes ``last.ckpt`` at an
    epoch end only when a new best is saved, which would make resuming repeat epochs. The best
    writer comes first, so ``trainer.checkpoint_callback`` (and ``ckpt_path="best"``) is the
    best model, and it runs before the others in the same hook, so ``last.ckpt`` holds the
    epoch's best-model tracking.

    ``best.ckpt`` holds the weights and hyperparameters only (what test, predict, export and
    transfer read; for the liver model about a third of the full size, as Adam keeps two more
    tensors per weight); ``last.ckpt`` keeps the whole state, optimiser included, to resume from.

    Args:
        dirpath: The run's ``checkpoints`` folder.
        monitor: Logged key that decides the best model.
        mode: ``"min"`` or ``"max"``.
        every_n_steps: Also write ``last.ckpt`` every N training steps (long epochs); 0: never.
        best_full_state: Keep the whole state in ``best.ckpt`` too (optimiser, loops,
            callbacks), so a fit can resume from it.
    """
    check_at_least("checkpoint_every_n_steps", every_n_steps, 0)
    common: dict[str, Any] = {"dirpath": str(dirpath), "enable_version_counter": False}
    writers = [
        RunCheckpoint(
            "best",
            filename="best",
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            auto_insert_metric_name=False,
            save_weights_only=not best_full_state,
            **common,
        ),
        RunCheckpoint("last", filename="last", save_top_k=1, **common),
    ]
    if every_n_steps:
        writers.append(
            RunCheckpoint(
                "last-steps",
                filename="last",
                save_top_k=1,
                every_n_train_steps=every_n_steps,
                **common,
            )
        )
    return writers


def check_resumable(ckpt_path: str | Path, checkpoint: dict[str, Any]) -> None:
    """Raise a ``ValueError`` naming the way out when a fit would resume from weights only.

    Lightning would fail later with a ``KeyError`` about ``optimizer_states``.
    """
    if "optimizer_states" in checkpoint:
        return
    raise ValueError(
        f"{ckpt_path} holds the model's weights and hyperparameters only (best.ckpt keeps no "
        "optimiser state), so a fit cannot resume from it. Resume from last.ckpt beside it, "
        "which is complete; use this one with test, predict or export. To keep the whole state "
        "in best.ckpt too, train with --best_checkpoint_full_state=true"
    )
