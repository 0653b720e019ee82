"""The FER2013 fast path: one NumPy pass over a CSV's bytes when every row is in the plain shape.

A plain row is ``E,P,U`` (or ``E,P`` without a Usage column): ``E`` one digit 0-6, ``P`` 2,304
values 0-255 of one to three digits separated by single spaces (optionally inside one pair of
double quotes), ``U`` exactly ``Training``, ``PublicTest`` or ``PrivateTest``, rows ended by
``\\n`` or ``\\r\\n``. The Kaggle file and every file litlab writes are plain.

The scan works on the raw bytes (``np.frombuffer``, no text decoding): rows from newlines, fields
from commas, and, in cache-sized blocks of rows, the end of every digit run (a digit whose next
byte is not one) with its value from at most three uint8 digits. Every rule above is checked on
whole-row arrays and by byte-class counts (what is not a digit, space, comma, newline or the
``\\r`` of ``\\r\\n`` must be a Usage letter or a field quote), and the scan returns ``None`` at
the first doubt: the exact per-row parser in :mod:`~litlab.datamodules.fer2013_csv` then reads
the file, so it alone words errors (file, line, fault) and decides what unusual but valid rows
(padding spaces, blank lines) mean. What the scan returns is exactly what the exact parser
returns for the same file.
"""

from __future__ import annotations

import numpy as np

N_PIXELS = 2304
SIDE = 48
USAGES = ("Training", "PublicTest", "PrivateTest")
_NL, _CR, _SPACE, _COMMA, _QUOTE, _ZERO = 10, 13, 32, 44, 34, 48
_RUNS = N_PIXELS + 1  # digit runs in a plain row: the emotion, then the pixel values
_BLOCK_ROWS = 128  # rows per value pass (about 1 MB of text): its arrays stay in cache
_PIECE_BYTES = 1 << 20  # bytes per separator search, for the same reason
_USAGE_WIDTH = max(len(u) for u in USAGES)
_USAGE_TABLE = np.array(
    [list(u.encode().ljust(_USAGE_WIDTH, b"\0")) for u in USAGES], np.uint8
)  # (3, 11)


def _header_has_usage(line: bytes) -> bool | None:
    """``True``/``False`` for an ``emotion,pixels[,Usage]`` header; ``None`` for anything else."""
    if any(b < 32 or b > 126 for b in line):
        return None
    names = [h.strip().lower() for h in line.decode("ascii").split(",")]
    if names == ["emotion", "pixels", "usage"]:
        return True
    return False if names == ["emotion", "pixels"] else None


def _usage_index(buf: np.ndarray, first: np.ndarray, end: np.ndarray) -> np.ndarray | None:
    """Each row's index into :data:`USAGES` from its bytes ``buf[first:end]``; ``None`` on doubt."""
    width = end - first
    if width.min() < 1 or width.max() > _USAGE_WIDTH:
        return None
    cols = np.arange(_USAGE_WIDTH)
    idx = np.minimum(first[:, None] + cols, len(buf) - 1)
    cells = np.where(cols < width[:, None], buf[idx], 0).astype(np.uint8)  # (R, 11)
    match = (cells[:, None, :] == _USAGE_TABLE[None]).all(-1)  # (R, 3)
    if not match.any(1).all():
        return None
    return match.argmax(1)


