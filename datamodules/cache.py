"""Where litlab's caches live, how an array's entry is keyed, and the one way they are written.

Every cache (decoded images, parsed CSVs, preprocessing, pseudo-masks, decoded CT slices, the
embedded datasets) is written beside its final path under a temporary name and moved into place
with ``os.replace``, an atomic rename on one file system. A reader therefore sees a whole cache
entry or none, even when several processes (DDP ranks, sweep workers) build the same entry at once;
the last finished copy of a file wins, and for folders the first finished copy is kept.
Entries computed from an image array are named by :func:`array_key`: its shape and bytes, the
cache format version and the options.

>>> write_atomically(cache_root() / "x" / "a.npy", lambda tmp: np.save(tmp, array))  # doctest: +SKIP
>>> with atomic_directory(cache_root() / "x" / "folder") as tmp:  # doctest: +SKIP
...     (tmp / "meta.json").write_text("{}")
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import numpy as np

from litlab.errors import BadInputError

log = logging.getLogger(__name__)

T = TypeVar("T")


def cache_root() -> Path:
    """Directory for generated datasets and parsed-data caches.

    ``$LITLAB_CACHE`` wins; otherwise ``$XDG_CACHE_HOME/litlab`` or ``~/.cache/litlab``.
    """
    env = os.environ.get("LITLAB_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "litlab"


def not_writable(path: str | Path, err: OSError) -> BadInputError:
    """The clear error for a cache (or other output) that cannot be written.

    Names the file, the system's reason (permission denied, read-only file system, no space left
    ...) and the fix: under the cache root, ``LITLAB_CACHE``; elsewhere, the folder itself.
    """
    path = Path(path)
    where = err.filename or path
    root = cache_root()
    try:
        in_cache = path.resolve().is_relative_to(root.resolve())
    except OSError:
        in_cache = False
    fix = (
        f"litlab keeps its caches in {root}: set LITLAB_CACHE to a writable folder with free space"
        if in_cache
        else f"make {path.parent} writable (and give its disk free space)"
    )
    return BadInputError(f"cannot write {where}: {err.strerror or err}; {fix}")


def array_key(array: np.ndarray, version: int, options: str) -> str:
    """A 24-hex-digit cache key of an array's shape and bytes, a cache format ``version`` and the
    ``options`` that decide what is cached from it."""
    digest = hashlib.sha256(f"v{version}|{array.shape}|{options}".encode())
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()[:24]


def read_cached(path: Path | None, read: Callable[[Path], T], what: str) -> T | None:
    """``read(path)`` of a cache entry, or ``None`` when there is none to reuse.

    There is none when caching is off (``path`` is ``None``), when the file is not there yet, and
    when ``read`` cannot take it (a cut-off or stale file: logged, and the caller rebuilds it).

    Args:
        path: The entry's file.
        read: Reads the whole entry (its result may itself be ``None``: not reusable).
        what: The cache's name in the warning, e.g. ``"image"``.
    """
    if path is None or not path.is_file():
        return None
    try:
        return read(path)
    except (OSError, ValueError, KeyError):
        log.warning("ignoring unreadable %s cache %s; rebuilding it", what, path)
        return None


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

    Raises:
        BadInputError: The file cannot be written (:func:`not_writable` says why and what to do).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise not_writable(path, err) from err
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
        BadInputError: The folder cannot be written, or the rename failed and ``path`` still
            does not exist (:func:`not_writable` says why and what to do).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    except OSError as err:
        raise not_writable(path, err) from err
    try:
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError:
            if not path.is_dir():
                raise
            log.debug("%s was written by another process first; keeping that copy", path)
    except OSError as err:
        raise not_writable(path, err) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
