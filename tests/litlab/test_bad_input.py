"""Bad input never ends in a traceback: a corpus of broken inputs run through ``litlab``.

Each case builds its broken input in ``tmp_path`` and runs the command line in process through
:func:`litlab.cli.main`. It must exit with code 2, print no traceback, name the offending file,
line or value, and hint at the fix. New DataModules add their rows here. The last net (an
unexpected exception: one line, exit 1, the traceback in the run folder's log) is tested below.
"""

from __future__ import annotations

import os
import pickle
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import lightning.pytorch  # noqa: F401 - its log handler binds the session's stderr, not a test's
import nibabel as nib
import numpy as np
import pytest
import torch

from litlab.cli import main

#: Options that make every training case cheap: the error comes before any training.
_FAST = [
    "--data.num_workers=0",
    "--wandb_mode=disabled",
    "--trainer.accelerator=cpu",
    "--trainer.fast_dev_run=1",
]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


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


# -- builders -----------------------------------------------------------------------------------
def _fer_row(label: int = 0, usage: str = "Training", n: int = 2304, seed: int = 0) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, n)
    return f"{label},{' '.join(map(str, pixels))},{usage}"


def _fer_csv(tmp: Path, rows: list[str], header: str = "emotion,pixels,Usage") -> Path:
    path = tmp / "fer.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _good_fer_rows(n: int = 3) -> list[str]:
    usages = ("Training", "PublicTest", "PrivateTest")
    return [_fer_row(i % 7, usages[i % 3], seed=i) for i in range(n)]


def _fer(tmp: Path, csv: Path | str, *extra: str) -> list[str]:
    return [
        "fit", "--config", "fer2013-resnet50", "--model.backbone=resnet18",
        "--model.stem=standard", f"--data.csv_path={csv}", f"--output_dir={tmp / 'runs'}",
        *_FAST, *extra,
    ]  # fmt: skip


def _fer_rows(rows: list[str], *extra: str, header: str = "emotion,pixels,Usage"):
    return lambda tmp: _fer(tmp, _fer_csv(tmp, rows, header), *extra)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _png(path: Path, side: int = 48, seed: int = 0) -> Path:
    """A random gray PNG (whatever the file name's suffix)."""
    image = np.random.default_rng(seed).integers(0, 256, (side, side), np.uint8)
    return _write(path, cv2.imencode(".png", image)[1].tobytes())


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header (valid CRC) claims ``width`` x ``height``; its data is a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunks = _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return _write(path, b"\x89PNG\r\n\x1a\n" + chunks + _png_chunk(b"IEND", b""))


def _ck_tree(tmp: Path, per_class: int = 3, classes: tuple[str, ...] = ("happy", "sad")) -> Path:
    root = tmp / "ck"
    for c, name in enumerate(classes):
        for i in range(per_class):
            _png(root / name / f"S{100 + i:03d}_00{c}_0000000{i}.png", seed=10 * c + i)
    return root


def _ck(tmp: Path, root: Path | str, *extra: str) -> list[str]:
    return [
        "fit", "--config", "ckplus-resnet50-scratch", "--model.backbone=resnet18",
        f"--data.root={root}", "--data.detect_face=false", f"--output_dir={tmp / 'runs'}",
        *_FAST, *extra,
    ]  # fmt: skip


def _ck_with(change: Callable[[Path], object], *extra: str, per_class: int = 3):
    def build(tmp: Path) -> list[str]:
        root = _ck_tree(tmp, per_class)
        change(root)
        return _ck(tmp, root, *extra)

    return build


def _liver_slices(tmp: Path) -> Path:
    root = tmp / "liver"
    for patient in range(3):
        mask = np.zeros((32, 32), np.uint8)
        mask[8:20, 10:24] = 255
        _png(root / "images" / f"p{patient}_0.png", side=32, seed=patient)
        (root / "masks").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "masks" / f"p{patient}_0.png"), mask)
    return root


