"""Prediction inputs: image folders at any depth and FER2013-format CSVs, preprocessed as evaluation."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from litlab.datamodules.ckplus import CKPlusDataModule
from litlab.datamodules.fer2013 import FER2013DataModule
from litlab.datamodules.fer2013_csv import FER2013FormatError, read_pixels_csv
from litlab.datamodules.predict_inputs import find_files, read_images_or_csv

RNG = np.random.default_rng(0)


def _pixels(seed: int) -> str:
    return " ".join(map(str, np.random.default_rng(seed).integers(0, 256, 48 * 48)))


def _image_tree(root: Path) -> dict[str, np.ndarray]:
    """Gray images of different sizes two folders deep, plus files that are not inputs."""
    images = {
        "a.png": RNG.integers(0, 256, (60, 50), dtype=np.uint8),
        "x/b.jpg": RNG.integers(0, 256, (48, 48), dtype=np.uint8),
        "x/y/c.bmp": RNG.integers(0, 256, (100, 90), dtype=np.uint8),
    }
    for name, image in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), image)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    cv2.imwrite(str(root / ".hidden" / "d.png"), images["a.png"])
    return images


def test_folders_are_searched_at_any_depth(tmp_path: Path) -> None:
    _image_tree(tmp_path)
    decoded = read_images_or_csv(tmp_path, "gray")
    assert decoded.names == ["a", "x/b", "x/y/c"]
    assert decoded.sources == [str(tmp_path / n) for n in ("a.png", "x/b.jpg", "x/y/c.bmp")]
    assert [im.shape for im in decoded.images] == [(60, 50), (48, 48), (100, 90)]
    assert (decoded.labels == -1).all()
    assert read_images_or_csv(tmp_path / "a.png", "rgb").images[0].shape == (60, 50, 3)


def test_missing_or_empty_inputs_say_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist; pass a folder of images"):
        find_files(tmp_path / "nope", (".png",), "a folder of images")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="holds no .png file at any depth"):
        find_files(tmp_path, (".png",), "a folder of images")
    with pytest.raises(ValueError, match="notes.txt is not one of .png"):
        find_files(tmp_path / "notes.txt", (".png",), "a folder of images")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG cut")
    with pytest.raises(ValueError, match=f"cannot decode image file {tmp_path / 'broken.png'}"):
        read_images_or_csv(tmp_path, "gray")


def test_pixels_alone_or_with_optional_columns_in_any_order(tmp_path: Path) -> None:
    only = tmp_path / "only.csv"
    only.write_text("pixels\n" + _pixels(0) + "\n\n" + _pixels(1) + "\n")
    rows = read_pixels_csv(only)
    assert rows.images.shape == (2, 48, 48) and rows.lines.tolist() == [2, 4]
    assert rows.labels.tolist() == [-1, -1]
    expected = np.array(_pixels(1).split(), np.uint8).reshape(48, 48)
    np.testing.assert_array_equal(rows.images[1], expected)

    mixed = tmp_path / "mixed.csv"
    mixed.write_text(f"Usage,pixels,emotion\nPrivateTest,{_pixels(2)},3\n,{_pixels(3)},\n")
    rows = read_pixels_csv(mixed)
    assert rows.labels.tolist() == [3, -1] and rows.usage.tolist() == ["PrivateTest", ""]
    decoded = read_images_or_csv(mixed, "gray")
    assert decoded.sources == [f"{mixed}:2", f"{mixed}:3"]
    assert decoded.names == ["mixed/line000002", "mixed/line000003"]


def test_bad_csv_rows_name_the_line_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "faces.csv"
    path.write_text(f"emotion,pixels\n1,{_pixels(0)}\n9,{_pixels(1)}\n2,1 2 3\n")
    with pytest.raises(FER2013FormatError, match=r"line 3: row emotion '9' is not a class"):
        read_pixels_csv(path)
    with pytest.raises(FER2013FormatError, match="fix or delete the row$"):
        read_pixels_csv(path, skip_bad_rows=None)  # a DataModule without that option
    rows = read_pixels_csv(path, skip_bad_rows=True)
    assert rows.lines.tolist() == [2] and rows.skipped == 2
    (tmp_path / "no_pixels.csv").write_text("emotion,Usage\n1,Training\n")
    with pytest.raises(FER2013FormatError, match="needs one 'pixels' column"):
        read_pixels_csv(tmp_path / "no_pixels.csv")


def test_predicting_reads_only_the_inputs_and_preprocesses_as_evaluation(tmp_path: Path) -> None:
    images = _image_tree(tmp_path / "in")
    data = FER2013DataModule(csv_path=str(tmp_path / "never-read.csv"), num_workers=0)
    data.predict_from(tmp_path / "in")
    data.setup("predict")  # would fail on the missing training CSV if it were read
    x, index = next(iter(data.predict_dataloader()))
    assert x.shape == (3, 1, 48, 48) and index.tolist() == [0, 1, 2]
    resized = cv2.resize(images["a.png"], (48, 48), interpolation=cv2.INTER_AREA)
    expected = torch.from_numpy(resized).float() / 127.5 - 1.0  # the eval transform
    torch.testing.assert_close(x[0, 0], expected)
    assert data.predict_set.sizes.tolist() == [[60, 50], [48, 48], [100, 90]]


def test_ckplus_inputs_get_the_papers_preprocessing(tmp_path: Path) -> None:
    _image_tree(tmp_path / "in")
    data = CKPlusDataModule(image_size=32, detect_face=False, input_mode="both", num_workers=0)
    data.predict_from(tmp_path / "in")
    data.setup("predict")
    x, _ = next(iter(data.predict_dataloader()))
    assert x.shape == (3, 2, 32, 32)  # gray and edges, from inputs of three sizes
    edges = x[:, 1]
    assert set(torch.unique(edges).tolist()) <= {-1.0, 1.0}  # Canny: 0 or 255 before scaling
    gray = (x[:, 0] + 1) * 127.5
    assert gray.min() < 10 and gray.max() > 245  # histogram-equalised
