"""What ``litlab predict --predict_from PATH`` reads: the inputs, where each came from, how to name it.

A DataModule turns PATH into a :class:`PredictItems` with the preprocessing its evaluation data
gets (:meth:`litlab.datamodules.base.LitlabDataModule.predict_items`); the prediction writer
reads the sources, names and geometry kept here. The readers below are shared by every
DataModule:

* :func:`find_files` — a file, or every matching file under a folder at any depth;
* :func:`read_image_files` — images decoded at their own size, with a path-derived output name;
* :func:`read_csv_images` — a FER2013-format CSV (``pixels`` required, ``emotion``/``Usage``
  optional).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from litlab.datamodules.fer2013_csv import read_pixels_csv
from litlab.datamodules.folders import IMAGE_EXTENSIONS, decode_image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

#: Accepted ``--predict_from`` inputs, for error messages.
INPUT_KINDS = "a folder of images (any depth), an image file or a FER2013-format CSV"


@dataclass
class DecodedInputs:
    """Decoded uint8 images at their own size, and where each came from.

    Attributes:
        images: ``N`` arrays, ``(H, W)`` gray or ``(H, W, 3)`` RGB.
        sources: Where each came from: a file path, or ``<file.csv>:<line>``.
        names: Output name of each (a relative path without suffix), unique.
        labels: ``(N,)`` int64 true class where the input gives one, else ``-1``.
    """

    images: list[np.ndarray]
    sources: list[str]
    names: list[str]
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.images):
            self.labels = np.full(len(self.images), -1, np.int64)


class PredictItems(Dataset):
    """Inputs to predict, each with its source, its output name and the geometry to write back to.

    Args:
        inputs: Item ``i``'s model input is ``inputs[i][0]`` (any dataset of ``(input, ...)``).
        sources: Where each item came from (a path, ``<file.csv>:<line>``, ``<volume>:<slice>``).
        names: Output name of each item: a relative path without suffix.
        labels: ``(N,)`` true class where known, else ``-1``; ``None`` when none is.
        sizes: ``(N, 2)`` rows and columns of each input before resizing (masks are written at
            this size), or ``None`` to write them at the model's size.
        volumes: Grids of the volumes whose slices are items (their masks are written as one
            volume each), e.g. :class:`litlab.datamodules.liver_volumes.VolumeGrid`.
        volume_of: ``(N,)`` index into ``volumes`` of each item, ``-1`` for a 2-D image.

    Shape:
        item: ``(input (C, H, W) float, index int)``.
    """

    def __init__(
        self,
        inputs: Dataset,
        sources: Sequence[str],
        names: Sequence[str],
        labels: np.ndarray | None = None,
        sizes: np.ndarray | None = None,
        volumes: Sequence[Any] = (),
        volume_of: np.ndarray | None = None,
    ) -> None:
        n = len(inputs)  # type: ignore[arg-type]
        if len(sources) != n or len(names) != n:
            raise ValueError(f"{n} inputs but {len(sources)} sources and {len(names)} names")
        self.inputs = inputs
        self.sources = list(sources)
        self.names = list(names)
        self.labels = None if labels is None or not (labels >= 0).any() else labels
        self.sizes = sizes
        self.volumes = list(volumes)
        self.volume_of = np.full(n, -1, np.int64) if volume_of is None else volume_of

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.inputs[index][0], index

    def volume_items(self, volume: int) -> np.ndarray:
        """The item indices of one volume's slices, in slice order."""
        return np.flatnonzero(self.volume_of == volume)


def find_files(path: Path, suffixes: Sequence[str], what: str) -> list[Path]:
    """``path`` itself, or every file under it (any depth) whose suffix is in ``suffixes``.

    Hidden files and folders (a name starting with ``.``) are skipped; other files are ignored
    and counted in the log.

    Raises:
        FileNotFoundError: ``path`` does not exist, or holds no such file.
        ValueError: ``path`` is a file of another kind.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--predict_from {path} does not exist; pass {what}")
    if path.is_file():
        if not _matches(path, suffixes):
            raise ValueError(
                f"--predict_from {path} is not one of {', '.join(suffixes)}; pass {what}"
            )
        return [path]
    found, ignored = [], 0
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in file.relative_to(path).parts):
            continue
        if _matches(file, suffixes):
            found.append(file)
        else:
            ignored += 1
    if ignored:
        log.info("%s: ignored %d file(s) that are not %s", path, ignored, ", ".join(suffixes))
    if not found:
        raise FileNotFoundError(
            f"--predict_from {path} holds no {', '.join(suffixes)} file at any depth; pass {what}"
        )
    return found


def _matches(path: Path, suffixes: Sequence[str]) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in suffixes)


def output_name(file: Path, root: Path) -> str:
    """``file`` relative to the ``--predict_from`` folder (or its own name), without suffixes."""
    rel = file.relative_to(root) if root.is_dir() else Path(file.name)
    name = rel.name
    for suffix in (".nii.gz", *IMAGE_EXTENSIONS, ".nii"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return (rel.parent / name).as_posix()


def read_image_files(root: Path, files: Sequence[Path], color: str) -> DecodedInputs:
    """Decode image files at their own size (clear errors name an unreadable file)."""
    images = [
        decode_image(file, color)
        for file in tqdm(files, desc="reading images", unit="img", disable=len(files) < 64 or None)
    ]
    names = [output_name(file, root) for file in files]
    return DecodedInputs(images, [str(f) for f in files], names)


def read_csv_images(path: Path, color: str, skip_bad_rows: bool | None) -> DecodedInputs:
    """The 48x48 faces of a FER2013-format CSV, named by line; gray, or RGB with equal channels."""
    rows = read_pixels_csv(path, skip_bad_rows)
    images = [cv2.cvtColor(im, cv2.COLOR_GRAY2RGB) if color == "rgb" else im for im in rows.images]
    sources = [f"{path}:{line}" for line in rows.lines.tolist()]
    names = [f"{path.stem}/line{line:06d}" for line in rows.lines.tolist()]
    return DecodedInputs(images, sources, names, rows.labels)


def read_images_or_csv(path: Path, color: str, skip_bad_rows: bool | None = None) -> DecodedInputs:
    """A FER2013-format CSV, an image file, or a folder of images at any depth."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix.lower() == ".csv":
        return read_csv_images(path, color, skip_bad_rows)
    files = find_files(path, IMAGE_EXTENSIONS, INPUT_KINDS)
    return read_image_files(path, files, color)
