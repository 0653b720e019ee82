"""Checks on a CT volume before it is sliced: a usable affine, a sane resampling, integer labels.

Each refuses what the liver decoding cannot use with a :class:`~litlab.errors.BadInputError`
naming the file and the fix, before the values could reach an arithmetic error deep inside
NumPy or OpenCV: a header whose voxel-to-world affine is not finite or singular, a pixel spacing
that would resample slices to absurd sizes, labels that are not integers 0-2.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from litlab.errors import BadInputError

# Largest slice side a resampling to data.spacing may make before cropping (a bad header's sign).
_MAX_RESAMPLED = 8192


def check_affine(img: nib.Nifti1Image, path: Path) -> None:
    """Refuse a volume whose header gives no usable voxel-to-world affine (orientation, spacing)."""
    affine = np.asarray(img.affine, dtype=float)
    finite = bool(np.isfinite(affine).all())
    if finite and np.linalg.matrix_rank(affine[:3, :3]) == 3:
        ornt = nib.io_orientation(affine)
        if sorted(ornt[:, 0].tolist()) == [0, 1, 2]:
            return
    fault = "is singular (an axis without direction or size)" if finite else "is not finite"
    raise BadInputError(
        f"volume {path}: the voxel-to-world affine of its header (sform, qform or pixdim) {fault},"
        " so its slice orientation and spacing cannot be read; fix the header or re-export it"
    )


def check_resampling(
    path: Path, shape: tuple[int, ...], axial: int, mm: float, spacing: float
) -> None:
    """Refuse a resampling to ``spacing`` that would make absurdly large slices (a bad header)."""
    side = round(max(n for a, n in enumerate(shape) if a != axial) * mm / spacing)
    if side > _MAX_RESAMPLED:
        raise BadInputError(
            f"volume {path} has {mm:.4g} mm pixels: resampling to data.spacing={spacing} mm would "
            f"make slices of about {side} pixels a side; check the header's pixel spacing (pixdim "
            "or affine), or drop data.spacing"
        )


def check_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    """A segmentation slab's labels as uint8, refused unless they are integers 0, 1 or 2."""
    if labels.dtype.kind not in "biuf":
        raise BadInputError(
            f"segmentation {path} holds {labels.dtype} values; expected integer labels 0 "
            "background, 1 liver, 2 tumour (LiTS) — save it with an integer label type"
        )
    if labels.dtype.kind == "f" and not (
        np.isfinite(labels).all() and np.array_equal(labels, np.rint(labels))
    ):
        raise BadInputError(
            f"segmentation {path} holds non-integer labels; expected 0 background, 1 liver, "
            "2 tumour (LiTS) — save it with an integer label type"
        )
    low, high = labels.min(), labels.max()
    if low < 0 or high > 2:
        bad = sorted({int(v) for v in np.unique(labels) if v < 0 or v > 2})
        raise BadInputError(
            f"segmentation {path} holds label(s) {bad} outside the classes; expected "
            "0 background, 1 liver, 2 tumour (LiTS) — remap other labels before loading"
        )
    return labels.astype(np.uint8)
