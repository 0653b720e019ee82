"""An embedded stand-in for CK+48: drawn faces in the exact CK+48 folder layout.

Real CK+48 keeps the last three frames of each posed sequence, one sequence per subject and
expression, saved as ``<class>/S<subject>_<sequence>_<frame>.png`` (48x48 gray). Frames of one
sequence are near-duplicates, which is what makes a random image split leak. This generator
reproduces that structure:

* each subject poses a subset of the seven expressions, with CK+'s per-class rates (surprise and
  happy common, contempt rare), at least ``min_subjects_per_class`` subjects per class;
* one face is drawn per sequence with :func:`litlab.datamodules.synthetic.faces.draw_faces`, and its
  frames are that face with a tiny zoom/shift and fresh sensor noise (near-duplicates);
* names follow ``S###_###_########.png``.

``draw_faces`` draws FER2013's seven styles; CK+ has contempt instead of neutral. The mapping
(:data:`STYLE_OF_CLASS`) sends each CK+ class to the style of the same name and contempt to the
neutral style: contempt is the subtlest CK+ expression (a slight one-sided lip raise on an
otherwise neutral face), and the one-sided-lip style already belongs to disgust.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from litlab.datamodules.synthetic.faces import draw_faces

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1

# CK+ class -> draw_faces style (FER2013 order: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad,
# 5 surprise, 6 neutral). Key order is CK+48's sorted folder order.
STYLE_OF_CLASS: dict[str, int] = {
    "anger": 0,
    "contempt": 6,
    "disgust": 1,
    "fear": 2,
    "happy": 3,
    "sadness": 4,
    "surprise": 5,
}

# Fraction of CK+48's 118 subjects with a sequence of each class (45, 18, 59, 25, 69, 28, 83).
_POSE_RATE = np.array([45, 18, 59, 25, 69, 28, 83]) / 118


def _frames(base: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Near-duplicate frames of one face: the expression settling (slight zoom), a sub-pixel
    drift and new sensor noise per frame."""
    size = base.shape[0]
    out = []
    for k in range(n):
        m = cv2.getRotationMatrix2D((size / 2, size / 2), 0.0, 1.0 + 0.01 * k)
        m[:, 2] += rng.normal(0, 0.4, 2)
        frame = cv2.warpAffine(
            base.astype(np.float32), m, (size, size), borderMode=cv2.BORDER_REFLECT
        )
        frame = frame + rng.normal(0, 2.0, frame.shape)
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return out


def write_ckplus_folder(
    root: str | Path,
    n_subjects: int = 50,
    frames_per_sequence: int = 3,
    min_subjects_per_class: int = 5,
    seed: int = 0,
    size: int = 48,
) -> Path:
    """Write a CK+48-layout folder of drawn faces.

    Args:
        root: Output folder (created); it gets one sub-folder per CK+ class.
        n_subjects: Subjects (``S010`` upwards).
        frames_per_sequence: Near-duplicate frames per sequence (CK+48 keeps 3).
        min_subjects_per_class: Every class gets at least this many subjects, so subject folds
            can stratify.
        seed: Same seed, same pixels.
        size: Image side in pixels.

    Returns:
        ``root``.
    """
    classes = list(STYLE_OF_CLASS)
    if n_subjects < min_subjects_per_class or min_subjects_per_class < 1:
        raise ValueError(
            f"need n_subjects >= min_subjects_per_class >= 1, got {n_subjects} and {min_subjects_per_class}"
        )
    if frames_per_sequence < 1:
        raise ValueError(f"frames_per_sequence must be >= 1, got {frames_per_sequence}")
    rng = np.random.default_rng(seed)
    poses = rng.random((n_subjects, len(classes))) < _POSE_RATE
    for c in range(len(classes)):
        short = min_subjects_per_class - poses[:, c].sum()
        if short > 0:
            poses[rng.choice(np.flatnonzero(~poses[:, c]), short, replace=False), c] = True
    empty = ~poses.any(axis=1)
    poses[empty, rng.integers(0, len(classes), empty.sum())] = True

    subjects, labels = np.nonzero(poses)  # one sequence per (subject, class)
    styles = np.array([STYLE_OF_CLASS[classes[c]] for c in labels])
    bases = draw_faces(styles, seed=seed, size=size)

    root = Path(root)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
    sequence_no = np.zeros(n_subjects, int)
    for subject, label, base in zip(subjects, labels, bases, strict=True):
        sequence_no[subject] += 1
        first = int(rng.integers(10, 30))
        for k, frame in enumerate(_frames(base, frames_per_sequence, rng)):
            name = f"S{subject + 10:03d}_{sequence_no[subject]:03d}_{first + k:08d}.png"
            if not cv2.imwrite(str(root / classes[label] / name), frame):
                raise OSError(f"could not write {root / classes[label] / name}")
    log.info(
        "wrote %d drawn CK+48-layout images of %d subjects to %s",
        len(labels) * frames_per_sequence,
        n_subjects,
        root,
    )
    return root
