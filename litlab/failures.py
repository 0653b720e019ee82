"""How ``litlab`` ends on an exception: bad input (exit 2) or an internal error (exit 1).

Bad input is a :class:`~litlab.errors.BadInputError`, or a ``ValueError`` / ``FileNotFoundError``
that litlab's own code raised (the argument checks that name the bad value), found anywhere in the
exception's chain of causes (jsonargparse wraps what a class's ``__init__`` raises). Its message is
printed as ``litlab: error: <message>``.

Anything else is a bug, not the user's doing: one line ``litlab: internal error: <type>:
<message> (...)`` and exit code 1. The full traceback is appended to the run folder's ``fit.log``
or, before a run folder exists, to ``<output_dir>/litlab-errors.log`` (the system's temporary
folder when that cannot be written). ``LITLAB_DEBUG=1`` lets the exception propagate instead.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from litlab.errors import BadInputError
from litlab.runs import LOG_FILE

EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
DEBUG_ENV = "LITLAB_DEBUG"
#: Attribute a failed run sets on its exception: the run folder it was writing to.
RUN_DIR_ATTR = "litlab_run_dir"
ERRORS_LOG = "litlab-errors.log"
_MAX_LINE = 400


def _raised_by_litlab(err: BaseException) -> bool:
    """Whether the innermost frame of ``err``'s traceback is litlab code (not a library's)."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    spec = tb.tb_frame.f_globals.get("__spec__")
    name = spec.name if spec is not None else str(tb.tb_frame.f_globals.get("__name__", ""))
    return name == "litlab" or name.startswith("litlab.")


def bad_input_in(err: BaseException) -> BaseException | None:
    """The exception in ``err``'s chain of causes that reports bad input, or ``None`` (a bug).

    Args:
        err: What escaped the command.

    Returns:
        ``err`` itself or one of its ``__cause__`` ancestors.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BadInputError):
            return current
        if isinstance(current, ValueError | FileNotFoundError) and _raised_by_litlab(current):
            return current
        current = current.__cause__
    return None


def root_cause(err: BaseException) -> BaseException:
    """The innermost explicit cause of ``err`` (past wrappers such as jsonargparse's)."""
    seen = {id(err)}
    while err.__cause__ is not None and id(err.__cause__) not in seen:
        err = err.__cause__
        seen.add(id(err))
    return err


def one_line(text: str) -> str:
    """The first non-empty line of ``text``, shortened to a readable length."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if len(first) > _MAX_LINE:
        first = first[: _MAX_LINE - 3] + "..."
    return first + (" ..." if len(lines) > 1 else "")


def output_dir_of(argv: Sequence[str]) -> Path:
    """The ``--output_dir`` a command line names (``runs`` by default)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--output_dir="):
            return Path(arg.split("=", 1)[1]).expanduser()
        if arg == "--output_dir" and i + 1 < len(argv):
            return Path(argv[i + 1]).expanduser()
    return Path("runs")


def _append(path: Path, text: str) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log_file:
            log_file.write(text)
        return True
    except OSError:
        return False


def save_traceback(err: BaseException, argv: Sequence[str]) -> Path | None:
    """Append ``err``'s full traceback to the run folder's log (or the errors log).

    Args:
        err: The exception; its ``litlab_run_dir`` attribute names the run folder, if any.
        argv: The command line after ``litlab`` (for the header and ``--output_dir``).

    Returns:
        The file written, or ``None`` when no candidate could be written.
    """
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    header = f"--- {stamp} litlab {' '.join(argv)} (pid {os.getpid()}): internal error\n"
    text = header + "".join(traceback.format_exception(err))
    run_dir = getattr(err, RUN_DIR_ATTR, None)
    candidates = [Path(run_dir) / LOG_FILE] if run_dir else []
    candidates += [output_dir_of(argv) / ERRORS_LOG, Path(tempfile.gettempdir()) / ERRORS_LOG]
    return next((path for path in candidates if _append(path, text)), None)


def report_failure(err: Exception, argv: Sequence[str]) -> int:
    """Print the one-line report of ``err`` on stderr and return the exit code.

    Bad input: ``litlab: error: <message>``, code 2. Anything else: ``litlab: internal error:
    <type>: <message> (...)``, code 1, with the traceback saved by :func:`save_traceback`.
    """
    bad = bad_input_in(err)
    if bad is not None:
        print(
            f"litlab: error: {bad}\n(set {DEBUG_ENV}=1 to see the traceback)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    saved = save_traceback(err, argv)
    where = f"; it is saved in {saved}" if saved is not None else ""
    cause = root_cause(err)
    print(
        f"litlab: internal error: {type(cause).__name__}: {one_line(str(cause))} "
        f"(set {DEBUG_ENV}=1 for the traceback{where})",
        file=sys.stderr,
    )
    return EXIT_INTERNAL
