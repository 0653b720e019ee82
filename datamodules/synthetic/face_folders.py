"""The embedded face-expression dataset: drawn faces written as PNGs in the Kaggle folder layout.

``<root>/train/<class>/<n>.png`` and ``<root>/validation/<class>/<n>.png`` for the seven classes of
the Kaggle "face-expression-recognition-dataset" (angry, disgust, fear, happy, neutral, sad,
surprise), 48x48 gray, with per-class counts proportional to that dataset's (Table 1 of the
triplet paper: disgust is rare, happy is common). The faces use the :data:`~faces.CLEAR`
rendering: the triplet network sees only a few hundred images in its CPU budget, and with the
FER2013 stand-in's one-to-two-pixel cues under clutter it stayed at the majority-class rate.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from litlab.datamodules.synthetic.faces import CLEAR, draw_faces

log = logging.getLogger(__name__)

KAGGLE_CLASSES: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "neutral",
    "sad",
    "surprise",
)
# draw_faces speaks FER2013 indices: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral
_FER_INDEX = {
    "angry": 0,
    "disgust": 1,
    "fear": 2,
    "happy": 3,
    "sad": 4,
    "surprise": 5,
    "neutral": 6,
}
# Table 1 of the triplet paper (training / validation images per class)
PAPER_TRAIN_COUNTS = {"angry": 3993, "disgust": 436, "fear": 4103, "happy": 7164,
                      "neutral": 4982, "sad": 4983, "surprise": 3205}  # fmt: skip
PAPER_VAL_COUNTS = {"angry": 960, "disgust": 111, "fear": 1018, "happy": 1825,
                    "neutral": 1216, "sad": 1139, "surprise": 797}  # fmt: skip
GENERATOR_VERSION = 3  # 2: CLEAR rendering (larger cues, no clutter); 3: CLEAR's cues 2.2x


def proportional_counts(total: int, reference: dict[str, int], minimum: int) -> dict[str, int]:
    """Split ``total`` over the classes of ``reference`` in its proportions, at least ``minimum`` each."""
    ref_total = sum(reference.values())
    return {c: max(minimum, round(total * n / ref_total)) for c, n in reference.items()}


def write_face_folders(
    root: str | Path, n_train: int = 700, n_val: int = 175, seed: int = 0, size: int = 48
) -> Path:
    """Draw faces and write them as PNGs in the Kaggle layout under ``root``.

    Args:
        root: Output folder (created; must not hold the layout already).
        n_train: About this many training images in all (per-class minimum 8).
        n_val: About this many validation images in all (per-class minimum 4).
        seed: Seed; the same arguments give the same pixels.
        size: Image side in pixels.

    Returns:
        ``root``.
    """
    root = Path(root)
    splits = {
        "train": proportional_counts(n_train, PAPER_TRAIN_COUNTS, 8),
        "validation": proportional_counts(n_val, PAPER_VAL_COUNTS, 4),
    }
    for s, (split, counts) in enumerate(splits.items()):
        for c, name in enumerate(KAGGLE_CLASSES):
            labels = np.full(counts[name], _FER_INDEX[name])
            # one seed per (split, class) so train and validation never draw the same face
            images = draw_faces(labels, seed=seed * 1000 + s * 100 + c, size=size, rendering=CLEAR)
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(images):
                if not cv2.imwrite(str(folder / f"{i:05d}.png"), image):
                    raise OSError(f"could not write {folder / f'{i:05d}.png'}")
    return root