def _separators(buf: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the newlines and of the commas in ``buf[lo:hi]``, in ascending order.

    Read in 1 MiB pieces: whole-file comparisons would allocate (and fault in) two temporaries
    the size of the file, which costs more than the comparisons themselves.
    """
    newlines, commas = [], []
    for start in range(lo, hi, _PIECE_BYTES):
        piece = buf[start : min(start + _PIECE_BYTES, hi)]
        newlines.append(np.flatnonzero(piece == _NL) + start)
        commas.append(np.flatnonzero(piece == _COMMA) + start)
    return np.concatenate(newlines), np.concatenate(commas)


def _is_digit(values: np.ndarray) -> np.ndarray:
    """Whether each byte of a uint8 array is an ASCII digit (one subtraction and compare)."""
    return (values - np.uint8(_ZERO)) <= 9


def scan_fer2013(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Parse a FER2013 CSV's bytes when every row is plain, in whole-file NumPy operations.

    Args:
        data: The file's bytes, UTF-8 byte-order mark already removed.

    Returns:
        ``images (N, 48, 48)`` uint8, ``labels (N,)`` int64 and ``usage (N,)`` ``<U11`` (all
        ``Training`` without a Usage column), or ``None`` when the header or any row is not
        plain (the exact parser must read the file).
    """
    head_end = data.find(b"\n")
    if head_end < 0:
        return None
    has_usage = _header_has_usage(data[:head_end].removesuffix(b"\r"))
    if has_usage is None:
        return None
    buf = np.frombuffer(data, np.uint8)  # the header stays: each block starts at a newline
    body, last = head_end + 1, len(buf)
    while last > body and buf[last - 1] in (_NL, _CR):  # trailing blank lines
        last -= 1
    if last == body:
        return None
    newlines, commas = _separators(buf, body, last)
    ends = np.append(newlines, last)  # row ends: each newline, and the end of the data
    rows = len(ends)
    starts = np.concatenate(([body], ends[:-1] + 1))
    crlf = np.zeros(rows, bool)
    crlf[:-1] = buf[ends[:-1] - 1] == _CR
    ends = ends - crlf  # a row's text stops before its \r\n
    n_commas = 2 if has_usage else 1
    if len(commas) != n_commas * rows:
        return None
    commas = commas.reshape(rows, n_commas)  # sorted, so each row's own commas iff inside it
    if (commas[:, 0] != starts + 1).any() or (commas[:, -1] >= ends).any():
        return None
    emotion = buf[starts] - np.uint8(_ZERO)
    if (emotion > 6).any():
        return None
    if has_usage:
        usage_idx = _usage_index(buf, commas[:, 1] + 1, ends)
        if usage_idx is None:
            return None
        field_end = commas[:, 1]
        usage_bytes = int((ends - commas[:, 1] - 1).sum())
    else:
        usage_idx = np.zeros(rows, np.int64)
        field_end = ends
        usage_bytes = 0
    field_start = commas[:, 0] + 1
    if (field_end - field_start < 2 * N_PIXELS - 1).any():
        return None
    quoted = buf[field_start] == _QUOTE
    if quoted.any():
        if (buf[field_end[quoted] - 1] != _QUOTE).any():
            return None
        field_start = field_start + quoted
        field_end = field_end - quoted
    if not (_is_digit(buf[field_start]).all() and _is_digit(buf[field_end - 1]).all()):
        return None  # a pixel field starts and ends with a digit: no padding, no empty field
    images = np.empty((rows, N_PIXELS), np.uint8)
    n_digits = n_spaces = 0
    for lo in range(0, rows, _BLOCK_ROWS):
        hi = min(lo + _BLOCK_ROWS, rows)
        first = int(starts[lo]) - 1  # the newline before the block's first row
        counts = _block_values(buf[first : ends[hi - 1]], starts[lo:hi] - first, images[lo:hi])
        if counts is None:
            return None
        n_digits += counts[0]
        n_spaces += counts[1]
    # Byte classes over the body: digits, spaces, rows-1 newlines, the commas, the \r of each
    # \r\n, and nothing else but the (matched) Usage letters and the field quotes. With every row
    # holding 2,305 digit runs and its pixel field starting and ending with a digit, 2,303 spaces
    # a row means its values are separated by single spaces.
    others = (last - body) - n_digits - n_spaces - (rows - 1) - n_commas * rows - int(crlf.sum())
    if others != usage_bytes + 2 * int(quoted.sum()) or n_spaces != (N_PIXELS - 1) * rows:
        return None
    labels = emotion.astype(np.int64)
    return images.reshape(rows, SIDE, SIDE), labels, np.asarray(USAGES, "<U11")[usage_idx]


def _block_values(
    block: np.ndarray, row_starts: np.ndarray, out: np.ndarray
) -> tuple[int, int] | None:
    """Read the digit runs of some consecutive rows into their pixel values.

    A digit run ends where a digit is followed by a non-digit; its value is its last digit plus
    ten times the one before (zero when that is not a digit) plus a hundred times the one before
    that (only when both are digits).

    Args:
        block: ``(B,)`` the rows' bytes, starting with the newline before the first row and
            ending after the last row's text.
        row_starts: ``(R,)`` each row's first byte, as an index into ``block``.
        out: ``(R, 2304)`` uint8, written with the pixel values.

    Returns:
        The block's digit and space counts, or ``None`` unless every row holds 2,305 digit runs
        (the emotion at its first byte, then 2,304 values) of one to three digits with values
        0-255.
    """
    digit = block - np.uint8(_ZERO)  # 0-9 for digits, larger for any other byte
    is_digit = digit <= 9
    n_digits = int(np.count_nonzero(is_digit))
    n_spaces = int(np.count_nonzero(block == _SPACE))
    run_end = np.flatnonzero(is_digit[:-1] > is_digit[1:])
    if is_digit[-1]:  # the block ends in a digit (no Usage column): its last run ends there
        run_end = np.append(run_end, len(block) - 1)
    rows = len(row_starts)
    if len(run_end) != _RUNS * rows:
        return None
    # Each row's first run must be its emotion: then every row holds exactly 2,305 runs.
    if (run_end[::_RUNS] != row_starts).any():
        return None
    value = np.take(digit, run_end).astype(np.uint16)
    before = run_end - 1  # never -1: the block's first byte is a newline, not a run end
    tens = np.take(digit, before).astype(np.uint16)  # uint16 before any product: 300 > 255
    two = tens <= 9  # the run has a second digit
    value += (tens * two) * np.uint16(10)
    before -= 1  # -1 only for a run at byte 1 (one digit), which ``two`` masks below
    hundreds = np.take(digit, before).astype(np.uint16)
    three = (hundreds <= 9) & two  # the run has a third digit
    value += (hundreds * three) * np.uint16(100)
    # Runs hold at most three digits iff counting up to three per run accounts for every digit.
    if _RUNS * rows + int(np.count_nonzero(two)) + int(np.count_nonzero(three)) != n_digits:
        return None
    value = value.reshape(rows, _RUNS)[:, 1:]
    if value.max() > 255:
        return None
    out[:] = value
    return n_digits, n_spaces
