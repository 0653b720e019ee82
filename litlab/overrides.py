"""Command-line overrides (``--section.key=value``) as every orchestrator reads them.

``litlab sweep``, ``litlab cv`` and the workflows pass the options after their own on to the
``litlab`` commands they launch, and read some of them first (a sweep's fixed parameters, a
workflow's run keys). They read them here, one way: ``--name=value`` or ``--name value``, a bare
``--name`` as ``True``, each value a YAML scalar as the CLI reads it, a later option winning.
This module imports no other part of litlab, so any layer may use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Option:
    """One ``--name=value`` (or ``--name value``) of a command line.

    Attributes:
        name: The dotted name without dashes, e.g. ``trainer.max_epochs``.
        text: The value as written (``None`` for a bare flag).
    """

    name: str
    text: str | None

    @property
    def value(self) -> Any:
        """The value read as a YAML scalar, as the CLI reads it (a bare flag is ``True``)."""
        if self.text is None:
            return True
        return yaml.safe_load(self.text) if self.text else ""

    def arg(self, name: str | None = None) -> str:
        """``--name=text`` (under another ``name`` if given)."""
        name = name or self.name
        return f"--{name}" if self.text is None else f"--{name}={self.text}"


def parse_options(argv: Sequence[str]) -> list[Option]:
    """``["--a.b=1", "--c", "x", "--flag"]`` -> options, in order.

    Raises:
        ValueError: An argument that is not an option (it names the argument).
    """
    out: list[Option] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ValueError(f"cannot read override {arg!r}; write it as --section.key=value")
        if "=" in arg:
            name, text = arg[2:].split("=", 1)
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            name, text = arg[2:], argv[i + 1]
            i += 1
        else:
            name, text = arg[2:], None
        out.append(Option(name, text))
        i += 1
    return out


def option_values(options: Sequence[Option]) -> dict[str, Any]:
    """``{name: value}``; a later option wins, as on the command line."""
    return {option.name: option.value for option in options}


def parse_overrides(argv: Sequence[str]) -> dict[str, Any]:
    """``["--trainer.max_epochs=3", "--data.root", "/d"]`` -> ``{"trainer.max_epochs": 3, ...}``.

    Raises:
        ValueError: An argument that is not an option (it names the argument).
    """
    return option_values(parse_options(argv))
