"""``litlab dashboard STORAGE``: watch a study live in optuna-dashboard.

Examples::

    litlab dashboard runs/sweeps/liver-deeplabv3plus-tpe.journal
    litlab dashboard postgresql://user:pass@db-host/optuna --host 0.0.0.0 --port 8080

STORAGE is what ``litlab sweep --storage`` took: a journal file or a database URL. The server
listens on the loopback interface unless ``--host`` says otherwise; from another machine, reach it
through an SSH tunnel (``ssh -L 8080:localhost:8080 host``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def open_storage(spec: str):
    """The storage behind ``spec``: a database URL, or a journal file (checked, never written)."""
    import optuna

    from litlab.sweeps.storage import check_journal, is_url

    if is_url(spec):
        return optuna.storages.RDBStorage(spec)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(
            f"no study journal at {path}; give the file `litlab sweep` printed as its storage "
            "(runs/sweeps/<study>.journal by default) or a database URL"
        )
    check_journal(path)
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    return optuna.storages.JournalStorage(
        JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="litlab dashboard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("storage", help="journal file or database URL of the study")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    from optuna_dashboard import run_server

    from litlab.sweeps.storage import masked

    try:
        storage = open_storage(args.storage)
    except (FileNotFoundError, ValueError) as err:
        print(f"litlab dashboard: error: {err}", file=sys.stderr)
        return 2
    print(
        f"optuna-dashboard for {masked(args.storage)} at http://{args.host}:{args.port}/",
        flush=True,
    )
    run_server(storage, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
