"""Broken liver data: PNG slices and NIfTI volumes."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np

from tests.litlab.bad_input_kit import FAST, Case, png


def _liver_slices(tmp: Path) -> Path:
    root = tmp / "liver"
    for patient in range(3):
        mask = np.zeros((32, 32), np.uint8)
        mask[8:20, 10:24] = 255
        png(root / "images" / f"p{patient}_0.png", side=32, seed=patient)
        (root / "masks").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "masks" / f"p{patient}_0.png"), mask)
    return root


def _liver(tmp: Path, root: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", "liver-deeplabv3plus", "--model.encoder_name=resnet18",
        f"--data.root={root}", "--data.image_size=32", f"--output_dir={tmp / 'runs'}",
        *FAST, *extra,
    ]  # fmt: skip


def _liver_with(change: Callable[[Path], object]):
    def build(tmp: Path) -> list[str]:
        root = _liver_slices(tmp)
        change(root)
        return _liver(tmp, root)

    return build


def _nifti_pair(root: Path, key: str = "1", shape=(32, 32, 4), seg_shape=None, gz=False):
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if gz else ".nii"
    volume = np.random.default_rng(0).integers(-200, 400, shape).astype(np.int16)
    labels = np.zeros(seg_shape or shape, np.uint8)
    labels[8:20, 8:20, ...] = 1
    for name, array in (("volume", volume), ("segmentation", labels)):
        nib.save(
            nib.Nifti1Image(array, np.diag([0.8, 0.8, 2.5, 1.0])), root / f"{name}-{key}{suffix}"
        )
    return root / f"volume-{key}{suffix}"


def _liver_nifti(build_volumes: Callable[[Path], object]):
    def build(tmp: Path) -> list[str]:
        root = tmp / "liver"
        build_volumes(root)
        return _liver(tmp, root)

    return build


def _nan_affine(root: Path) -> None:
    volume = _nifti_pair(root)
    data = bytearray(volume.read_bytes())
    data[280:284] = struct.pack("<f", float("nan"))  # srow_x[0]: the sform the affine comes from
    volume.write_bytes(bytes(data))


def _truncated_nifti(root: Path) -> None:
    volume = _nifti_pair(root, gz=True)
    data = volume.read_bytes()
    volume.write_bytes(data[: len(data) // 2])


def _four_d(root: Path) -> None:
    _nifti_pair(root)
    data = np.zeros((32, 32, 4, 2), np.int16)
    nib.save(nib.Nifti1Image(data, np.eye(4)), root / "volume-1.nii")


CASES: dict[str, Case] = {
    # liver ------------------------------------------------------------------------------------
    "liver-mask-size-differs": Case(
        _liver_with(
            lambda root: cv2.imwrite(str(root / "masks" / "p1_0.png"), np.zeros((16, 16), np.uint8))
        ),
        ("{tmp}/liver/images/p1_0.png", "{tmp}/liver/masks/p1_0.png", "16x16"),
        "the mask must have the image's size",
    ),  # fmt: skip
    "liver-mask-values": Case(
        _liver_with(
            lambda root: cv2.imwrite(
                str(root / "masks" / "p1_0.png"), np.full((32, 32), 7, np.uint8)
            )
        ),
        ("{tmp}/liver/masks/p1_0.png", "value(s) 7"),
        "255 (or 1) = liver",
    ),  # fmt: skip
    "liver-image-without-mask": Case(
        _liver_with(lambda root: png(root / "images" / "p9_0.png", side=32)),
        ("{tmp}/liver/images/p9_0.png",),
        "mask",
    ),
    "liver-damaged-png-slice": Case(
        _liver_with(lambda root: (root / "images" / "p2_0.png").write_bytes(b"\x89PNG broken")),
        ("{tmp}/liver/images/p2_0.png",),
        "re-export it as PNG",
    ),
    "liver-empty-root": Case(
        lambda tmp: _liver(tmp, (tmp / "empty").mkdir() or tmp / "empty"),
        ("{tmp}/empty", "no liver data"),
        "volume-*.nii",
    ),
    "liver-nifti-shape-mismatch": Case(
        _liver_nifti(lambda root: _nifti_pair(root, seg_shape=(32, 32, 5))),
        ("{tmp}/liver/volume-1.nii", "{tmp}/liver/segmentation-1.nii"),
        "on the volume's voxel grid",
    ),
    "liver-truncated-nifti": Case(
        _liver_nifti(_truncated_nifti),
        ("{tmp}/liver/volume-1.nii.gz",),
        "re-download or re-export",
    ),
    "liver-4d-volume": Case(
        _liver_nifti(_four_d), ("{tmp}/liver/volume-1.nii", "(32, 32, 4, 2)"), "split 4-D"
    ),
    "liver-nifti-affine-not-finite": Case(
        _liver_nifti(_nan_affine), ("{tmp}/liver/volume-1.nii", "affine"), "fix the header"
    ),
}
