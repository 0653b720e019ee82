"""Broken data files: FER2013 CSVs and class folders (CK+, autism, face expressions)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from tests.litlab.bad_input_kit import FAST, Case, png, write


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
        *FAST, *extra,
    ]  # fmt: skip


def _fer_rows(rows: list[str], *extra: str, header: str = "emotion,pixels,Usage"):
    return lambda tmp: _fer(tmp, _fer_csv(tmp, rows, header), *extra)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header (valid CRC) claims ``width`` x ``height``; its data is a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunks = _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return write(path, b"\x89PNG\r\n\x1a\n" + chunks + _png_chunk(b"IEND", b""))


def _ck_tree(tmp: Path, per_class: int = 3, classes: tuple[str, ...] = ("happy", "sad")) -> Path:
    root = tmp / "ck"
    for c, name in enumerate(classes):
        for i in range(per_class):
            png(root / name / f"S{100 + i:03d}_00{c}_0000000{i}.png", seed=10 * c + i)
    return root


def _ck(tmp: Path, root: Path | str, *extra: str) -> list[str]:
    return [
        "fit", "--config", "ckplus-resnet50-scratch", "--model.backbone=resnet18",
        f"--data.root={root}", "--data.detect_face=false", f"--output_dir={tmp / 'runs'}",
        *FAST, *extra,
    ]  # fmt: skip


def _ck_with(change: Callable[[Path], object], *extra: str, per_class: int = 3):
    def build(tmp: Path) -> list[str]:
        root = _ck_tree(tmp, per_class)
        change(root)
        return _ck(tmp, root, *extra)

    return build


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
                png(root / split / name / f"{i}.png", seed=10 * c + i)
    return [
        "fit", "--config", "faceexpr-facenet", f"--data.root={root}", "--data.double_train=false",
        f"--output_dir={tmp / 'runs'}", *FAST,
    ]  # fmt: skip


def _autism_with_corrupt_image(tmp: Path) -> list[str]:
    root = _autism_tree(tmp, splits=("train", "valid", "test"))
    write(root / "test" / "autistic" / "1.jpg", b"\xff\xd8\xff\xe0 cut off")
    return [
        "fit", "--config", "autism-resnet50", "--model.backbone=resnet18",
        f"--data.root={root}", "--data.image_size=32", f"--output_dir={tmp / 'runs'}", *FAST,
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
        lambda tmp: _fer(tmp, write(tmp / "e.csv", b"")),
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
        lambda tmp: _fer(tmp, png(tmp / "face.png")), ("{tmp}/face.png", "line 1"), "FER2013 CSV"
    ),
    # class folders (CK+) ----------------------------------------------------------------------
    "ck-root-missing": Case(
        lambda tmp: _ck(tmp, tmp / "nowhere"), ("{tmp}/nowhere", "does not exist"), "<class>"
    ),
    "ck-root-is-a-file": Case(
        lambda tmp: _ck(tmp, png(tmp / "one.png")), ("{tmp}/one.png", "not a folder"), "<class>"
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
            lambda root: write(
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
        _ck_with(lambda root: png(root / "sad" / "S202_001_00000001.png", side=64)),
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
        _ck_with(lambda root: png(root / "sad" / "face.png"), "--data.split=subject"),
        ("{tmp}/ck/sad/face.png", "subject id"),
        "data.subject_pattern",
    ),
    "ck-val-fraction-out-of-range": Case(
        lambda tmp: _ck(tmp, _ck_tree(tmp), "--data.val_fraction=1.5"),
        ("val_fraction", "1.5"),
        "[0, 1)",
    ),
    "ck-class-with-one-image": Case(
        _ck_with(lambda root: png(root / "fear" / "S300_002_00000001.png")),
        ("{tmp}/ck", "fear"),
        "add images",
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
            *FAST,
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
}
