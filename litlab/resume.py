"""Resume in place: the run folder a checkpoint belongs to, and what a resume may change.

``litlab fit ... --ckpt_path <run>/checkpoints/last.ckpt`` continues ``<run>``: its folder, CSV,
W&B run and best-model tracking. The model is the checkpoint's: an option that contradicts its
hyperparameters (backbone, classes, stem, learning rate ...) or its seed is an error naming both
values, because Lightning would otherwise drop it silently (LightningCLI takes the model from the
checkpoint; the optimiser state restores the old learning rate). Trainer and data options (max
epochs, batch limits, devices, workers) apply, and each change is logged.
"""

from __future__ import annotations

import logging
import math
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from litlab.checkpoint_file import read_checkpoint
from litlab.contract import CONTRACT
from litlab.datamodules.cache import write_atomically
from litlab.errors import BadInputError

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = Path("csv") / "config.yaml"  # where LightningCLI saves a run's config
WANDB_ID_FILE = Path("wandb") / "run_id"
SEED_STATE_KEY = "EpochSeeding"  # callbacks.epoch_seeding.EpochSeeding's state key
_LINKED = {name for targets in CONTRACT.values() for name in targets}
# Top-level config keys a resume does not report as changes: the model must not change (it is
# checked against the checkpoint instead), the others name files rather than settings.
_NOT_REPORTED = ("model", "ckpt_path", "config", "__default_config__")
# --ckpt_path values Lightning resolves itself ("registry..." too): not files.
_LIGHTNING_CKPT_WORDS = ("best", "last", "hpc")


def run_dir_of(ckpt_path: str | Path | None) -> Path | None:
    """The run folder of ``<run>/checkpoints/<name>.ckpt``; ``None`` for any other path."""
    if not ckpt_path:
        return None
    path = Path(ckpt_path).expanduser()
    if not path.is_file() or path.parent.name != CHECKPOINT_DIR:
        return None
    return path.resolve().parent.parent


def run_config(run_dir: Path) -> Path | None:
    """The config LightningCLI saved for the run, if it is there."""
    path = run_dir / CONFIG_FILE
    return path if path.is_file() else None


def load_checkpoint(ckpt_path: str | Path) -> dict[str, Any]:
    """A checkpoint's contents, memory-mapped (tensors are read only if touched).

    Raises:
        BadInputError: The file is damaged, is no checkpoint, or carries code (refused):
            :func:`litlab.checkpoint_file.read_checkpoint` says which.
    """
    return read_checkpoint(ckpt_path)


def checkpoint_seed(checkpoint: Mapping[str, Any]) -> int | None:
    """The seed the checkpoint's run reseeded its epochs with, if it recorded one."""
    state = (checkpoint.get("callbacks") or {}).get(SEED_STATE_KEY) or {}
    seed = state.get("seed")
    return int(seed) if seed is not None else None


def _plain(value: Any) -> Any:
    """Namespaces and tuples as dicts and lists, so config and checkpoint values compare."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return _plain(a) == _plain(b)


def _show(value: Any) -> str:
    value = _plain(value)
    return value if isinstance(value, str) else repr(value)


def model_contradictions(
    model_config: Mapping[str, Any], hparams: Mapping[str, Any], prefix: str = "--model."
) -> list[str]:
    """Each model option whose value differs from the checkpoint's hyperparameters.

    Args:
        model_config: The model's ``init_args`` (and ``class_path``) from the command line and
            config files, or the hyperparameters of the instantiated model.
        hparams: The checkpoint's ``hyper_parameters``.
        prefix: How an option is spelled on the command line.

    Returns:
        One line per contradiction, naming the option, both values and the checkpoint's.
    """
    config = _plain(model_config)
    init_args = config.get("init_args", config)
    lines = []
    saved_class = hparams.get("_class_path")
    if saved_class and config.get("class_path") and config["class_path"] != saved_class:
        lines.append(f"--model={config['class_path']}, but the checkpoint holds {saved_class}")
    for name, saved in hparams.items():
        if name.startswith("_") or name not in init_args:
            continue
        if name in _LINKED:
            continue  # the data fills it in; litlab.contract checks data, options and checkpoint
        if not _same(init_args[name], saved):
            lines.append(
                f"{prefix}{name}={_show(init_args[name])}, but the checkpoint was trained with "
                f"{name}={_show(saved)}"
            )
    return lines


def contradiction_error(
    ckpt_path: str | Path, lines: list[str], subcommand: str = "fit"
) -> ValueError:
    """The error for :func:`model_contradictions`' lines: what differs and the two ways out."""
    body = "\n".join(f"  {line}" for line in lines)
    return ValueError(
        f"options that contradict the checkpoint {ckpt_path}:\n{body}\n"
        "The model (and a resumed fit's seed) come from the checkpoint, so these options would "
        f"be ignored. Drop them (`litlab {subcommand} --ckpt_path {ckpt_path}` alone uses the "
        "run's own config), or leave out --ckpt_path to train a new model with them."
    )


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    value = _plain(value)
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def changed_options(saved_config: Path, config: Mapping[str, Any]) -> list[str]:
    """``option: old -> new`` for each trainer, data or top-level option a resume changes."""
    old = _flat(yaml.safe_load(saved_config.read_text()) or {}, "")
    new = _flat(config, "")
    return [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(old.keys() | new.keys())
        if key.split(".")[0] not in _NOT_REPORTED and not _same(old.get(key), new.get(key))
    ]


