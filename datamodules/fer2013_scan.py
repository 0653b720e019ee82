"""The FER2013 fast path: one NumPy pass over a CSV's bytes when every row is in the plain shape.

A plain row is ``E,P,U`` (or ``E,P`` without a Usage column): ``E`` one digit 0-6, ``P`` 2,304
values 0-255 of one to three digits separated by single spaces (optionally inside one pair of
double quotes), ``U`` exactly ``Training``, ``PublicTest`` or ``PrivateTest``, rows ended by
``\\n`` or ``\\r\\n``. The Kaggle file and every file litlab writes are plain. The scan checks all
of it on whole-file arrays (row boundaries from newlines, fields from commas, tokens from spaces,
values from digit bytes at each token's end) and returns ``None`` at the first doubt: the exact
per-row parser in :mod:`~litlab.datamodules.fer2013_csv` then reads the file, so it alone words
errors (file, line, fault) and decides what unusual but valid rows (padding spaces, blank lines)
mean. What the scan returns is exactly what the exact parser returns for the same file.
"""

from __future__ import annotations

import numpy as np

N_PIXELS = 2304
SIDE = 48
USAGES = ("Training", "PublicTest", "PrivateTest")
_NL, _CR, _SPACE, _COMMA, _QUOTE, _ZERO = 10, 13, 32, 44, 34, 48
_CHUNK_ROWS = 2048  # rows per pixel pass: its arrays stay in cache, memory stays bounded
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
    buf = np.frombuffer(data, np.uint8)[head_end + 1 :]
    last = len(buf)
    while last and buf[last - 1] in (_NL, _CR):  # trailing blank lines
        last -= 1
    buf = buf[:last]
    if not last:
        return None
    ends = np.flatnonzero(buf == _NL)  # row ends: each newline, and the end of the data
    ends = np.append(ends, last)
    rows = len(ends)
    starts = np.concatenate(([0], ends[:-1] + 1))
    crlf = np.zeros(rows, bool)
    crlf[:-1] = buf[ends[:-1] - 1] == _CR
    ends = ends - crlf  # a row's text stops before its \r\n
    n_commas = 2 if has_usage else 1
    commas = np.flatnonzero(buf == _COMMA)
    if len(commas) != n_commas * rows:
        return None
    commas = commas.reshape(rows, n_commas)  # sorted, so each row's own commas iff inside it
    if (commas[:, 0] != starts + 1).any() or (commas[:, -1] >= ends).any():
        return None
    emotion = buf[starts].astype(np.int64) - _ZERO
    if (emotion < 0).any() or (emotion > 6).any():
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
    # Every byte outside digits, spaces, commas, newlines and the \r of \r\n is a Usage letter
    # or a field quote: with the Usage cells matched exactly, pixel fields hold digits and spaces.
    digit = buf - np.uint8(_ZERO)  # 0-9 for digits, larger for any other byte
    n_digits = int(np.count_nonzero(digit <= 9))
    n_spaces = int(np.count_nonzero(buf == _SPACE))
    others = len(buf) - n_digits - n_spaces - (rows - 1) - n_commas * rows - int(crlf.sum())
    if others != usage_bytes + 2 * int(quoted.sum()) or n_spaces != (N_PIXELS - 1) * rows:
        return None
    images = np.empty((rows, N_PIXELS), np.uint8)
    for lo in range(0, rows, _CHUNK_ROWS):
        hi = min(lo + _CHUNK_ROWS, rows)
        if not _scan_pixels(digit, buf, field_start[lo:hi], field_end[lo:hi], images[lo:hi]):
            return None
    return images.reshape(rows, SIDE, SIDE), emotion, np.asarray(USAGES, "<U11")[usage_idx]


def _scan_pixels(
    digit: np.ndarray,
    buf: np.ndarray,
    field_start: np.ndarray,
    field_end: np.ndarray,
    out: np.ndarray,
) -> bool:
    """Read some consecutive rows' pixel fields (digits and single spaces) into ``out``.

    Args:
        digit: ``(B,)`` the file's bytes minus ``ord("0")`` (uint8).
        buf: ``(B,)`` the file's bytes.
        field_start: ``(R,)`` each row's first pixel byte.
        field_end: ``(R,)`` one past each row's last pixel byte.
        out: ``(R, 2304)`` uint8, written.

    Returns:
        Whether every row holds 2,304 tokens of one to three digits with values 0-255.
    """
    lo, hi = int(field_start[0]), int(field_end[-1])
    spaces = np.flatnonzero(buf[lo:hi] == _SPACE) + lo
    rows = len(field_start)
    if len(spaces) != (N_PIXELS - 1) * rows:
        return False
    spaces = spaces.reshape(rows, N_PIXELS - 1)
    if (spaces[:, 0] <= field_start).any() or (spaces[:, -1] >= field_end - 1).any():
        return False  # each row's spaces lie inside its own field, not at its edges
    token_end = np.empty((rows, N_PIXELS), np.int64)  # one past each token's last digit
    token_end[:, :-1] = spaces
    token_end[:, -1] = field_end
    length = np.diff(token_end, axis=1, prepend=(field_start - 1)[:, None]) - 1
    if length.min() < 1 or length.max() > 3:
        return False
    token_end = token_end.ravel()
    length = length.ravel()
    value = digit[token_end - 1].astype(np.uint16)
    value += np.where(length >= 2, digit[token_end - 2], 0).astype(np.uint16) * 10
    value += np.where(length >= 3, digit[token_end - 3], 0).astype(np.uint16) * 100
    if value.max() > 255:
        return False
    out[:] = value.reshape(rows, N_PIXELS)
    return True
