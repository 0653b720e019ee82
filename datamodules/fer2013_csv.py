"""The FER2013 CSV reader: every row checked, parsed in bulk, cached as uint8 arrays.

The Kaggle file is ``emotion,pixels,Usage`` (35,887 rows of 48x48 gray faces as 2,304
space-separated values); an ``emotion,pixels`` variant counts every row as Training. A bad row
stops the parse with the file, the 1-based line and the fault, unless bad rows are skipped (and
counted). The parsed arrays are cached beside other litlab caches, keyed by the file's path, size
and modification time.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from litlab.datamodules.cache import cache_root, write_atomically
from litlab.datamodules.fer2013_scan import scan_fer2013

from litlab.errors import BadInputError

log = logging.getLogger(__name__)

FER2013_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
USAGES = ("Training", "PublicTest", "PrivateTest")
SIDE = 48
N_PIXELS = SIDE * SIDE
_PARSER_VERSION = 1
_EMOTIONS = {str(i) for i in range(7)}


class FER2013FormatError(BadInputError):
    """A FER2013 CSV (or a row of one) that cannot be used; names the file, line and fault."""


@dataclass(frozen=True)
class Fer2013Arrays:
    """A parsed FER2013 file.

    Attributes:
        images: ``(N, 48, 48)`` uint8.
        labels: ``(N,)`` int64 in ``[0, 7)``.
        usage: ``(N,)`` strings: Training, PublicTest or PrivateTest.
        skipped: Number of bad rows skipped (0 unless ``skip_bad_rows``).
    """

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    skipped: int = 0


def _row_fault(fields: list[str], is_last: bool, has_usage: bool) -> str | None:
    """Why a split row is unusable, or ``None`` when it is fine (the slow, precise check)."""
    n_fields = 3 if has_usage else 2
    if len(fields) != n_fields:
        if is_last and len(fields) < n_fields:
            return f"has {len(fields)} of {n_fields} fields: the file ends mid-row (a cut-off download?)"
        return f"has {len(fields)} comma-separated fields, expected {n_fields}"
    emotion, pixels = _unquote(fields[0]), _unquote(fields[1])
    if emotion not in _EMOTIONS:
        return f"emotion {_shown(emotion)} is not a class index 0-6"
    if has_usage and _unquote(fields[2]) not in USAGES:
        return f"Usage {_shown(_unquote(fields[2]))} is not one of {', '.join(USAGES)}"
    return _pixels_fault(pixels, is_last)


def _shown(value: str, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters (a merged row can put pixels in a field)."""
    return (
        repr(value) if len(value) <= limit else repr(value[:limit]) + f" ... ({len(value)} chars)"
    )


def _pixels_fault(pixels: str, is_last: bool) -> str | None:
    """Why a row's pixel string is unusable, or ``None`` when it holds 2,304 values 0-255."""
    tokens = pixels.split()
    bad = next((t for t in tokens if not _is_byte_value(t)), None)
    if bad is not None:
        return f"pixel value {_shown(bad)} is not an integer 0-255"
    if len(tokens) != N_PIXELS:
        cut = " (the file ends mid-row: a cut-off download?)" if is_last else ""
        return f"has {len(tokens)} pixel values, expected {N_PIXELS} (48x48){cut}"
    return None


def _is_byte_value(token: str) -> bool:
    """Whether ``token`` is an integer 0-255 written with one to three ASCII digits."""
    return token.isascii() and token.isdigit() and len(token) <= 3 and int(token) <= 255


def _unquote(field: str) -> str:
    """A CSV field without its surrounding blanks and double quotes (``"70 80"`` -> ``70 80``)."""
    field = field.strip()
    if len(field) >= 2 and field[0] == field[-1] == '"':
        field = field[1:-1].strip()
    return field


def _lines(text: str) -> list[str]:
    """The lines of a file's text, ended by LF, CRLF or CR (as editors number them)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _require_file(path: Path) -> None:
    """Raise the clear error for a missing ``path`` or one that is a folder."""
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.csv"))[:5]
        hint = f" (it holds {', '.join(inside)})" if inside else ""
        raise FER2013FormatError(
            f"FER2013 CSV {path} is a folder, not a file{hint}; pass the CSV file itself: "
            "--data.csv_path /path/to/fer2013.csv"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"FER2013 CSV not found: {path} (pass --data.csv_path /path/to/fer2013.csv)"
        )


def _read_bytes(path: Path) -> bytes:
    """The file's bytes without a UTF-8 byte-order mark."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BadInputError(
            f"cannot read FER2013 CSV {path}: {err.strerror or err}; check that the file is "
            "readable by you"
        ) from err
    return data.removeprefix(b"\xef\xbb\xbf")


