"""The pieces every bad-input case uses: the case record, the options that keep a run cheap, a
tiny FER2013 fit, and writers of (broken) files. The cases themselves are in the
``bad_input_*.py`` modules beside this one; ``test_bad_input.py`` runs them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

#: Options that make every training case cheap: the error comes before any training.
FAST = [
    "--data.num_workers=0",
    "--wandb_mode=disabled",
    "--trainer.accelerator=cpu",
    "--trainer.fast_dev_run=1",
]


@dataclass
class Case:
    """One broken input: what to build, what the message must name, and the fix it hints at.

    ``build(tmp)`` writes files under ``tmp`` and returns the command line after ``litlab``;
    ``{tmp}`` in ``names`` stands for that folder.
    """

    build: Callable[[Path], list[str]]
    names: tuple[str, ...]
    hint: str
    env: dict[str, str] = field(default_factory=dict)
    root_cannot_run: bool = False  # root ignores permission bits


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def png(path: Path, side: int = 48, seed: int = 0) -> Path:
    """A random gray PNG (whatever the file name's suffix)."""
    image = np.random.default_rng(seed).integers(0, 256, (side, side), np.uint8)
    return write(path, cv2.imencode(".png", image)[1].tobytes())


def fer_fit(tmp: Path, *extra: str) -> list[str]:
    """``fit`` of the FER2013 preset on its small embedded data set, with ``extra`` options."""
    return [
        "fit", "--config", "fer2013-resnet50", "--model.backbone=resnet18",
        "--model.stem=standard", "--data.synthetic_rows=70", *FAST, *extra,
    ]  # fmt: skip
