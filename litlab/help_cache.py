"""Help texts of the heavy commands, built once and reused while nothing they depend on changes.

``litlab fit --help`` lists every option of every class a preset can name; building that parser
imports torch, Lightning and the models (seconds). The text only changes when litlab's sources
or presets, the installed libraries or the program's name change, so it is built once, at
:data:`HELP_COLUMNS` columns whatever the terminal, and stored under ``<cache>/help/`` keyed by
all of those; later calls print the stored text without importing anything heavy. A stale entry
is never shown: any change of a source file (by content), a preset or an installed library's
version gives a new key. ``make install`` builds every command's text
(``python -m litlab.help_cache``), so even the first ``--help`` after it answers at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

HELP_FLAGS = ("-h", "--help")
#: Width the texts are laid out at (one text serves every terminal, so it can be built ahead).
HELP_COLUMNS = 100
#: Every package litlab installs (pyproject's ``packages``): their sources and presets key the text.
_PACKAGES = (
    "litlab",
    "litlab.datamodules",
    "litlab.lightning_modules",
    "litlab.callbacks",
    "litlab.sweeps",
    "litlab.networks",
    "litlab.metrics",
    "litlab.plots",
    "litlab.optim",
)


def is_help_request(argv: list[str]) -> bool:
    """Whether ``argv`` is exactly ``<command> -h`` or ``<command> --help``."""
    return len(argv) == 2 and argv[1] in HELP_FLAGS


def _source_files() -> list[Path]:
    """litlab's Python sources and preset YAML files, in a stable order."""
    files: set[Path] = set()
    for name in _PACKAGES:
        spec = importlib.util.find_spec(name)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            files.update(Path(folder).rglob("*.py"))
            files.update(Path(folder).rglob("*.yaml"))
    return sorted(files)


def _installed_distributions() -> list[str]:
    """The ``<name>-<version>.dist-info`` folders on ``sys.path``: every installed library's
    version, read from directory listings (importing ``importlib.metadata`` costs more)."""
    names = []
    for entry in sys.path:
        with contextlib.suppress(OSError):
            names += sorted(n for n in os.listdir(entry or ".") if n.endswith(".dist-info"))
    return names


def _gpu_probe() -> str:
    """Whether this machine shows an NVIDIA GPU, without importing torch: some defaults in the help
    (``--trainer.precision``, ``--channels_last``) follow CUDA, so a GPU node and a CPU login
    node sharing one cache keep separate texts."""
    driver = Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()
    return f"gpu={driver};visible={os.environ.get('CUDA_VISIBLE_DEVICES')}"


def help_key(command: str) -> str:
    """The key of ``litlab <command> --help``: sources, presets, libraries, program name."""
    digest = hashlib.sha256()
    columns = f"columns={HELP_COLUMNS}"
    prog = f"prog={os.path.basename(sys.argv[0])}"  # argparse's usage line names the program
    for part in (command, columns, prog, _gpu_probe(), *_installed_distributions()):
        digest.update(part.encode() + b"\0")
    for path in _source_files():
        digest.update(path.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


def cache_dir() -> Path:
    """``<cache>/help``: the cache root as :func:`litlab.datamodules.cache.cache_root` finds it
    (``$LITLAB_CACHE``, else ``$XDG_CACHE_HOME/litlab`` or ``~/.cache/litlab``), without
    importing that module's NumPy."""
    env = os.environ.get("LITLAB_CACHE")
    if env:
        return Path(env).expanduser() / "help"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "litlab" / "help"


def help_path(command: str) -> Path:
    """Where the help text of ``litlab <command>`` is cached for the current key."""
    return cache_dir() / f"{command}-{help_key(command)}.txt"


def build_help(run: Callable[[], object]) -> str | None:
    """Run a command that prints its help and exits; its text, or ``None`` if it failed."""
    out = io.StringIO()
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_COLUMNS)  # argparse lays help out at the terminal's width
    try:
        with contextlib.redirect_stdout(out):
            run()
    except SystemExit as done:
        if done.code not in (0, None):
            return None
    finally:
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return out.getvalue() or None


def cached_help(command: str, run: Callable[[], object]) -> str | None:
    """The help text of ``litlab <command>``: stored, or built by ``run`` and stored.

    Args:
        command: The subcommand name (``fit``, ``sweep`` ...).
        run: Prints the help (and exits, as argparse does) when called.

    Returns:
        The text, or ``None`` when ``run`` failed (the caller then runs the command as usual).
    """
    path = help_path(command)
    with contextlib.suppress(OSError):
        return path.read_text()
    text = build_help(run)
    if text is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob(f"{command}-*.txt"):  # entries of older sources
            old.unlink(missing_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as err:  # an unwritable cache costs time, never the help itself
        log.debug("help text not cached at %s: %s", path, err)
    return text


def build_all(commands: list[str]) -> list[Path]:
    """Build and store the help text of each of ``commands`` (as ``litlab <command> --help``)."""
    from litlab.cli import _dispatch  # the entry point imports this module: import it late

    built = []
    for command in commands:
        if cached_help(command, lambda c=command: _dispatch(c, [c, "--help"])) is not None:
            built.append(help_path(command))
    return built


if __name__ == "__main__":  # ``make install``: every command's help, ready before its first use
    from litlab.cli import EXTRA_COMMANDS, TRAINER_COMMANDS

    sys.argv[0] = "litlab"  # the program name the console script runs under (part of the key)
    paths = build_all([*TRAINER_COMMANDS, *EXTRA_COMMANDS])
    print(f"help texts of {len(paths)} commands cached under {cache_dir()}")