def _digits_and_spaces_only(buf: np.ndarray) -> bool:
    """Whether a uint8 byte buffer holds only ASCII digits and spaces (no lookup table: fast)."""
    return bool((((buf - np.uint8(48)) <= 9) | (buf == 32)).all())


def _parse_chunk(pixels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Parse rows whose pixel strings all hold exactly 2,304 space-separated tokens.

    Rows are joined into one byte buffer; the numbers are built from their digits with at
    most three vectorised multiply-adds per token. Knowing every row has 2,304 tokens, a
    token's row is its index // 2304, so faults map back to rows without per-byte indices.

    Returns:
        ``values (M, 2304)`` uint8 for the rows that passed and ``ok (N,)`` marking them.
    """
    ok = np.ones(len(pixels), bool)
    buf = np.frombuffer(" ".join(pixels).encode("latin-1", errors="replace"), np.uint8)
    if not _digits_and_spaces_only(buf):
        # Rare: find the rows with foreign characters one by one, then parse the rest.
        ok = np.array(
            [
                _digits_and_spaces_only(np.frombuffer(p.encode("latin-1", "replace"), np.uint8))
                for p in pixels
            ]
        )
        if not ok.any():
            return np.empty((0, N_PIXELS), np.uint8), ok
        values, sub_ok = _parse_chunk([p for p, k in zip(pixels, ok, strict=True) if k])
        ok[np.flatnonzero(ok)[~sub_ok]] = False
        return values, ok
    ends = np.concatenate((np.flatnonzero(buf == 32), [len(buf)]))  # one past each token
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = (ends - starts).reshape(len(pixels), N_PIXELS)
    # Pad the front with zeros so ends-3 never underflows; '0' digits add nothing.
    digits = np.concatenate((np.zeros(3, np.uint8), buf - np.uint8(48)))
    ends = ends + 3
    ones = digits[ends - 1].astype(np.uint16)
    tens = np.where(lengths.ravel() >= 2, digits[ends - 2], 0).astype(np.uint16)
    hundreds = np.where(lengths.ravel() >= 3, digits[ends - 3], 0).astype(np.uint16)
    values = (ones + 10 * tens + 100 * hundreds).reshape(len(pixels), N_PIXELS)
    ok = (lengths.min(1) >= 1) & (lengths.max(1) <= 3) & (values.max(1) <= 255)
    return values[ok].astype(np.uint8), ok


def _parse_pixel_block(pixels: list[str], chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Parse many rows' pixel strings into ``(M, 48, 48)`` uint8, vectorised in chunks.

    Splitting 82 million tokens in Python is what makes per-row parsers slow; here each
    chunk of rows is one NumPy pass (chunks bound the memory of the byte buffers). Rows that
    separate their values otherwise (tabs, runs of spaces, blanks at the ends) are parsed again
    with single spaces.

    Returns:
        ``images (M, 48, 48)`` for the rows that passed, and ``ok (N,)`` marking which of the
        ``N`` input rows those are (the rest need the precise per-row check).
    """
    flat, ok = _parse_single_spaced(pixels, chunk)
    redo = np.flatnonzero(~ok)
    if len(redo):
        more, more_ok = _parse_single_spaced([" ".join(pixels[i].split()) for i in redo], chunk)
        if more_ok.any():
            rows = np.concatenate((np.flatnonzero(ok), redo[more_ok]))
            flat = np.concatenate((flat, more))[np.argsort(rows, kind="stable")]
            ok[redo[more_ok]] = True
    return flat.reshape(-1, SIDE, SIDE), ok


def _parse_single_spaced(pixels: list[str], chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_parse_pixel_block` for rows of 2,304 values each followed by one space.

    Returns:
        ``values (M, 2304)`` uint8 for the rows that passed and ``ok (N,)`` marking them.
    """
    ok = np.array([p.count(" ") == N_PIXELS - 1 for p in pixels], bool)
    parts = []
    idx = np.flatnonzero(ok)
    for lo in range(0, len(idx), chunk):
        rows = idx[lo : lo + chunk]
        values, sub_ok = _parse_chunk([pixels[i] for i in rows])
        ok[rows[~sub_ok]] = False
        parts.append(values)
    flat = np.concatenate(parts) if parts else np.empty((0, N_PIXELS), np.uint8)
    return flat, ok


def parse_fer2013_csv(path: str | Path, skip_bad_rows: bool = False) -> Fer2013Arrays:
    """Parse a FER2013 CSV into arrays, checking every row.

    Accepts the Kaggle ``emotion,pixels,Usage`` file and the ``emotion,pixels`` variant (all rows
    then count as Training).

    Args:
        path: The CSV file.
        skip_bad_rows: Skip unusable rows (logging how many) instead of raising.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        FER2013FormatError: A folder instead of a file, an empty file, a bad header, no usable
            row, or a bad row when ``skip_bad_rows`` is False; the message names the file, the
            1-based line number and the fault.
    """
    path = Path(path)
    _require_file(path)
    data = _read_bytes(path)
    plain = scan_fer2013(data)  # one NumPy pass over the bytes; None: read row by row below
    if plain is not None:
        return Fer2013Arrays(*plain)
    # latin-1 maps bytes 1:1 to characters, so decoding is a copy; any non-ASCII byte is then
    # rejected by the row checks like other junk.
    text = data.decode("latin-1")
    del data
    if not text.strip():
        raise FER2013FormatError(
            f"{path} is empty; expected the Kaggle FER2013 CSV (header emotion,pixels,Usage)"
        )
    lines = _lines(text)
    header = [_unquote(h).lower() for h in lines[0].split(",")]
    if header[:2] != ["emotion", "pixels"] or header[2:] not in ([], ["usage"]):
        shown = lines[0] if len(lines[0]) <= 80 else lines[0][:77] + "..."
        raise FER2013FormatError(
            f"{path} line 1: header {shown!r} is not 'emotion,pixels,Usage' (Kaggle FER2013 "
            "CSV); pass the FER2013 CSV, or fix its first line"
        )
    has_usage = len(header) == 3
    n_commas = 2 if has_usage else 1
    linenos = [i + 2 for i, line in enumerate(lines[1:]) if line.strip()]
    rows = [lines[n - 1] for n in linenos]
    # Cheap structural pass: field count, emotion and Usage; pixels are checked in bulk below.
    emotion, pixels, usage = [], [], []
    shape_ok = np.zeros(len(rows), bool)
    for i, line in enumerate(rows):
        if line.count(",") != n_commas:
            continue
        a = line.find(",")
        b = line.rfind(",") if has_usage else len(line)
        e, u = _unquote(line[:a]), _unquote(line[b + 1 :]) if has_usage else "Training"
        if e in _EMOTIONS and u in USAGES:
            shape_ok[i] = True
            emotion.append(int(e))
            pixels.append(_unquote(line[a + 1 : b]))
            usage.append(u)
    images, pix_ok = _parse_pixel_block(pixels)
    good = np.flatnonzero(shape_ok)[pix_ok]
    bad = np.setdiff1d(np.arange(len(rows)), good)
    last = len(rows) - 1
    faults = [
        (linenos[i], _row_fault(rows[i].split(","), i == last, has_usage) or "could not be parsed")
        for i in bad[: None if skip_bad_rows else 1]
    ]
    if faults and not skip_bad_rows:
        lineno, fault = faults[0]
        raise FER2013FormatError(
            f"{path} line {lineno}: row {fault}; fix or delete the row, or pass "
            "skip_bad_rows=True (--data.skip_bad_rows=true) to skip bad rows"
        )
    if faults:
        first = "; ".join(f"line {n}: {f}" for n, f in faults[:3])
        log.warning(
            "%s: skipped %d bad row(s) (%s%s)",
            path,
            len(faults),
            first,
            " ..." if len(faults) > 3 else "",
        )
    if not len(good):
        raise FER2013FormatError(
            f"{path} has no usable rows: every one of its {len(rows)} rows is bad (first: "
            f"line {faults[0][0]}: {faults[0][1]}); fix the file"
            if faults
            else f"{path} has a header but no data rows; add rows "
            "(emotion,pixels,Usage: a class index 0-6, 2304 gray values, the split)"
        )
    return Fer2013Arrays(
        images=images,
        labels=np.asarray(emotion, np.int64)[pix_ok],
        usage=np.asarray(usage, dtype="<U11")[pix_ok],
        skipped=len(faults),
    )


def _cache_key(path: Path, skip_bad_rows: bool) -> str:
    stat = path.stat()
    ident = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{skip_bad_rows}|{_PARSER_VERSION}"
    return hashlib.sha1(ident.encode()).hexdigest()[:16]


def load_fer2013_cached(
    path: str | Path, skip_bad_rows: bool = False, cache_dir: Path | None = None
) -> Fer2013Arrays:
    """:func:`parse_fer2013_csv` with an on-disk ``.npz`` cache keyed by path, size and mtime.

    The first call parses (seconds for the full 35,887-row file); later calls load the arrays
    (well under a second). Editing the CSV invalidates the cache.
    """
    path = Path(path)
    _require_file(path)
    cache_dir = cache_dir or cache_root() / "fer2013"
    cached = cache_dir / f"{path.stem}-{_cache_key(path, skip_bad_rows)}.npz"
    if cached.is_file():
        try:
            with np.load(cached) as z:
                return Fer2013Arrays(
                    z["images"], z["labels"], z["usage"].astype(str), int(z["skipped"])
                )
        except (OSError, ValueError, KeyError, EOFError) as err:
            log.warning("ignoring unreadable cache %s (%s); parsing %s again", cached, err, path)
    arrays = parse_fer2013_csv(path, skip_bad_rows)
    write_atomically(cached, lambda tmp: np.savez(
        tmp, images=arrays.images, labels=arrays.labels, usage=arrays.usage, skipped=arrays.skipped
    ))  # fmt: skip
    log.info("parsed %s (%d rows) and cached it at %s", path, len(arrays.labels), cached)
    return arrays


@dataclass(frozen=True)
class PixelRows:
    """The rows of a FER2013-format CSV read for prediction (:func:`read_pixels_csv`).

    Attributes:
        images: ``(N, 48, 48)`` uint8.
        lines: ``(N,)`` 1-based line number of each row in the file.
        labels: ``(N,)`` int64 emotion, ``-1`` where the file has no emotion column or the cell
            is empty.
        usage: ``(N,)`` the Usage cell (``""`` where there is none).
        skipped: Bad rows skipped (0 unless ``skip_bad_rows``).
    """

    images: np.ndarray
    lines: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    skipped: int = 0


def read_pixels_csv(path: str | Path, skip_bad_rows: bool | None = False) -> PixelRows:
    """Read a FER2013-format CSV to predict on: ``pixels`` required, ``emotion``/``Usage`` optional.

    The columns may come in any order and others may sit beside them (cells are split on commas,
    so no cell may hold one). An empty emotion cell is an unknown label.

    Args:
        path: The CSV file.
        skip_bad_rows: Skip unusable rows (logged) instead of raising; ``None`` also raises,
            without suggesting the ``--data.skip_bad_rows`` option (a DataModule without it).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        FER2013FormatError: No ``pixels`` column, no rows, or a bad row (file, line and fault
            named) unless skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"CSV {path} does not exist; pass a FER2013-format CSV with a pixels column"
        )
    text = path.read_bytes().removeprefix(b"\xef\xbb\xbf").decode("latin-1")
    lines = text.splitlines()
    header = [h.strip().lower() for h in lines[0].split(",")] if lines else []
    if "pixels" not in header or len(set(header)) != len(header):
        raise FER2013FormatError(
            f"{path} line 1: header {lines[0] if lines else ''!r} needs one 'pixels' column "
            f"({N_PIXELS} space-separated gray values 0-255 per row, 48x48); 'emotion' and "
            "'Usage' columns are optional"
        )
    col = {name: header.index(name) for name in ("emotion", "pixels", "usage") if name in header}
    rows = [(n, line) for n, line in enumerate(lines[1:], start=2) if line.strip()]
    if not rows:
        raise FER2013FormatError(f"{path} has a header but no rows to predict")
    pixels, emotions, usages, faults = [], [], [], {}
    for i, (_, line) in enumerate(rows):
        fields = line.split(",")
        cell = {name: fields[j].strip() if j < len(fields) else "" for name, j in col.items()}
        emotion, usage = cell.get("emotion", ""), cell.get("usage", "")
        if len(fields) != len(header):
            cut = " (the file ends mid-row?)" if i == len(rows) - 1 else ""
            faults[i] = f"has {len(fields)} comma-separated fields, expected {len(header)}{cut}"
        elif emotion and emotion not in _EMOTIONS:
            faults[i] = f"emotion {emotion!r} is not a class index 0-6 (or empty)"
        elif usage and usage not in USAGES:
            faults[i] = f"Usage {usage!r} is not one of {', '.join(USAGES)} (or empty)"
        pixels.append("" if i in faults else cell["pixels"])
        emotions.append(int(emotion) if emotion and i not in faults else -1)
        usages.append(usage)
    images, ok = _parse_pixel_block(pixels)
    for i in np.flatnonzero(~ok):
        if int(i) not in faults:
            is_last = int(i) == len(rows) - 1
            faults[int(i)] = _pixels_fault(pixels[i], is_last) or "could not be parsed"
    if faults and not skip_bad_rows:
        i = min(faults)
        hint = "" if skip_bad_rows is None else ", or pass --data.skip_bad_rows=true to skip it"
        raise FER2013FormatError(
            f"{path} line {rows[i][0]}: row {faults[i]}; fix or delete the row{hint}"
        )
    if faults:
        shown = "; ".join(f"line {rows[i][0]}: {faults[i]}" for i in sorted(faults)[:3])
        log.warning("%s: skipped %d bad row(s) (%s)", path, len(faults), shown)
    return PixelRows(
        images=images,
        lines=np.asarray([n for n, _ in rows], np.int64)[ok],
        labels=np.asarray(emotions, np.int64)[ok],
        usage=np.asarray(usages, dtype="<U11")[ok],
        skipped=len(faults),
    )