def wandb_run_id(run_dir: Path) -> str:
    """The run's W&B id: read from ``<run>/wandb/run_id``, or made and written there once."""
    path = run_dir / WANDB_ID_FILE
    if path.is_file():
        return path.read_text().strip()
    run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    write_atomically(path, lambda tmp: tmp.write_text(run_id + "\n"))
    return run_id


def _ckpt_arg(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--ckpt_path" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--ckpt_path="):
            return arg.split("=", 1)[1]
    return None


def with_run_config(argv: list[str]) -> list[str]:
    """``--ckpt_path <run>/checkpoints/x.ckpt`` without ``--config`` uses the run's config.

    So ``litlab fit --ckpt_path <run>/checkpoints/last.ckpt`` alone resumes a run with every
    option it was started with (``litlab test --ckpt_path .../best.ckpt`` tests it likewise);
    options given after it still apply.
    """
    if (
        not argv
        or argv[0] not in ("fit", "validate", "test", "predict")
        or any(a == "--config" or a.startswith("--config=") for a in argv)
    ):
        return argv
    run_dir = run_dir_of(_ckpt_arg(argv))
    config = run_config(run_dir) if run_dir is not None else None
    if config is None:
        return argv
    log.info("using the run's config %s", config)
    return [argv[0], "--config", str(config), *argv[1:]]


@dataclass
class Resume:
    """A command given ``--ckpt_path``: the checkpoint, its contents and its run folder.

    Attributes:
        ckpt_path: The checkpoint file.
        checkpoint: Its contents (memory-mapped).
        run_dir: The run folder it belongs to, or ``None`` when it lies outside one.
    """

    ckpt_path: Path
    checkpoint: dict[str, Any]
    run_dir: Path | None

    @classmethod
    def of(cls, ckpt_path: str | Path | None) -> Resume | None:
        """``None`` unless ``ckpt_path`` is a file (Lightning's ``"last"``/``"best"`` are not).

        Raises:
            BadInputError: ``ckpt_path`` names no file (and none of Lightning's keywords), or
                the file cannot be read as a checkpoint.
        """
        if not ckpt_path or str(ckpt_path) in _LIGHTNING_CKPT_WORDS:
            return None
        if str(ckpt_path).startswith("registry"):
            return None
        path = Path(ckpt_path).expanduser()
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise BadInputError(
                f"--ckpt_path {ckpt_path} {what}; pass a checkpoint file such as "
                "runs/<preset>/<time>/checkpoints/last.ckpt (or best.ckpt)"
            )
        return cls(path, load_checkpoint(ckpt_path), run_dir_of(ckpt_path))

    @property
    def global_step(self) -> int:
        """Optimizer steps done when the checkpoint was written."""
        return int(self.checkpoint.get("global_step", 0))

    @property
    def hparams(self) -> dict[str, Any]:
        return dict(self.checkpoint.get("hyper_parameters") or {})

    def check_config(self, config: Any, subcommand: str = "fit") -> None:
        """Raise on model options (and, for ``fit``, a seed) that contradict the checkpoint.

        A random seed (``seed_everything: true``) becomes the checkpoint's, so the resumed
        epochs draw the same numbers.
        """
        lines = model_contradictions(config["model"], self.hparams) if "model" in config else []
        seed = checkpoint_seed(self.checkpoint) if subcommand == "fit" else None
        wanted = config.get("seed_everything")
        if seed is not None and wanted is True:
            config["seed_everything"] = seed
        elif seed is not None and wanted is not False and int(wanted) != seed:
            lines.append(
                f"--seed_everything={wanted}, but the checkpoint's run was seeded with {seed}"
            )
        if lines:
            raise contradiction_error(self.ckpt_path, lines, subcommand)

    def log_changes(self, config: Mapping[str, Any]) -> None:
        """Log each trainer/data option that differs from the config the run was started with."""
        saved = run_config(self.run_dir) if self.run_dir is not None else None
        for line in changed_options(saved, config) if saved is not None else []:
            log.info("resume applies a changed option: %s", line)
