"""The Kaggle layout of the autism faces: its split folders indexed, and where a dataset lives.

``<root>/{train,valid,test}/{autistic,non_autistic}/*.jpg``. :func:`index_autism_layout` indexes
it (every DataModule and workflow step that reads the faces goes through it);
:func:`autism_data_path` resolves the ``root`` option, or the embedded drawn faces when it is
unset.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from litlab.datamodules.embedded import embedded_autism_folder
from litlab.datamodules.folders import FolderIndex, index_class_folders
from litlab.datamodules.synthetic.autism import AUTISM_CLASSES, KAGGLE_SPLITS


@dataclass(frozen=True)
class AutismLayout:
    """The indexed Kaggle layout: one :class:`FolderIndex` per split folder.

    Attributes:
        root: The dataset folder.
        splits: ``{"train": ..., "valid": ..., "test": ...}``, classes in :data:`AUTISM_CLASSES` order.
    """

    root: Path
    splits: dict[str, FolderIndex]

    def split(self, name: str) -> FolderIndex:
        """The index of one split folder."""
        if name not in self.splits:
            raise ValueError(f"unknown split {name!r}; the layout has {list(self.splits)}")
        return self.splits[name]

    def pooled(self) -> tuple[list[Path], np.ndarray, np.ndarray]:
        """``(paths, labels (N,), split name of each (N,))`` over every split, in split order."""
        paths: list[Path] = []
        labels, names = [], []
        for name, index in self.splits.items():
            paths += index.paths
            labels.append(index.labels)
            names.append(np.full(len(index), name))
        return paths, np.concatenate(labels), np.concatenate(names)

    def fingerprint(self) -> str:
        """A hash of every file's path, size and modification time (cache keys use it)."""
        digest = hashlib.sha256(str(self.root.resolve()).encode())
        for path in self.pooled()[0]:
            st = os.stat(path)
            digest.update(f"|{path.relative_to(self.root)}|{st.st_mtime_ns}|{st.st_size}".encode())
        return digest.hexdigest()[:16]


def index_autism_layout(root: str | Path) -> AutismLayout:
    """Index ``root/{train,valid,test}/{autistic,non_autistic}/*``.

    Raises:
        FileNotFoundError: ``root`` or a split/class folder is missing (the message shows the
            expected layout).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"autism data folder {root} does not exist")
    missing = [s for s in KAGGLE_SPLITS if not (root / s).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{root} lacks split folder(s) {missing}; expected the Kaggle layout "
            "<root>/{train,valid,test}/{autistic,non_autistic}/*.jpg "
            "(for one pooled folder, put it under train/ and leave valid/test with one image "
            "per class, then use data.split=paper)"
        )
    return AutismLayout(
        root=root, splits={s: index_class_folders(root / s, AUTISM_CLASSES) for s in KAGGLE_SPLITS}
    )


def autism_data_path(options: Mapping[str, Any]) -> Path:
    """The Kaggle-layout folder a DataModule's options name: ``root``, or the embedded faces
    drawn with the ``synthetic_*`` options (generated on first use)."""
    if options["root"]:
        return Path(options["root"]).expanduser()
    return embedded_autism_folder(
        options["synthetic_counts"], options["synthetic_seed"], options["synthetic_background_bias"]
    )
