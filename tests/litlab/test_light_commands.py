"""The light commands load neither torch nor Lightning: they answer without the training stack."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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
