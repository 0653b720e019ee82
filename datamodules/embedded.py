"""The embedded datasets: generated once under ``cache_root()/data`` in the real on-disk layouts.

No dataset can be downloaded at run time, so every DataModule falls back to a drawn stand-in
written by :mod:`litlab.datamodules.synthetic` in the real format (a FER2013 CSV, class folders,
image/mask slice folders and NIfTI volumes). Each one's name carries its generator version and
every argument, so new settings write a new copy. :func:`materialise` writes it into a temporary
file or folder and renames that into place, so a process never reads half a dataset, and two
processes generating the same one at once both end with one whole copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from litlab.datamodules.cache import atomic_directory, cache_root, write_atomically
from litlab.datamodules.synthetic import autism as synthetic_autism
from litlab.datamodules.synthetic import ckplus as synthetic_ckplus
from litlab.datamodules.synthetic import face_folders as synthetic_face_folders
from litlab.datamodules.synthetic import fer2013 as synthetic_fer2013
from litlab.datamodules.synthetic import liver as synthetic_liver

log = logging.getLogger(__name__)

#: Images per class in each split of the embedded autism faces.
AUTISM_COUNTS = {"train": 300, "valid": 20, "test": 40}


def materialise(name: str, what: str, write: Callable[[Path], object], folder: bool) -> Path:
    """The embedded dataset ``cache_root()/data/<name>``, written by ``write`` on first use.

    Args:
        name: File or folder name; it must change whenever the content would.
        what: What is generated, for the log line.
        write: Writes the whole dataset to the (temporary) path it is given.
        folder: Whether the dataset is a folder (else one file).

    Returns:
        The path of the finished dataset.
    """
    path = cache_root() / "data" / name
    if path.is_dir() if folder else path.is_file():
        return path
    log.info("generating the embedded %s at %s", what, path)
    if folder:
        with atomic_directory(path) as tmp:
            write(tmp)
    else:
        write_atomically(path, write)
    return path


def embedded_fer2013_csv(n_rows: int = 3500, seed: int = 0) -> Path:
    """The embedded FER2013-format CSV (``emotion,pixels,Usage``) of ``n_rows`` drawn faces."""
    return materialise(
        f"fer2013-synthetic-v{synthetic_fer2013.GENERATOR_VERSION}-n{n_rows}-s{seed}.csv",
        f"FER2013-format dataset ({n_rows} rows)",
        lambda path: synthetic_fer2013.write_fer2013_csv(path, n_rows, seed),
        folder=False,
    )


def embedded_ckplus_folder(n_subjects: int = 50, seed: int = 0) -> Path:
    """The embedded CK+48-layout folder (``<class>/S###_###_########.png``) of drawn faces."""
    return materialise(
        f"ckplus48-synthetic-v{synthetic_ckplus.GENERATOR_VERSION}-n{n_subjects}-s{seed}",
        f"CK+48-layout dataset ({n_subjects} subjects)",
        lambda path: synthetic_ckplus.write_ckplus_folder(path, n_subjects=n_subjects, seed=seed),
        folder=True,
    )


def embedded_face_folders(n_train: int = 700, n_val: int = 175, seed: int = 0) -> Path:
    """The embedded face-expression folders (``train|validation/<class>/*.png``)."""
    return materialise(
        f"face-expression-synthetic-v{synthetic_face_folders.GENERATOR_VERSION}"
        f"-n{n_train}-{n_val}-s{seed}",
        f"face-expression folders ({n_train} + {n_val} images)",
        lambda path: synthetic_face_folders.write_face_folders(path, n_train, n_val, seed),
        folder=True,
    )


def embedded_autism_folder(
    counts: dict[str, int] | None = None, seed: int = 0, background_bias: float = 0.0
) -> Path:
    """The embedded autism faces in the Kaggle layout (``train|valid|test/<class>/*.jpg``).

    Args:
        counts: Images per class in each split; ``None`` for :data:`AUTISM_COUNTS`.
        seed: Seed of the drawing.
        background_bias: See :func:`litlab.datamodules.synthetic.autism.draw_autism_faces`.
    """
    counts = dict(counts or AUTISM_COUNTS)
    tag = "-".join(f"{k}{counts[k]}" for k in synthetic_autism.KAGGLE_SPLITS if k in counts)
    return materialise(
        f"autism-faces-v{synthetic_autism.GENERATOR_VERSION}-{tag}-s{seed}-b{background_bias:g}",
        "autism-layout faces",
        lambda path: synthetic_autism.write_autism_folders(path, counts, seed, background_bias),
        folder=True,
    )


def embedded_liver_phantoms(
    n_patients: int = 12, n_slices: int = 16, size: int = 256, seed: int = 0
) -> Path:
    """The embedded liver CT phantoms: NIfTI volumes and PNG slice folders side by side."""
    return materialise(
        f"liver-phantoms-v{synthetic_liver.GENERATOR_VERSION}"
        f"-p{n_patients}-z{n_slices}-s{size}-seed{seed}",
        f"liver CT phantoms ({n_patients} patients)",
        lambda path: synthetic_liver.write_liver_phantoms(path, n_patients, n_slices, size, seed),
        folder=True,
    )
