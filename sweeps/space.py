"""Search spaces, declared beside each preset as ``<preset>.sweep.yaml``.

Format::

    metric: val/loss          # what the objective returns (a logged key)
    direction: minimize       # or maximize
    params:
      model.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      data.batch_size: {type: categorical, choices: [4, 8, 16]}
      model.optimizer: {type: categorical, choices: [adam, sgd, rmsprop]}

Keys are the same dotted names ``litlab fit`` accepts (``--model.lr=...``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from litlab.presets import PRESET_DIR

_TYPES = ("float", "int", "categorical")


@dataclass
class SearchSpace:
    """A parsed search space.

    Attributes:
        metric: Logged key the objective optimises, e.g. ``"val/loss"``.
        direction: ``"minimize"`` or ``"maximize"``.
        params: Dotted override key -> distribution spec.
        source: Where the space was read from (for messages).
    """

    metric: str
    direction: str
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "<inline>"

    def __post_init__(self) -> None:
        if self.direction not in ("minimize", "maximize"):
            raise ValueError(
                f"{self.source}: direction must be minimize or maximize, got {self.direction!r}"
            )
        for name, spec in self.params.items():
            kind = spec.get("type")
            if kind not in _TYPES:
                raise ValueError(
                    f"{self.source}: parameter {name!r} has type {kind!r}; use one of {_TYPES}"
                )
            if kind == "categorical" and not spec.get("choices"):
                raise ValueError(
                    f"{self.source}: categorical parameter {name!r} needs a non-empty 'choices' list"
                )
            if kind in ("float", "int") and not spec.get("low", 0) < spec.get("high", 0):
                raise ValueError(f"{self.source}: parameter {name!r} needs low < high, got {spec}")

    def without(self, fixed: set[str]) -> SearchSpace:
        """The space minus parameters the user fixed on the command line."""
        kept = {k: v for k, v in self.params.items() if k not in fixed}
        return SearchSpace(self.metric, self.direction, kept, self.source)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample every parameter for ``trial``."""
        values: dict[str, Any] = {}
        for name, spec in self.params.items():
            kind = spec["type"]
            if kind == "float":
                values[name] = trial.suggest_float(
                    name, spec["low"], spec["high"], log=spec.get("log", False)
                )
            elif kind == "int":
                values[name] = trial.suggest_int(
                    name,
                    spec["low"],
                    spec["high"],
                    step=spec.get("step", 1),
                    log=spec.get("log", False),
                )
            else:
                values[name] = trial.suggest_categorical(name, spec["choices"])
        return values


def override_args(values: dict[str, Any]) -> list[str]:
    """``{"model.lr": 0.001}`` -> ``["--model.lr=0.001"]`` for the LightningCLI parser."""
    out = []
    for name, value in values.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out.append(f"--{name}={text}")
    return out


def space_path(config: str) -> Path:
    """The ``.sweep.yaml`` beside a preset name or config path."""
    path = Path(config)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path.with_name(path.stem + ".sweep.yaml")
    return PRESET_DIR / f"{config}.sweep.yaml"


def load_space(config: str, space_file: str | None = None) -> SearchSpace:
    """Load the search space of a preset (or an explicit file).

    Raises:
        FileNotFoundError: No space is declared; the message says how to add one.
    """
    path = Path(space_file) if space_file else space_path(config)
    if not path.is_file():
        raise FileNotFoundError(
            f"no search space for {config!r}: expected {path}; write one (see sweeps/space.py for the "
            "format) or pass --space FILE"
        )
    raw = yaml.safe_load(path.read_text()) or {}
    return SearchSpace(
        metric=raw.get("metric", "val/loss"),
        direction=raw.get("direction", "minimize"),
        params=raw.get("params") or {},
        source=str(path),
    )
