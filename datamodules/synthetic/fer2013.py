"""An embedded dataset in the exact Kaggle FER2013 CSV format (``emotion,pixels,Usage``)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
from litlab.datamodules.synthetic.faces import FER, draw_faces

log = logging.getLogger(__name__)

# FER2013's own class frequencies (angry, disgust, fear, happy, sad, surprise, neutral), so the
# embedded set is imbalanced the same way and macro metrics mean what they mean on the real one.
FER2013_CLASS_FREQUENCIES = np.array([0.138, 0.015, 0.143, 0.251, 0.169, 0.112, 0.172])
USAGES = ("Training", "PublicTest", "PrivateTest")
GENERATOR_VERSION = 2  # 2: the FER rendering (clearer cues than CK+'s DEFAULT)


def write_fer2013_csv(
    path: str | Path,
    n_rows: int,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    chunk: int = 4096,
) -> Path:
    """Write ``n_rows`` drawn faces as a FER2013-format CSV.

    Usage is Training / PublicTest / PrivateTest in the given fractions (the real file has
    28,709 / 3,589 / 3,589 rows, about 80/10/10); labels follow FER2013's class frequencies.

    Args:
        path: Output CSV path; parent folders are created.
        n_rows: Number of data rows.
        seed: Seed for labels and drawing.
        fractions: Share of Training, PublicTest, PrivateTest rows.
        chunk: Faces drawn per batch (bounds memory for full-size files).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = rng.choice(
        7, size=n_rows, p=FER2013_CLASS_FREQUENCIES / FER2013_CLASS_FREQUENCIES.sum()
    )
    counts = np.round(np.cumsum(fractions)[:-1] * n_rows).astype(int)
    usage = np.array(USAGES)[np.searchsorted(counts, np.arange(n_rows), side="right")]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        for start in range(0, n_rows, chunk):
            stop = min(n_rows, start + chunk)
            faces = draw_faces(labels[start:stop], seed=seed * 1_000_003 + start, rendering=FER)
            for label, face, use in zip(labels[start:stop], faces, usage[start:stop], strict=True):
                writer.writerow([int(label), " ".join(map(str, face.ravel().tolist())), use])
    log.info("wrote %d embedded FER2013-format rows to %s", n_rows, path)
    return path
