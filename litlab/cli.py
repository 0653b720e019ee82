"""The ``litlab`` command: a light dispatcher in front of the training CLI and the tools.

``litlab fit --config fer2013-resnet50 --trainer.max_epochs=3`` trains a preset (the
LightningCLI in :mod:`litlab.lightning_cli`, imported only by ``fit``, ``validate``, ``test``
and ``predict``); ``litlab presets`` lists them; ``litlab sweep``, ``cv``, ``preview``,
``report`` and the other tools are dispatched to their own modules. Importing this module
loads neither torch nor Lightning, so the light commands answer at once; ``<command> --help``
prints a text built on first use and cached (:mod:`litlab.help_cache`).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

from litlab.failures import DEBUG_ENV, report_failure
from litlab.help_cache import cached_help, is_help_request
from litlab.presets import PRESET_DIR, preset_description, preset_names, resolve_preset
from litlab.runs import die_with_parent

log = logging.getLogger(__name__)

#: Commands that build a Trainer; only they import torch and Lightning (litlab.lightning_cli).
TRAINER_COMMANDS = {
    "fit": "train, then test the best checkpoint",
    "validate": "score a checkpoint on the validation split",
    "test": "score a checkpoint on the test split",
    "predict": "predict images with a checkpoint (--predict_from)",
}
# Names that live in litlab.lightning_cli, importable from here without loading it eagerly.
_TRAINING_NAMES = (
    "LitlabCLI",
    "RUN_DIR_ENV",
    "WANDB_CONFIG_ENV",
    "build_loggers",
    "fit_and_test",
    "print_summary",
    "run_cli",
    "wandb_mode",
    "write_result",
)
EXTRA_COMMANDS = {
    "sweep": ("litlab.sweeps.cli", "Optuna search over a preset's hyperparameters"),
    "cv": ("litlab.cv", "k-fold cross-validation of a preset, mean and std per metric"),
    "workflow": ("litlab.workflows.cli", "runs chained: segment-then-classify, remove-background"),
    "preview": ("litlab.preview", "PNG grid of a preset's preprocessing stages per class"),
    "report": ("litlab.report", "tables and figures comparing runs with the papers"),
    "export": ("litlab.export", "a checkpoint as ONNX or TorchScript, preprocessing in metadata"),
    "db": ("litlab.db", "start/stop a local PostgreSQL for sweeps shared by several processes"),
    "dashboard": ("litlab.dashboard", "optuna-dashboard for a study's journal file or database"),
}


def __getattr__(name: str) -> Any:
    """``from litlab.cli import run_cli`` (and the other training names) loads them lazily."""
    if name in _TRAINING_NAMES:
        return getattr(importlib.import_module("litlab.lightning_cli"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_config_args(argv: list[str]) -> list[str]:
    """Replace ``--config NAME`` (and ``--config=NAME``) preset names by their YAML paths."""
    out: list[str] = []
    it = iter(range(len(argv)))
    for i in it:
        arg = argv[i]
        if arg == "--config" and i + 1 < len(argv):
            out += [arg, str(resolve_preset(argv[i + 1]))]
            next(it, None)
        elif arg.startswith("--config="):
            out.append("--config=" + str(resolve_preset(arg.split("=", 1)[1])))
        else:
            out.append(arg)
    return out


def list_presets() -> None:
    """Print every shipped preset with its one-line description."""
    names = preset_names()
    width = max((len(n) for n in names), default=0)
    for name in names:
        print(f"{name.ljust(width)}  {preset_description(PRESET_DIR / f'{name}.yaml')}")


def _usage() -> str:
    lines = [
        "usage: litlab {fit,validate,test,predict} --config <preset|file.yaml> [--dotted.overrides]",
        "       litlab presets",
    ]
    lines += [f"       litlab {name:<8} {desc}" for name, (_, desc) in EXTRA_COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    die_with_parent()  # a run launched by an orchestrator dies with it
    if not sys.stderr.isatty():  # no redrawn bars (data decoding ...) in a log file
        os.environ.setdefault("TQDM_DISABLE", "1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        if argv:
            print("\nTrainer subcommands (litlab fit --help for every option):")
            for name, desc in TRAINER_COMMANDS.items():
                print(f"  {name:<9} {desc}")
        return 0
    command = argv[0]
    if command == "presets":
        list_presets()
        return 0
    try:
        if is_help_request(argv) and (command in TRAINER_COMMANDS or command in EXTRA_COMMANDS):
            text = cached_help(command, lambda: _dispatch(command, argv))
            if text is not None:
                print(text, end="")
                return 0
        return _dispatch(command, argv)
    except Exception as err:  # the last net: bad input (exit 2) or an internal error (exit 1)
        if os.environ.get(DEBUG_ENV):
            raise
        return report_failure(err, argv)


def _dispatch(command: str, argv: list[str]) -> int:
    """Run a tool command or a trainer command; returns its exit code."""
    if command in EXTRA_COMMANDS:
        module = importlib.import_module(EXTRA_COMMANDS[command][0])
        return int(module.main(argv[1:]) or 0)
    from litlab.callbacks.divergence import TrainingDiverged  # heavy: trainer commands only
    from litlab.lightning_cli import run_cli

    try:
        run_cli(argv)
    except TrainingDiverged as err:
        print(f"litlab: error: {err}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
