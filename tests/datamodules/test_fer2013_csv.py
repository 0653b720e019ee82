"""The FER2013 CSV reader: exact parsing, bad rows named by line, the cache, the embedded CSV."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from litlab.datamodules.fer2013_csv import (
    FER2013_CLASSES,
    FER2013FormatError,
    load_fer2013_cached,
    parse_fer2013_csv,
)
from litlab.datamodules.synthetic.fer2013 import write_fer2013_csv

HEADER = "emotion,pixels,Usage\n"


def _row(label: int, seed: int, usage: str = "Training") -> tuple[str, np.ndarray]:
    pixels = np.random.default_rng(seed).integers(0, 256, 2304, dtype=np.uint8)
    return f"{label},{' '.join(map(str, pixels))},{usage}\n", pixels.reshape(48, 48)


def _write(tmp_path: Path, lines: list[str], name: str = "fer.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(lines))
    return path


def test_parses_values_labels_and_usage_exactly(tmp_path):
    rows = [_row(i % 7, i, ("Training", "PublicTest", "PrivateTest")[i % 3]) for i in range(9)]
    data = parse_fer2013_csv(_write(tmp_path, [r for r, _ in rows]))
    assert data.images.dtype == np.uint8 and data.images.shape == (9, 48, 48)
    np.testing.assert_array_equal(data.images, np.stack([p for _, p in rows]))
    assert data.labels.tolist() == [i % 7 for i in range(9)]
    assert data.usage.tolist() == [
        ("Training", "PublicTest", "PrivateTest")[i % 3] for i in range(9)
    ]


def test_pixels_with_one_two_and_three_digits(tmp_path):
    pixels = np.array([0, 7, 10, 99, 100, 255] * 384, dtype=np.uint8)
    path = _write(tmp_path, [f"3,{' '.join(map(str, pixels))},Training\n"])
    np.testing.assert_array_equal(parse_fer2013_csv(path).images[0].ravel(), pixels)


GOOD, _ = _row(0, 1)
BAD_ROWS = {
    "wrong pixel count": (
        "1," + " ".join(["5"] * 2000) + ",Training\n",
        "2000 pixel values, expected 2304",
    ),
    "non-numeric pixel": (
        "1," + " ".join(["5"] * 2303 + ["x7"]) + ",Training\n",
        "pixel value 'x7'",
    ),
    "pixel above 255": (
        "1," + " ".join(["5"] * 2303 + ["300"]) + ",Training\n",
        "pixel value '300'",
    ),
    "label outside 0-6": ("7," + " ".join(["5"] * 2304) + ",Training\n", "emotion '7'"),
    "unknown usage": ("1," + " ".join(["5"] * 2304) + ",Validation\n", "Usage 'Validation'"),
    "extra field": ("1," + " ".join(["5"] * 2304) + ",Training,x\n", "4 comma-separated fields"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ROWS))
def test_bad_row_names_line_and_fault(tmp_path, kind):
    bad, message = BAD_ROWS[kind]
    path = _write(tmp_path, [GOOD, bad, GOOD])
    with pytest.raises(FER2013FormatError) as err:
        parse_fer2013_csv(path)
    assert "line 3" in str(err.value) and message in str(err.value)
    assert str(path) in str(err.value) and "skip_bad_rows" in str(err.value)
    data = parse_fer2013_csv(path, skip_bad_rows=True)
    assert len(data.labels) == 2 and data.skipped == 1


def test_cut_off_last_line(tmp_path, caplog):
    path = _write(tmp_path, [GOOD, GOOD, GOOD[:500]])
    with pytest.raises(FER2013FormatError, match=r"line 4: .*ends mid-row"):
        parse_fer2013_csv(path)
    data = parse_fer2013_csv(path, skip_bad_rows=True)
    assert len(data.labels) == 2
    assert "skipped 1 bad row" in caplog.text


def test_bad_header_and_missing_file(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("label,image\n1,2\n")
    with pytest.raises(FER2013FormatError, match="line 1"):
        parse_fer2013_csv(path)
    with pytest.raises(FileNotFoundError, match="--data.csv_path"):
        parse_fer2013_csv(tmp_path / "missing.csv")


def test_cache_reload_is_identical_and_fast_and_invalidated_by_edits(tmp_path):
    path = write_fer2013_csv(tmp_path / "fer.csv", 300, seed=3)
    t0 = time.perf_counter()
    first = load_fer2013_cached(path, cache_dir=tmp_path / "cache")
    parse_s = time.perf_counter() - t0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    t0 = time.perf_counter()
    again = load_fer2013_cached(path, cache_dir=tmp_path / "cache")
    assert time.perf_counter() - t0 < max(parse_s, 0.5)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert again.usage.tolist() == first.usage.tolist()
    # Appending a row changes size/mtime: a new cache entry, with the new row in it.
    with path.open("a") as f:
        f.write(_row(2, 99, "PrivateTest")[0])
    assert len(load_fer2013_cached(path, cache_dir=tmp_path / "cache").labels) == 301


def test_embedded_csv_has_all_splits_and_imbalanced_classes(tmp_path):
    data = parse_fer2013_csv(write_fer2013_csv(tmp_path / "e.csv", 1000, seed=0))
    counts = {u: int((data.usage == u).sum()) for u in ("Training", "PublicTest", "PrivateTest")}
    assert counts == {"Training": 800, "PublicTest": 100, "PrivateTest": 100}
    freq = np.bincount(data.labels, minlength=7) / len(data.labels)
    assert freq[FER2013_CLASSES.index("happy")] > 0.2 > freq[FER2013_CLASSES.index("disgust")]
    assert data.images.std() > 20  # faces, not blank frames


@pytest.mark.shared_data
def test_real_sample_with_cut_off_last_line(shared_data):
    path = shared_data / "fer2013-sample.csv"
    with pytest.raises(FER2013FormatError, match="ends mid-row"):
        parse_fer2013_csv(path)
    data = parse_fer2013_csv(path, skip_bad_rows=True)
    assert data.skipped == 1 and len(data.labels) >= 1000
    assert set(data.usage.tolist()) == {"Training"}


@pytest.mark.parametrize(
    "spelling",
    ["double space", "tab", "quoted pixels", "quoted fields", "blanks at the ends", "CRLF"],
)
def test_other_valid_spellings_of_a_row_parse_to_the_same_values(tmp_path, spelling):
    line, pixels = _row(4, 7, "PublicTest")
    values = line.rstrip("\n").split(",")[1]
    row = {
        "double space": f"4,{values.replace(' ', '  ', 5)},PublicTest\n",
        "tab": f"4,{values.replace(' ', chr(9), 5)},PublicTest\n",
        "quoted pixels": f'4,"{values}",PublicTest\n',
        "quoted fields": f'"4","{values}","PublicTest"\n',
        "blanks at the ends": f"4,  {values} ,PublicTest\n",
        "CRLF": line.replace("\n", "\r\n"),
    }[spelling]
    path = _write(tmp_path, [GOOD, row])
    data = parse_fer2013_csv(path)
    np.testing.assert_array_equal(data.images[1], pixels)
    assert data.labels.tolist() == [0, 4] and data.usage.tolist() == ["Training", "PublicTest"]


def test_a_folder_a_header_only_file_and_all_bad_rows_are_named(tmp_path):
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(FER2013FormatError, match=r"dir\.csv is a folder.*--data\.csv_path"):
        parse_fer2013_csv(tmp_path / "dir.csv")
    with pytest.raises(FER2013FormatError, match="has a header but no data rows"):
        parse_fer2013_csv(_write(tmp_path, []))
    path = _write(tmp_path, ["9," + " ".join(["5"] * 2304) + ",Training\n"], "bad.csv")
    with pytest.raises(FER2013FormatError, match="no usable rows.*line 2: emotion '9'"):
        parse_fer2013_csv(path, skip_bad_rows=True)
