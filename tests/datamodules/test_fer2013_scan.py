"""The FER2013 byte scan: exactly the exact parser's output on plain files, ``None`` otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from litlab.datamodules import fer2013_csv
from litlab.datamodules.fer2013_csv import FER2013FormatError, parse_fer2013_csv
from litlab.datamodules.fer2013_scan import scan_fer2013

USAGES = ("Training", "PublicTest", "PrivateTest")


def _pixels(rng: np.random.Generator) -> np.ndarray:
    # Ones, tens and hundreds in every row; the ends of the range included.
    values = rng.integers(0, 256, 2304)
    values[:6] = [0, 9, 10, 99, 100, 255]
    return rng.permutation(values)


def _rows(n: int, seed: int, usage: bool = True, quote_every: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        field = " ".join(map(str, _pixels(rng)))
        if quote_every and i % quote_every == 0:
            field = f'"{field}"'
        tail = f",{USAGES[int(rng.integers(3))]}" if usage else ""
        rows.append(f"{int(rng.integers(7))},{field}{tail}")
    return rows


def _exact(path: Path, monkeypatch: pytest.MonkeyPatch, **kwargs) -> fer2013_csv.Fer2013Arrays:
    """The row-by-row parser alone (the scan switched off)."""
    with monkeypatch.context() as m:
        m.setattr(fer2013_csv, "scan_fer2013", lambda data: None)
        return parse_fer2013_csv(path, **kwargs)


def _assert_same(a: fer2013_csv.Fer2013Arrays, b: fer2013_csv.Fer2013Arrays) -> None:
    assert a.images.dtype == b.images.dtype == np.uint8 and a.images.shape == b.images.shape
    np.testing.assert_array_equal(a.images, b.images)
    assert a.labels.dtype == b.labels.dtype and a.labels.tolist() == b.labels.tolist()
    assert a.usage.dtype == b.usage.dtype and a.usage.tolist() == b.usage.tolist()
    assert a.skipped == b.skipped


PLAIN = {
    "kaggle": lambda: "emotion,pixels,Usage\n" + "\n".join(_rows(40, 1)) + "\n",
    "no usage column": lambda: "emotion,pixels\n" + "\n".join(_rows(12, 2, usage=False)) + "\n",
    "crlf": lambda: "emotion,pixels,Usage\r\n" + "\r\n".join(_rows(9, 3)) + "\r\n",
    "no final newline": lambda: "emotion,pixels,Usage\n" + "\n".join(_rows(5, 4)),
    "trailing blank lines": lambda: "emotion,pixels,Usage\n" + "\n".join(_rows(5, 5)) + "\n\n\n",
    "quoted pixels": lambda: "emotion,pixels,Usage\n" + "\n".join(_rows(10, 6, quote_every=3)),
    "header case": lambda: "Emotion,Pixels,usage\n" + "\n".join(_rows(3, 7)) + "\n",
    "leading zeros": lambda: (
        "emotion,pixels,Usage\n"
        + "4,"
        + " ".join(["007", "05", "255"] + ["0"] * 2301)
        + ",PublicTest\n"
    ),
    "one row": lambda: "emotion,pixels,Usage\n" + _rows(1, 8)[0] + "\n",
    # Several blocks of rows, CRLF and quotes mixed in: block edges must not shift a value.
    "many rows": lambda: "emotion,pixels,Usage\r\n" + "\r\n".join(_rows(300, 10, quote_every=7)),
    # Without a Usage column a row, and the file, end in a digit.
    "no usage, last value 255": lambda: (
        "emotion,pixels\n" + "\n".join(_rows(140, 11, usage=False)).rsplit(" ", 1)[0] + " 255"
    ),
}


@pytest.mark.parametrize("kind", sorted(PLAIN))
def test_plain_files_are_scanned_to_the_exact_parsers_output(tmp_path, monkeypatch, kind):
    path = tmp_path / "fer.csv"
    path.write_bytes(PLAIN[kind]().encode())
    assert scan_fer2013(path.read_bytes()) is not None, "a plain file took the slow path"
    _assert_same(parse_fer2013_csv(path), _exact(path, monkeypatch))


def test_utf8_bom_is_ignored(tmp_path, monkeypatch):
    path = tmp_path / "fer.csv"
    path.write_bytes(b"\xef\xbb\xbf" + PLAIN["kaggle"]().encode())
    _assert_same(parse_fer2013_csv(path), _exact(path, monkeypatch))


GOOD = _rows(3, 9)
TRICKY = {
    # Valid for the exact parser, not plain: the scan must hand them over.
    "padding spaces": [GOOD[0], GOOD[1].replace(",", " , ", 1), GOOD[2]],
    "double space": [GOOD[0], GOOD[1].replace(" ", "  ", 1), GOOD[2]],
    "blank line inside": [GOOD[0], "", GOOD[1], GOOD[2]],
    "quoted emotion": [GOOD[0], '"' + GOOD[1][0] + '"' + GOOD[1][1:], GOOD[2]],
    "spaces inside quotes": [GOOD[0], GOOD[1].replace(",", '," ', 1), GOOD[2]],
    # Bad rows: the exact parser words the error.
    "label 7": [GOOD[0], "7" + GOOD[1][1:], GOOD[2]],
    "unknown usage": [GOOD[0], GOOD[1].rsplit(",", 1)[0] + ",Validation", GOOD[2]],
    "extra field": [GOOD[0], GOOD[1] + ",x", GOOD[2]],
    "pixel 256": [GOOD[0], "1," + " ".join(["256"] + ["5"] * 2303) + ",Training", GOOD[2]],
    # 300 and 999 wrap to 44 and 231 in uint8 arithmetic: the scan must see them whole.
    "pixel 300": [GOOD[0], "1," + " ".join(["300"] + ["5"] * 2303) + ",Training", GOOD[2]],
    "pixel 999": [GOOD[0], "1," + " ".join(["5"] * 2303 + ["999"]) + ",Training", GOOD[2]],
    "four digits": [GOOD[0], "1," + " ".join(["0255"] + ["5"] * 2303) + ",Training", GOOD[2]],
    "2303 values": [GOOD[0], "1," + " ".join(["5"] * 2303) + ",Training", GOOD[2]],
    "letter in pixels": [GOOD[0], "1," + " ".join(["5"] * 2303 + ["x"]) + ",Training", GOOD[2]],
    "unclosed quote": [GOOD[0], GOOD[1].replace(",", ',"', 1), GOOD[2]],
    "lone carriage return": [GOOD[0], GOOD[1][:300] + "\r" + GOOD[1][300:], GOOD[2]],
    "cut-off last line": [GOOD[0], GOOD[1], GOOD[2][:700]],
    # Counts kept equal across rows: a doubled space in one row, a merged pair in the next.
    "double space and merged pair": [
        GOOD[0].replace(" ", "  ", 1),
        "1," + " ".join(["12"] + ["5"] * 2302) + ",Training",
        GOOD[2],
    ],
    "2305 and 2303 values": [
        "1," + " ".join(["5"] * 2305) + ",Training",
        "2," + " ".join(["5"] * 2303) + ",Training",
        GOOD[2],
    ],
    "four digits, one space short": [
        GOOD[0],
        "1," + " ".join(["1234"] + ["5"] * 2302) + " 6,Training",
        GOOD[2],
    ],
    "space before the closing quote": [
        GOOD[0],
        '1,"' + " ".join(["5"] * 2304) + ' ",Training',
        GOOD[2],
    ],
    "emotion 10": [GOOD[0], "10" + GOOD[1][1:], GOOD[2]],
    "tab for a space": [GOOD[0], GOOD[1].replace(" ", "\t", 1), GOOD[2]],
}


@pytest.mark.parametrize("kind", sorted(TRICKY))
def test_other_files_go_to_the_exact_parser(tmp_path, monkeypatch, kind):
    path = tmp_path / "fer.csv"
    path.write_text("emotion,pixels,Usage\n" + "\n".join(TRICKY[kind]) + "\n")
    assert scan_fer2013(path.read_bytes()) is None
    for skip in (False, True):
        try:
            expected = _exact(path, monkeypatch, skip_bad_rows=skip)
        except FER2013FormatError as err:
            with pytest.raises(FER2013FormatError) as got:
                parse_fer2013_csv(path, skip_bad_rows=skip)
            assert str(got.value) == str(err) and "line" in str(err)
        else:
            _assert_same(parse_fer2013_csv(path, skip_bad_rows=skip), expected)


@pytest.mark.parametrize(
    "header", ["label,image,Usage", '"emotion","pixels","Usage"', "emotion,pixels,Usage,x"]
)
def test_unusual_headers_go_to_the_exact_parser(header):
    assert scan_fer2013(f"{header}\n{GOOD[0]}\n".encode()) is None


@pytest.mark.slow
def test_full_size_file_is_scanned_to_the_exact_parsers_output(tmp_path, monkeypatch):
    """35,887 rows (the Kaggle file's count) in about 300 MB: the scan's blocks all line up."""
    rng = np.random.default_rng(12)
    distinct = _rows(64, 13)  # varied rows, repeated with fresh labels and Usage
    lines = [
        f"{int(rng.integers(7))}{distinct[i % 64][1:].rsplit(',', 1)[0]},{USAGES[i % 3]}"
        for i in range(35_887)
    ]
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n" + "\n".join(lines) + "\n")
    scanned = parse_fer2013_csv(path)
    assert scanned.images.shape == (35_887, 48, 48)
    _assert_same(scanned, _exact(path, monkeypatch))
