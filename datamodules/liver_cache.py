"""The decoded-slice cache of the liver data: one folder of arrays per file list and options.

Decoded slices are cached as uint8 arrays under ``cache_root()/liver/<key>/``; the key hashes the
file list (path, size, mtime) and every decoding option, so a changed file or option re-decodes.
The folder is written whole to a temporary name and renamed into place, so processes that decode
at the same time (DDP ranks, sweep workers) never read a half-written cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from litlab.datamodules import liver_decode
from litlab.datamodules.cache import atomic_directory, cache_root
from litlab.datamodules.liver_decode import LiverSlices
from litlab.datamodules.liver_sources import LiverSource

log = logging.getLogger(__name__)

#: Bump when decoding changes, so stale caches are not reused.
CACHE_VERSION = 2  # 2: every slice kept, spacing and foreground recorded


def cache_key(sources: Iterable[LiverSource], options: dict) -> str:
    """Hash of the file list (path, size, mtime) and decoding options."""
    files = []
    for src in sources:
        for path in (src.image, src.mask):
            stat = path.stat()
            files.append([str(path.resolve()), src.patient, stat.st_size, stat.st_mtime_ns])
    blob = json.dumps({"version": CACHE_VERSION, "options": options, "files": files})
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_or_decode(
    sources: Sequence[LiverSource],
    image_size: int,
    hu_window: Sequence[float],
    spacing: float | None = None,
) -> LiverSlices:
    """Decoded slices from the cache, decoding (and caching) them on a miss.

    The arguments are those of :func:`litlab.datamodules.liver_decode.decode_sources`.
    """
    options = {
        "image_size": int(image_size),
        "hu_window": [float(v) for v in hu_window],
        "spacing": None if spacing is None else float(spacing),
    }
    folder = cache_root() / "liver" / cache_key(sources, options)
    if (folder / "meta.json").is_file():
        try:
            return _read_cache(folder)
        except (OSError, ValueError, KeyError) as err:
            log.warning("ignoring unreadable liver cache %s (%s); decoding again", folder, err)
    slices = liver_decode.decode_sources(sources, image_size, hu_window, spacing)
    _write_cache(folder, slices, options)
    return slices


def _read_cache(folder: Path) -> LiverSlices:
    meta = json.loads((folder / "meta.json").read_text())
    slices = LiverSlices(
        images=np.load(folder / "images.npy", mmap_mode="r"),
        masks=np.load(folder / "masks.npy", mmap_mode="r"),
        patients=np.asarray(meta["patients"], dtype=str),
        names=np.asarray(meta["names"], dtype=str),
        spacing=np.load(folder / "spacing.npy"),
        foreground=np.load(folder / "foreground.npy"),
    )
    if not (
        len(slices.images)
        == len(slices.masks)
        == len(slices.patients)
        == len(slices.spacing)
        == len(slices.foreground)
    ):
        raise ValueError("array lengths differ")
    log.info("loaded %d cached liver slices from %s", len(slices.images), folder)
    return slices


def _write_cache(folder: Path, slices: LiverSlices, options: dict) -> None:
    meta = {
        "options": options,
        "patients": slices.patients.tolist(),
        "names": slices.names.tolist(),
    }
    with atomic_directory(folder) as tmp:
        np.save(tmp / "images.npy", slices.images)
        np.save(tmp / "masks.npy", slices.masks)
        np.save(tmp / "spacing.npy", slices.spacing)
        np.save(tmp / "foreground.npy", slices.foreground)
        (tmp / "meta.json").write_text(json.dumps(meta))
