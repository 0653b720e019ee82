"""Where litlab's caches live, and the one way they are written: to a temporary name, then renamed.

Every cache (decoded images, parsed CSVs, preprocessing, pseudo-masks, decoded CT slices, the
embedded datasets) is written beside its final path under a temporary name and moved into place
with ``os.replace``, an atomic rename on one file system. A reader therefore sees a whole cache
entry or none, even when several processes (DDP ranks, sweep workers) build the same entry at once;
the last finished copy of a file wins, and for folders the first finished copy is kept.

>>> write_atomically(cache_root() / "x" / "a.npy", lambda tmp: np.save(tmp, array))  # doctest: +SKIP
>>> with atomic_directory(cache_root() / "x" / "folder") as tmp:  # doctest: +SKIP
...     (tmp / "meta.json").write_text("{}")
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """Directory for generated datasets and parsed-data caches.

    ``$LITLAB_CACHE`` wins; otherwise ``$XDG_CACHE_HOME/litlab`` or ``~/.cache/litlab``.
    """
    env = os.environ.get("LITLAB_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "litlab"


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Write one file by calling ``write(tmp)`` on a temporary path, then renaming it to ``path``.

    The temporary file sits in the same folder and keeps ``path``'s suffix, so writers that add
    a suffix of their own (``np.save`` adds ``.npy``, ``np.savez`` adds ``.npz``) leave it as is.
    The parent folders are created; on any error the temporary file is removed.

    Args:
        path: The final file.
        write: Writes the whole file to the path it is given.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` that becomes ``path`` when the ``with`` block succeeds.

    If another process finished the same folder first, its copy is kept and this one discarded
    (both hold the same data: callers key folder names by everything that decides the content).
    On an error inside the block nothing is renamed and the temporary folder is removed.

    Raises:
        OSError: The rename failed and ``path`` still does not exist.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError:
            if not path.is_dir():
                raise
            log.debug("%s was written by another process first; keeping that copy", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