def _liver(tmp: Path, root: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", "liver-deeplabv3plus", "--model.encoder_name=resnet18",
        f"--data.root={root}", "--data.image_size=32", f"--output_dir={tmp / 'runs'}",
        *_FAST, *extra,
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


def _autism_tree(tmp: Path, splits=("train", "valid")) -> Path:
    root = tmp / "autism"
    for split in splits:
        for c, name in enumerate(("autistic", "non_autistic")):
            for i in range(2):
                image = np.random.default_rng(i + 2 * c).integers(0, 256, (32, 32, 3), np.uint8)
                path = root / split / name / f"{i}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), image)
    return root


def _faces(tmp: Path, val_classes: tuple[str, ...] | None = ("happy", "sad")) -> list[str]:
    root = tmp / "faces"
    for split, classes in (("train", ("happy", "sad")), ("validation", val_classes)):
        for c, name in enumerate(classes or ()):
            for i in range(2):
                _png(root / split / name / f"{i}.png", seed=10 * c + i)
    return [
        "fit", "--config", "faceexpr-facenet", f"--data.root={root}", "--data.double_train=false",
        f"--output_dir={tmp / 'runs'}", *_FAST,
    ]  # fmt: skip


def _autism_with_corrupt_image(tmp: Path) -> list[str]:
    root = _autism_tree(tmp, splits=("train", "valid", "test"))
    _write(root / "test" / "autistic" / "1.jpg", b"\xff\xd8\xff\xe0 cut off")
    return [
        "fit", "--config", "autism-resnet50", "--model.backbone=resnet18",
        f"--data.root={root}", "--data.image_size=32", f"--output_dir={tmp / 'runs'}", *_FAST,
    ]  # fmt: skip


def _ckpt_cmd(tmp: Path, ckpt: Path) -> list[str]:
    return [
        "test", "--config", "fer2013-resnet50", "--model.backbone=resnet18",
        "--model.stem=standard", "--data.synthetic_rows=70", f"--ckpt_path={ckpt}",
        f"--output_dir={tmp / 'runs'}", *_FAST,
    ]  # fmt: skip


class _RunsCode:
    """A pickled object whose unpickling would call ``os.system``: never unpickled here."""

    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def _code_checkpoint(tmp: Path, legacy: bool) -> list[str]:
    path = tmp / "evil.ckpt"
    payload = {"state_dict": {}, "hyper_parameters": {}, "x": _RunsCode()}
    if legacy:
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    return _ckpt_cmd(tmp, path)


def _truncated_checkpoint(tmp: Path) -> list[str]:
    path = tmp / "cut.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "global_step": 3}, path)
    path.write_bytes(path.read_bytes()[:2000])
    return _ckpt_cmd(tmp, path)


def _sweep(space_text: str | None, *extra: str):
    def build(tmp: Path) -> list[str]:
        space = tmp / "space.yaml"
        if space_text is not None:
            space.write_text(space_text)
        return [
            "sweep", "--config", "liver-deeplabv3plus", "--space", str(space), "--n-trials", "1",
            "--output-dir", str(tmp / "sweeps"), *extra,
        ]  # fmt: skip

    return build


def _read_only(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    return folder


def _fer_embedded(tmp: Path, *extra: str) -> list[str]:
    return [
        "fit", "--config", "fer2013-resnet50", "--model.backbone=resnet18",
        "--model.stem=standard", "--data.synthetic_rows=70", *_FAST, *extra,
    ]  # fmt: skip


GOOD = _good_fer_rows()
CASES: dict[str, Case] = {
    # FER2013 CSV ------------------------------------------------------------------------------
    "fer-header-only-random": Case(
        _fer_rows([], "--data.split=random"), ("{tmp}/fer.csv", "no data rows"), "add rows"
    ),
    "fer-header-only-usage": Case(_fer_rows([]), ("{tmp}/fer.csv",), "add rows"),
    "fer-five-rows-random": Case(
        _fer_rows(_good_fer_rows(5), "--data.split=random"),
        ("{tmp}/fer.csv", "split='random'", "at least 10"),
        "--data.split=usage",
    ),
    "fer-csv-is-a-folder": Case(
        lambda tmp: _fer(tmp, (tmp / "data.csv").mkdir() or tmp / "data.csv"),
        ("{tmp}/data.csv", "is a folder"),
        "--data.csv_path",
    ),
    "fer-missing-csv": Case(
        lambda tmp: _fer(tmp, tmp / "nope.csv"), ("{tmp}/nope.csv",), "--data.csv_path"
    ),
    "fer-empty-file": Case(
        lambda tmp: _fer(tmp, _write(tmp / "e.csv", b"")),
        ("{tmp}/e.csv", "is empty"),
        "emotion,pixels,Usage",
    ),
    "fer-bad-header": Case(
        _fer_rows(GOOD, header="label,image,split"), ("{tmp}/fer.csv", "line 1"), "fix its first"
    ),
    "fer-wrong-pixel-count": Case(
        _fer_rows([GOOD[0], _fer_row(n=2303), GOOD[1]]),
        ("{tmp}/fer.csv", "line 3", "2303 pixel values"),
        "--data.skip_bad_rows=true",
    ),
    "fer-pixel-above-255": Case(
        _fer_rows([GOOD[0], "1," + " ".join(["5"] * 2303 + ["256"]) + ",Training"]),
        ("{tmp}/fer.csv", "line 3", "pixel value '256'"),
        "fix or delete the row",
    ),
    "fer-non-numeric-pixel": Case(
        _fer_rows([GOOD[0], "1," + " ".join(["5"] * 2303 + ["x7"]) + ",Training"]),
        ("{tmp}/fer.csv", "line 3", "pixel value 'x7'"),
        "fix or delete the row",
    ),
    "fer-label-out-of-range": Case(
        _fer_rows([GOOD[0], _fer_row(label=7)]),
        ("{tmp}/fer.csv", "line 3", "emotion '7'"),
        "class index 0-6",
    ),
    "fer-unknown-usage": Case(
        _fer_rows([GOOD[0], _fer_row(usage="Validation")]),
        ("{tmp}/fer.csv", "line 3", "Usage 'Validation'"),
        "Training, PublicTest, PrivateTest",
    ),
    "fer-cut-off-last-line": Case(
        _fer_rows([*GOOD, GOOD[0][:900]]),
        ("{tmp}/fer.csv", "line 5", "ends mid-row"),
        "--data.skip_bad_rows=true",
    ),
    "fer-extra-field": Case(
        _fer_rows([GOOD[0], GOOD[1] + ",extra"]),
        ("{tmp}/fer.csv", "line 3", "4 comma-separated fields"),
        "fix or delete the row",
    ),
    "fer-no-publictest-rows": Case(
        _fer_rows([_fer_row(0, "Training"), _fer_row(1, "PrivateTest")]),
        ("{tmp}/fer.csv", "no PublicTest rows"),
        "--data.split=random",
    ),
    "fer-every-row-bad-skipped": Case(
        _fer_rows([_fer_row(label=9), _fer_row(n=10)], "--data.skip_bad_rows=true"),
        ("{tmp}/fer.csv", "no usable rows", "line 2"),
        "fix the file",
    ),
    "fer-an-image-given-as-csv": Case(
        lambda tmp: _fer(tmp, _png(tmp / "face.png")), ("{tmp}/face.png", "line 1"), "FER2013 CSV"
    ),
    # class folders (CK+) ----------------------------------------------------------------------
    "ck-root-missing": Case(
        lambda tmp: _ck(tmp, tmp / "nowhere"), ("{tmp}/nowhere", "does not exist"), "<class>"
    ),
    "ck-root-is-a-file": Case(
        lambda tmp: _ck(tmp, _png(tmp / "one.png")), ("{tmp}/one.png", "not a folder"), "<class>"
    ),
    "ck-no-class-folders": Case(
        lambda tmp: _ck(tmp, (tmp / "flat").mkdir() or tmp / "flat"),
        ("{tmp}/flat", "no class sub-folders"),
        "one folder per class",
    ),
    "ck-empty-class-folder": Case(
        _ck_with(lambda root: (root / "surprise").mkdir()),
        ("{tmp}/ck/surprise", "holds no images"),
        "delete the empty folder",
    ),
    "ck-truncated-image": Case(
        _ck_with(
            lambda root: _write(
                root / "sad" / "S100_001_00000000.png",
                (root / "sad" / "S100_001_00000000.png").read_bytes()[:60],
            )
        ),
        ("{tmp}/ck/sad/S100_001_00000000.png", "cannot decode"),
        "remove or replace it",
    ),  # fmt: skip
    "ck-zero-byte-image": Case(
        _ck_with(lambda root: (root / "sad" / "S200_001_00000001.png").write_bytes(b"")),
        ("{tmp}/ck/sad/S200_001_00000001.png",),
        "remove or replace it",
    ),
    "ck-text-file-named-png": Case(
        _ck_with(lambda root: (root / "happy" / "S201_000_00000001.png").write_text("notes")),
        ("{tmp}/ck/happy/S201_000_00000001.png",),
        "remove or replace it",
    ),
    "ck-mixed-image-sizes": Case(
        _ck_with(lambda root: _png(root / "sad" / "S202_001_00000001.png", side=64)),
        ("{tmp}/ck/sad/S202_001_00000001.png", "64x64", "48x48"),
        "--data.load_size",
    ),
    "ck-image-over-opencv-pixel-limit": Case(
        _ck_with(
            lambda root: _png_claiming(root / "sad" / "S203_001_00000001.png", 40000, 40000),
            "--data.load_size=48",
        ),
        ("{tmp}/ck/sad/S203_001_00000001.png", "too large"),
        "Downscale the file",
    ),
    "ck-subject-split-without-subject-ids": Case(
        _ck_with(lambda root: _png(root / "sad" / "face.png"), "--data.split=subject"),
        ("{tmp}/ck/sad/face.png", "subject id"),
        "data.subject_pattern",
    ),
    "ck-val-fraction-out-of-range": Case(
        lambda tmp: _ck(tmp, _ck_tree(tmp), "--data.val_fraction=1.5"),
        ("val_fraction", "1.5"),
        "[0, 1)",
    ),
    "ck-class-with-one-image": Case(
        _ck_with(lambda root: _png(root / "fear" / "S300_002_00000001.png")),
        ("{tmp}/ck", "fear"),
        "add images",
    ),
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
        _liver_with(lambda root: _png(root / "images" / "p9_0.png", side=32)),
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
    # autism -----------------------------------------------------------------------------------
    "autism-missing-split-folder": Case(
        lambda tmp: [
            "fit",
            "--config",
            "autism-resnet50",
            "--model.backbone=resnet18",
            f"--data.root={_autism_tree(tmp)}",
            "--data.image_size=32",
            f"--output_dir={tmp / 'runs'}",
            *_FAST,
        ],  # fmt: skip
        ("{tmp}/autism", "['test']"),
        "{train,valid,test}",
    ),
    "autism-corrupt-image": Case(
        _autism_with_corrupt_image,
        ("{tmp}/autism/test/autistic/1.jpg", "cannot decode"),
        "remove or replace it",
    ),
    # face-expression folders ------------------------------------------------------------------
    "faceexpr-train-without-validation": Case(
        lambda tmp: _faces(tmp, val_classes=None),
        ("{tmp}/faces", "validation"),
        "--data.root",
    ),
    "faceexpr-validation-lacks-a-class": Case(
        lambda tmp: _faces(tmp, val_classes=("happy",)),
        ("{tmp}/faces/validation", "'sad'"),
        "Add or rename folders",
    ),
    # command line -----------------------------------------------------------------------------
    "cli-unknown-preset": Case(
        lambda tmp: ["fit", "--config", "fer2013-resnet5O"],
        ("fer2013-resnet5O",),
        "fer2013-resnet50",
    ),
    "cli-typo-in-an-option": Case(
        lambda tmp: _fer_embedded(tmp, "--trainer.max_epohcs=3"), ("max_epohcs",), "max_epochs"
    ),
    "cli-wrong-type": Case(
        lambda tmp: _fer_embedded(tmp, "--trainer.max_epochs=abc"), ("abc",), "int"
    ),
    "cli-bad-choice": Case(
        lambda tmp: _fer_embedded(tmp, "--data.split=bogus"), ("'bogus'",), "'usage' or 'random'"
    ),
    "cli-negative-num-workers": Case(
        lambda tmp: _fer_embedded(tmp, f"--output_dir={tmp}", "--data.num_workers=-1"),
        ("num_workers", "-1"),
        ">= 0",
    ),
    "cli-negative-max-epochs": Case(
        lambda tmp: _fer_embedded(tmp, f"--output_dir={tmp}", "--trainer.max_epochs=-5"),
        ("--trainer.max_epochs", "-5"),
        "non-negative integer or -1",
    ),
    "cli-unknown-precision": Case(
        lambda tmp: _fer_embedded(tmp, f"--output_dir={tmp}", "--trainer.precision=bogus"),
        ("trainer.precision", "bogus"),
        "32-true",
    ),
    "cli-bad-config-yaml": Case(
        lambda tmp: [
            "fit",
            "--config",
            str(_write(tmp / "bad.yaml", b"trainer: [max_epochs: 1\n")),
        ],
        ("bad.yaml",),
        "yaml",
    ),
    "cli-output-dir-under-a-file": Case(
        lambda tmp: _fer_embedded(tmp, f"--output_dir={_png(tmp / 'img.png')}/runs"),
        ("{tmp}/img.png/runs", "cannot write the run folder"),
        "--output_dir",
    ),
    "cli-read-only-working-directory": Case(
        lambda tmp: [*_fer_embedded(tmp), f"--output_dir={_read_only(tmp / 'ro')}/runs"],
        ("{tmp}/ro/runs", "Permission denied"),
        "--output_dir",
        root_cannot_run=True,
    ),
    "cli-cache-under-a-file": Case(
        lambda tmp: _write(tmp / "blocker", b"") and _fer_embedded(tmp, f"--output_dir={tmp}/r"),
        ("{tmp}/blocker/cache",),
        "LITLAB_CACHE",
        env={"LITLAB_CACHE": "{tmp}/blocker/cache"},
    ),
    "cli-read-only-cache": Case(
        lambda tmp: _read_only(tmp / "cache") and _fer_embedded(tmp, f"--output_dir={tmp / 'r'}"),
        ("{tmp}/cache", "Permission denied"),
        "LITLAB_CACHE",
        env={"LITLAB_CACHE": "{tmp}/cache"},
        root_cannot_run=True,
    ),
    # checkpoints ------------------------------------------------------------------------------
    "ckpt-truncated": Case(
        _truncated_checkpoint, ("{tmp}/cut.ckpt", "damaged or incomplete"), "Copy it again"
    ),
    "ckpt-pickle-carrying-code": Case(
        lambda tmp: _code_checkpoint(tmp, legacy=False),
        ("{tmp}/evil.ckpt", "refused", "posix.system"),
        "weights_only=True",
    ),
    "ckpt-plain-pickle-carrying-code": Case(
        lambda tmp: _code_checkpoint(tmp, legacy=True),
        ("{tmp}/evil.ckpt", "refused", "posix.system"),
        "arbitrary code",
    ),
    "ckpt-not-a-checkpoint": Case(
        lambda tmp: _ckpt_cmd(tmp, _png(tmp / "x.ckpt")),
        ("{tmp}/x.ckpt", "not a PyTorch checkpoint"),
        "litlab fit",
    ),
    "ckpt-missing": Case(
        lambda tmp: _ckpt_cmd(tmp, tmp / "gone.ckpt"),
        ("{tmp}/gone.ckpt", "does not exist"),
        "checkpoints/last.ckpt",
    ),
    "ckpt-empty-file": Case(
        lambda tmp: _ckpt_cmd(tmp, _write(tmp / "e.ckpt", b"")),
        ("{tmp}/e.ckpt", "empty"),
        "litlab fit",
    ),
    # sweep options ----------------------------------------------------------------------------
    "sweep-space-not-yaml": Case(
        _sweep("metric: val/loss\nparams:\n  model.lr: {type: float, low: 1\n"),
        ("{tmp}/space.yaml", "line "),
        "fix the file",
    ),
    "sweep-space-not-a-mapping": Case(
        _sweep("- model.lr\n- data.batch_size\n"), ("{tmp}/space.yaml", "list"), "sweeps/space.py"
    ),
    "sweep-space-unknown-type": Case(
        _sweep("params:\n  model.lr: {type: real, low: 0.1, high: 1}\n"),
        ("{tmp}/space.yaml", "'real'"),
        "categorical",
    ),
    "sweep-space-log-from-zero": Case(
        _sweep("params:\n  model.lr: {type: float, low: 0, high: 1, log: true}\n"),
        ("{tmp}/space.yaml", "model.lr"),
        "low > 0",
    ),
    "sweep-space-missing": Case(_sweep(None), ("{tmp}/space.yaml",), "--space"),
}


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as stop:  # the option parser exits by itself
        code = stop.code if isinstance(stop.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own; no variable that litlab sets leaks into other tests."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.delenv("LITLAB_DEBUG", raising=False)
    monkeypatch.delenv("LITLAB_RUN_DIR", raising=False)
    return tmp_path


def test_the_corpus_is_large():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_exits_2_naming_the_fault_and_the_fix(name, cli_env, monkeypatch, capsys):
    case = CASES[name]
    if case.root_cannot_run and IS_ROOT:
        pytest.skip("root ignores permission bits; the '-under-a-file' cases cover the same path")
    tmp = cli_env
    for key, value in case.env.items():
        monkeypatch.setenv(key, value.format(tmp=tmp))
    code, output = _run(case.build(tmp), capsys)
    assert code == 2, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    for needle in case.names:
        assert needle.format(tmp=tmp) in output, (needle, output[-3000:])
    assert case.hint in output, (case.hint, output[-3000:])


# -- the last net -------------------------------------------------------------------------------
_BUGGY = """
import lightning.pytorch as pl


class Boom(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        raise KeyError("a bug, not bad input")


class BoomModel(pl.LightningModule):
    def __init__(self, num_classes: int = 2, in_chans: int = 1, class_names: list | None = None):
        raise RuntimeError("a model that cannot be built")
"""


def _litlab_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("litlab")]


@pytest.fixture
def buggy(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user module with a callback and a model that fail with an unexpected exception."""
    (cli_env / "buggy_parts.py").write_text(_BUGGY)
    monkeypatch.syspath_prepend(str(cli_env))
    return cli_env


def test_unexpected_error_is_one_line_exit_1_with_the_traceback_in_the_run_log(buggy, capsys):
    argv = _fer_embedded(buggy, f"--output_dir={buggy / 'runs'}")
    code, output = _run([*argv, "--trainer.callbacks+=buggy_parts.Boom"], capsys)
    assert code == 1, output[-3000:]
    assert "Traceback" not in output
    (line,) = _litlab_lines(output)
    assert line.startswith("litlab: internal error: KeyError: 'a bug, not bad input' (")
    assert "set LITLAB_DEBUG=1 for the traceback" in line
    (log,) = (buggy / "runs").glob("fer2013-resnet50/*/fit.log")
    assert str(log) in line
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "on_train_start" in text
    assert "KeyError: 'a bug, not bad input'" in text


def test_unexpected_error_before_a_run_folder_logs_under_the_output_dir(buggy, capsys):
    argv = _fer_embedded(buggy, f"--output_dir={buggy / 'out'}", "--model=buggy_parts.BoomModel")
    code, output = _run(argv, capsys)
    assert code == 1, output[-3000:]
    (line,) = _litlab_lines(output)
    assert "internal error: RuntimeError: a model that cannot be built" in line
    log = buggy / "out" / "litlab-errors.log"
    assert str(log) in line and "RuntimeError: a model that cannot be built" in log.read_text()
    assert not list((buggy / "out").glob("*/*"))  # no run folder was made


def test_litlab_debug_lets_the_exception_through(buggy, monkeypatch, capsys):
    monkeypatch.setenv("LITLAB_DEBUG", "1")
    argv = _fer_embedded(buggy, f"--output_dir={buggy / 'runs'}")
    with pytest.raises(KeyError, match="a bug, not bad input"):
        main([*argv, "--trainer.callbacks+=buggy_parts.Boom"])
    with pytest.raises(FileNotFoundError, match="fer2013-resnet5O"):
        main(["fit", "--config", "fer2013-resnet5O"])
