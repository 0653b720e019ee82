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

from litlab.errors import BadInputError
from litlab.presets import PRESET_DIR, read_yaml_mapping

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
        if not isinstance(self.metric, str) or not self.metric:
            raise BadInputError(
                f"{self.source}: metric must be a logged key such as val/loss, got {self.metric!r}"
            )
        if self.direction not in ("minimize", "maximize"):
            raise BadInputError(
                f"{self.source}: direction must be minimize or maximize, got {self.direction!r}"
            )
        if not isinstance(self.params, dict):
            raise BadInputError(
                f"{self.source}: params must map option names to specs, e.g. "
                "'model.lr: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}'; got "
                f"{type(self.params).__name__}"
            )
        for name, spec in self.params.items():
            _check_param(self.source, name, spec)

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


def _check_param(source: str, name: object, spec: object) -> None:
    """Raise when one ``params`` entry is not a distribution Optuna can sample."""
    where = f"{source}: parameter {name!r}"
    if not isinstance(name, str) or not isinstance(spec, dict):
        raise BadInputError(
            f"{where} must be a dotted option name with a mapping such as "
            f"{{type: float, low: 0.0001, high: 0.01}}; got {spec!r}"
        )
    kind = spec.get("type")
    if kind not in _TYPES:
        raise BadInputError(f"{where} has type {kind!r}; use one of {_TYPES}")
    if kind == "categorical":
        if not isinstance(spec.get("choices"), list) or not spec["choices"]:
            raise BadInputError(f"{where}: categorical needs a non-empty 'choices' list")
        return
    low, high = spec.get("low"), spec.get("high")
    numbers = (int,) if kind == "int" else (int, float)
    if not all(isinstance(v, numbers) and not isinstance(v, bool) for v in (low, high)):
        raise BadInputError(f"{where} needs numeric {kind} low and high, got {spec}")
    if not low < high:
        raise BadInputError(f"{where} needs low < high, got {spec}")
    if spec.get("log") and low <= 0:
        raise BadInputError(f"{where} has log: true, which needs low > 0, got {spec}")


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
    raw = read_yaml_mapping(path, "search space", "see sweeps/space.py for the format")
    return SearchSpace(
        metric=raw.get("metric", "val/loss"),
        direction=raw.get("direction", "minimize"),
        params=raw.get("params") or {},
        source=str(path),
    )
