"""Preset YAMLs shipped as package data: find, list and read them by name."""

from __future__ import annotations

from pathlib import Path

import yaml

from litlab.errors import BadInputError

PRESET_DIR = Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    """Every shipped preset name, sorted."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml") if not p.name.endswith(".sweep.yaml"))


def resolve_preset(name_or_path: str) -> Path:
    """An existing YAML path as-is, else the shipped preset of that name.

    Raises:
        FileNotFoundError: Neither a file nor a preset; the message lists the presets.
        BadInputError: The file is not a YAML mapping (the line and column are named).
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        read_config(path)  # a broken file is named here, not deep inside the option parser
        return path
    shipped = PRESET_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise FileNotFoundError(
        f"no preset or config file {name_or_path!r}; presets: {', '.join(preset_names())} "
        "(`litlab presets` describes them)"
    )


def load_preset(name_or_path: str) -> dict:
    """The parsed YAML of a preset name or config path."""
    return read_config(resolve_preset(name_or_path))


_CONFIG_FIX = "litlab fit --config <preset> --print_config shows a valid one"


def read_config(path: Path) -> dict:
    """A config file's YAML mapping of options (see :func:`read_yaml_mapping`)."""
    return read_yaml_mapping(path, "config file", _CONFIG_FIX)


def read_yaml_mapping(path: Path, what: str, fix: str) -> dict:
    """The YAML mapping in ``path``.

    Args:
        path: The file.
        what: What the file is, for messages (``"config file"``, ``"search space"``).
        fix: Where to see a valid one, for messages.

    Raises:
        BadInputError: It cannot be read, is not valid YAML (line and column named) or is not a
            mapping.
    """
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise BadInputError(
            f"{what} {path}{where}: not valid YAML ({problem}); fix the file ({fix})"
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise BadInputError(f"cannot read {what} {path}: {err}") from err
    if not isinstance(data, dict):
        raise BadInputError(
            f"{what} {path} holds a {type(data).__name__}, not a mapping; fix the file ({fix})"
        )
    return data


def preset_description(path: Path) -> str:
    """The first ``# comment`` line of a preset file."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""
