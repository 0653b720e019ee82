"""The model<->data contract: classes, input channels and class names flow from data to model.

Every litlab DataModule knows, right after ``__init__``, how many classes its targets have
(``num_classes``), how many channels its images have (``in_chans``) and what the classes are
called (``class_names``). ``litlab fit|validate|test|predict`` links each of them to the model's
init argument of the same meaning with ``link_arguments(..., apply_on="instantiate")`` — timm's
spelling (``num_classes``, ``in_chans``) and smp's (``classes``, ``in_channels``) — so a preset
states these facts once, in its data section, and a model whose class lacks an argument is simply
not linked to it.

A value the user forces on the model (on the command line, in a config file, or through the
checkpoint of ``--ckpt_path``) that contradicts the data stops the run with both values and the
option to change.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser, _InstantiatorFn

log = logging.getLogger(__name__)

#: DataModule property -> the model init arguments that take it.
CONTRACT: dict[str, tuple[str, ...]] = {
    "num_classes": ("num_classes", "classes"),
    "in_chans": ("in_chans", "in_channels"),
    "class_names": ("class_names",),
}


def link_contract(parser: LightningArgumentParser) -> None:
    """Link every contract property of ``data`` to the model arguments that take it.

    A link whose model class has no such argument, or whose DataModule has no such property, is
    skipped by jsonargparse at instantiation.
    """
    for source, targets in CONTRACT.items():
        for target in targets:
            parser.link_arguments(
                f"data.{source}", f"model.init_args.{target}", apply_on="instantiate"
            )


def contract_values(model: Namespace | Mapping[str, Any] | None) -> dict[str, Any]:
    """The contract arguments set in a parsed ``model`` section (``None`` values are unset)."""
    if model is None:
        return {}
    init = model.get("init_args") if "init_args" in model else model
    if init is None:
        return {}
    names = {name for targets in CONTRACT.values() for name in targets}
    return {name: init[name] for name in names if name in init and init[name] is not None}


def forced_model_args(parser: LightningArgumentParser, args: list[str] | None) -> dict[str, Any]:
    """The contract arguments the command line and config files set on the model themselves.

    Parsed again without defaults, so a value counts only where the user (or a config file)
    wrote it.
    """
    try:
        explicit = parser.parse_args(args, defaults=False)
    except SystemExit:  # the first parse already reported anything wrong with the arguments
        return {}
    subcommand = explicit.get("subcommand")
    section = explicit.get(subcommand) if subcommand else explicit
    return contract_values(section.get("model") if section is not None else None)


def checkpoint_model_args(ckpt_path: str | Path | None) -> dict[str, Any]:
    """The contract arguments a checkpoint's model was built with (empty without a checkpoint)."""
    if not ckpt_path or not Path(ckpt_path).is_file():
        return {}
    try:  # memory-mapped: the weights are not read
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # an unreadable checkpoint is reported where it is loaded
        log.debug("cannot read %s for its model arguments", ckpt_path, exc_info=True)
        return {}
    return contract_values(checkpoint.get("hyper_parameters") or {})


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return [str(x) for x in a] == [str(y) for y in b]
    return a == b


def check_contract(
    datamodule: Any,
    forced: Mapping[str, Any],
    from_checkpoint: Mapping[str, Any],
    ckpt_path: str | Path | None = None,
) -> None:
    """Fail when a forced model argument contradicts what the DataModule provides.

    Args:
        datamodule: The instantiated DataModule.
        forced: Contract arguments given on the command line or in config files.
        from_checkpoint: Contract arguments of the ``--ckpt_path`` checkpoint's model.
        ckpt_path: That checkpoint, for the message.

    Raises:
        ValueError: Names the model option, both values and what to change.
    """
    data = type(datamodule).__name__
    for source, targets in CONTRACT.items():
        if not hasattr(datamodule, source):
            continue
        have = getattr(datamodule, source)
        for target in targets:
            if target in forced and not _same(forced[target], have):
                raise ValueError(
                    f"--model.{target}={forced[target]!r} contradicts the data: {data} gives "
                    f"{source}={have!r}. Leave --model.{target} out (the model takes it from the "
                    f"data) or set --model.{target}={have!r}"
                )
            if target in from_checkpoint and not _same(from_checkpoint[target], have):
                raise ValueError(
                    f"the checkpoint {ckpt_path} holds a model with {target}="
                    f"{from_checkpoint[target]!r} but the data ({data}) gives {source}={have!r}; "
                    "pass the data options the checkpoint was trained with, or a checkpoint "
                    "trained on this data"
                )


class ContractInstantiator(_InstantiatorFn):
    """LightningCLI's module instantiator, recording only the linked values the class takes.

    jsonargparse reports every applied link, also those it skipped because the model class has no
    such argument; recorded as hyperparameters, those would break ``--ckpt_path`` reloading.
    """

    def __call__(
        self, class_type: type, *args: Any, applied_instantiation_links: dict, **kwargs: Any
    ) -> Any:
        takes = inspect.signature(class_type).parameters
        prefix = f"{self.key}.init_args."
        links = {
            key: value
            for key, value in applied_instantiation_links.items()
            if not key.startswith(prefix) or key[len(prefix) :] in takes
        }
        return super().__call__(class_type, *args, applied_instantiation_links=links, **kwargs)
