"""The light commands load neither torch nor Lightning: they answer without the training stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from litlab.datamodules.cache import cache_root

from litlab import help_cache
from litlab.cli import EXTRA_COMMANDS, TRAINER_COMMANDS
from litlab.help_cache import help_path

HEAVY = ("torch", "lightning")


def _loaded_after(code: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter; which heavy modules it left in ``sys.modules``."""
    probe = (
        "import contextlib, io, json, sys\n"
        f"{code}\n"
        f"print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_entry_point_loads_no_training_stack():
    assert _loaded_after("import litlab.cli") == {"torch": False, "lightning": False}


@pytest.mark.parametrize("argv", [["presets"], ["--help"], []])
def test_light_commands_stay_light(argv):
    code = (
        "from litlab.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    assert main({argv!r}) == 0\n"
        "assert out.getvalue().strip(), 'the command printed nothing'"
    )
    assert _loaded_after(code) == {"torch": False, "lightning": False}


def test_training_names_still_import_from_the_entry_point():
    code = (
        "import litlab.cli\n"
        "from litlab.cli import LitlabCLI, fit_and_test, run_cli\n"
        "assert run_cli.__module__ == 'litlab.lightning_cli'\n"
        "assert LitlabCLI.__name__ == 'LitlabCLI'"
    )
    assert _loaded_after(code) == {"torch": True, "lightning": True}


def test_help_lists_the_trainer_subcommands(capsys):
    from litlab.cli import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("fit", "validate", "test", "predict", "presets", "sweep", "report"):
        assert name in out


# The command run as the dispatcher runs it, without the cache, under the same program name.
_UNCACHED = (
    "import sys; sys.argv[0] = 'cli.py'; from litlab.cli import _dispatch; "
    "_dispatch('{command}', ['{command}', '--help'])"
)


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "LITLAB_CACHE": str(cache), "COLUMNS": "100"}


@pytest.mark.parametrize("command", sorted({*TRAINER_COMMANDS, *EXTRA_COMMANDS}))
def test_help_of_every_command_answers_from_its_cache_without_the_training_stack(
    tmp_path, monkeypatch, command
):
    monkeypatch.setenv("LITLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setattr(sys, "argv", ["litlab"])
    path = help_path(command)  # the entry a first call writes: here a known text
    path.parent.mkdir(parents=True)
    path.write_text(f"usage: litlab {command} (cached)\n")
    code = (
        f"import os; os.environ['LITLAB_CACHE'] = {str(tmp_path)!r}\n"
        "os.environ['COLUMNS'] = '100'; sys.argv[0] = 'litlab'\n"
        "from litlab.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    assert main([{command!r}, '--help']) == 0\n"
        f"assert out.getvalue() == 'usage: litlab {command} (cached)\\n', out.getvalue()"
    )
    assert _loaded_after(code) == {"torch": False, "lightning": False}


def test_a_changed_source_file_gives_a_new_help_key(tmp_path, monkeypatch):
    source = tmp_path / "module.py"
    source.write_text("x = 1\n")
    monkeypatch.setattr(help_cache, "_source_files", lambda: [source])
    before = help_cache.help_key("fit")
    assert help_cache.help_key("fit") == before  # stable while nothing changes
    source.write_text("x = 2\n")
    assert help_cache.help_key("fit") != before
    assert help_cache.help_key("test") != help_cache.help_key("fit")


def test_a_machine_with_another_gpu_view_gets_its_own_help_key(monkeypatch):
    """Defaults in the trainer commands' help follow CUDA (precision, channels-last)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with_gpu0 = help_cache.help_key("fit")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert help_cache.help_key("fit") != with_gpu0


def test_help_cache_dir_is_the_cache_root(tmp_path, monkeypatch):
    for env in ({"LITLAB_CACHE": str(tmp_path / "a")}, {"XDG_CACHE_HOME": str(tmp_path / "b")}):
        monkeypatch.delenv("LITLAB_CACHE", raising=False)
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert help_cache.cache_dir() == cache_root() / "help"


def test_cached_help_equals_a_fresh_build_and_replaces_stale_entries(tmp_path):
    """``cv --help`` (a quick one to build): first call builds and stores, second reads."""
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / "help" / "cv-0000.txt"
    stale.parent.mkdir()
    stale.write_text("old text\n")
    run = [sys.executable, "-m", "litlab.cli", "cv", "--help"]
    fresh = subprocess.run(run, capture_output=True, text=True, env=_env(cache), timeout=120)
    assert fresh.returncode == 0 and "usage:" in fresh.stdout
    assert not stale.exists()
    (entry,) = (cache / "help").glob("cv-*.txt")
    assert entry.read_text() == fresh.stdout
    again = subprocess.run(run, capture_output=True, text=True, env=_env(cache), timeout=120)
    assert again.stdout == fresh.stdout
    direct = subprocess.run(
        [sys.executable, "-c", _UNCACHED.format(command="cv")],
        capture_output=True, text=True, env=_env(cache), timeout=120,
    )  # fmt: skip
    assert direct.stdout == fresh.stdout  # what the command itself prints


def test_install_builds_the_help_that_any_terminal_then_reads(tmp_path):
    """``python -m litlab.help_cache`` (run by ``make install``) stores the texts ahead; a later
    ``--help`` in a terminal of another width reads the stored text, laid out at HELP_COLUMNS."""
    cache = tmp_path / "cache"
    code = (
        "import sys; from litlab import help_cache; sys.argv[0] = 'litlab'\n"
        "print(help_cache.build_all(['cv', 'report']))"
    )
    env = {**os.environ, "LITLAB_CACHE": str(cache), "COLUMNS": "60"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    built = {p.name.split("-")[0]: p.read_text() for p in (cache / "help").glob("*.txt")}
    assert set(built) == {"cv", "report"}
    widest = max(len(line) for line in built["cv"].splitlines())
    assert 60 < widest <= help_cache.HELP_COLUMNS  # its own width, not the builder's terminal
    reader = (
        f"import os; os.environ.update({{'LITLAB_CACHE': {str(cache)!r}, 'COLUMNS': '200'}})\n"
        "sys.argv[0] = 'litlab'\n"
        "from litlab.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert main(['cv', '--help']) == 0\n"
        f"assert out.getvalue() == {built['cv']!r}, out.getvalue()"
    )
    assert _loaded_after(reader) == {"torch": False, "lightning": False}


@pytest.mark.slow
def test_cached_fit_help_equals_lightnings_own(tmp_path):
    """The LightningCLI parser's help, built once (seconds), then read in a light process."""
    cache = tmp_path / "cache"
    run = [sys.executable, "-m", "litlab.cli", "fit", "--help"]
    fresh = subprocess.run(run, capture_output=True, text=True, env=_env(cache), timeout=600)
    assert fresh.returncode == 0 and "--trainer.max_epochs" in fresh.stdout
    direct = subprocess.run(
        [sys.executable, "-c", _UNCACHED.format(command="fit")],
        capture_output=True, text=True, env=_env(cache), timeout=600,
    )  # fmt: skip
    assert direct.stdout == fresh.stdout
    code = (
        f"import os; os.environ.update({_env(cache)!r}); sys.argv[0] = 'cli.py'\n"
        "from litlab.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert main(['fit', '--help']) == 0\n"
        f"assert out.getvalue() == {fresh.stdout!r}"
    )
    assert _loaded_after(code) == {"torch": False, "lightning": False}
