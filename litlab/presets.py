"""Preset YAMLs shipped as package data: find, list and read them by name."""

from __future__ import annotations

from pathlib import Path

import yaml

PRESET_DIR = Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    """Every shipped preset name, sorted."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml") if not p.name.endswith(".sweep.yaml"))


def resolve_preset(name_or_path: str) -> Path:
    """An existing YAML path as-is, else the shipped preset of that name.

    Raises:
        FileNotFoundError: Neither a file nor a preset; the message lists the presets.
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
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
    return yaml.safe_load(resolve_preset(name_or_path).read_text()) or {}


def preset_description(path: Path) -> str:
    """The first ``# comment`` line of a preset file."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""
