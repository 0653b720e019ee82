"""How litlab tells bad input from a bug, and where an internal error's traceback goes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from litlab.datamodules.splits import split_by_fractions

from litlab.errors import BadInputError
from litlab.failures import (
    RUN_DIR_ATTR,
    bad_input_in,
    one_line,
    output_dir_of,
    report_failure,
    save_traceback,
)


def _raised(fn) -> Exception:
    with pytest.raises(Exception) as info:
        fn()
    return info.value


def test_litlab_argument_checks_are_bad_input_and_library_errors_are_not():
    ours = _raised(lambda: split_by_fractions(10, [0.5, 0.6], seed=0))  # a litlab ValueError
    assert isinstance(ours, ValueError) and bad_input_in(ours) is ours
    numpy_error = _raised(lambda: np.zeros(0).min())  # raised inside NumPy
    assert isinstance(numpy_error, ValueError) and bad_input_in(numpy_error) is None
    assert bad_input_in(KeyError("x")) is None
    typed = BadInputError("file x: fix it")
    assert bad_input_in(typed) is typed  # the type counts wherever it was raised


def test_a_wrapper_that_carries_bad_input_as_its_cause_is_bad_input():
    cause = BadInputError("split must be 'usage' or 'random', got 'bogus'")
    try:
        try:
            raise cause
        except BadInputError as err:
            raise ValueError("Does not validate against any of the Union subtypes") from err
    except ValueError as wrapper:
        assert bad_input_in(wrapper) is cause


def test_one_line_and_output_dir():
    assert one_line("first\nsecond") == "first ..."
    assert len(one_line("x" * 1000)) <= 400
    assert output_dir_of(["fit", "--output_dir=/a/b"]) == Path("/a/b")
    assert output_dir_of(["fit", "--output_dir", "c"]) == Path("c")
    assert output_dir_of(["fit"]) == Path("runs")


def test_traceback_goes_to_the_run_log_then_the_output_dir_then_the_temp_dir(tmp_path, monkeypatch):
    def failure() -> Exception:
        try:
            raise KeyError("bug")
        except KeyError as err:
            return err

    run = tmp_path / "run"
    err = failure()
    setattr(err, RUN_DIR_ATTR, str(run))
    assert save_traceback(err, ["fit"]) == run / "fit.log"
    assert "KeyError: 'bug'" in (run / "fit.log").read_text()

    assert save_traceback(failure(), ["fit", f"--output_dir={tmp_path / 'o'}"]) == (
        tmp_path / "o" / "litlab-errors.log"
    )
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "sys-tmp"))
    (tmp_path / "sys-tmp").mkdir()
    saved = save_traceback(failure(), ["fit", f"--output_dir={blocker}/runs"])
    assert saved == tmp_path / "sys-tmp" / "litlab-errors.log"


def test_report_failure_prints_one_line_and_returns_the_code(tmp_path, capsys):
    assert report_failure(BadInputError("file x is bad; fix it"), ["fit"]) == 2
    assert capsys.readouterr().err.startswith("litlab: error: file x is bad; fix it\n")
    code = report_failure(KeyError("bug"), ["fit", f"--output_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("litlab: internal error: KeyError: 'bug' (set LITLAB_DEBUG=1")
