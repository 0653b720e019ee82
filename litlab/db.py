"""``litlab db``: a local PostgreSQL server for sweeps shared by several processes on one machine.

Examples::

    litlab db start                      # prints the URL to pass to `litlab sweep --storage`
    litlab db start --dir /scratch/optuna-db
    litlab db url                        # the URL of the server started there
    litlab db stop

The server (from the ``pgserver`` package: PostgreSQL binaries in a wheel, no system install)
keeps running after the command returns, listens on a Unix socket in its folder only, and trusts
local connections. For several machines, run a real PostgreSQL on a host all nodes reach (README:
"Sweeps across machines").
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_DIR = Path("runs") / "postgres"


def _server(data_dir: Path):
    try:
        import pgserver
    except ImportError as err:  # pragma: no cover - a dependency of litlab
        raise RuntimeError("litlab db needs the pgserver package: pip install pgserver") from err
    data_dir.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(data_dir.resolve(), cleanup_mode=None)  # keeps running


def start(data_dir: Path) -> str:
    """Start (or find running) the server in ``data_dir``; returns its URL."""
    return _server(data_dir).get_uri()


def stop(data_dir: Path) -> bool:
    """Stop the server in ``data_dir``; False when none was running there."""
    if not (data_dir / "postmaster.pid").is_file():
        return False
    import pgserver

    server = _server(data_dir)
    pgserver.pg_ctl(["-w", "stop", "-m", "fast"], pgdata=server.pgdata, user=server.system_user)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="litlab db", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=("start", "stop", "url"))
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"data folder (default {DEFAULT_DIR})"
    )
    args = parser.parse_args(argv)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    if args.action == "stop":
        stopped = stop(args.dir)
        print(f"stopped the server in {args.dir}" if stopped else f"no server runs in {args.dir}")
        return 0
    if args.action == "url" and not (args.dir / "PG_VERSION").is_file():
        print(
            f"litlab db: error: no database in {args.dir}; run `litlab db start`", file=sys.stderr
        )
        return 2
    url = start(args.dir)
    if args.action == "start":
        print(f"PostgreSQL is running (data in {args.dir}). Sweep with:\n")
        print(f"  litlab sweep --config <preset> --storage '{url}' ...\n")
        print(
            f"Watch it with: litlab dashboard '{url}'   Stop it with: litlab db stop --dir {args.dir}"
        )
    else:
        print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
