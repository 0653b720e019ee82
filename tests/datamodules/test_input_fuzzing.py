"""Fuzzing the loaders of users' files: a mutated file parses validly or fails with BadInputError.

Random byte mutations (replace, insert, delete, truncate) and field mutations of valid inputs go
through the FER2013 parsers, the class-folder loader and the liver loaders (PNG slices, NIfTI and
gzipped NIfTI volumes). Each example must either parse into valid arrays or raise
:class:`~litlab.errors.BadInputError` naming a file, never another exception. The FER2013 parser is
also checked against a plain per-row reference reading: the same rows accepted, the same values,
and the first bad row named by its line.

``make test`` runs a few dozen examples per loader (seconds); ``make test-full`` sets
``LITLAB_FUZZ=long`` for 500 per loader.
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
import zlib
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litlab.datamodules.fer2013_csv import (
    FER2013FormatError,
    parse_fer2013_csv,
    read_pixels_csv,
)
from litlab.datamodules.folders import index_class_folders, load_images
from litlab.datamodules.liver_decode import decode_sources
from litlab.datamodules.liver_sources import discover_sources

from litlab.errors import BadInputError

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("litlab-fuzz-short", max_examples=40, **_COMMON)
settings.register_profile("litlab-fuzz-long", max_examples=500, **_COMMON)
PROFILE = settings.get_profile(
    "litlab-fuzz-long" if os.environ.get("LITLAB_FUZZ") == "long" else "litlab-fuzz-short"
)

# -- mutations ----------------------------------------------------------------------------------
_BYTE_OP = st.one_of(
    st.tuples(st.just("replace"), st.floats(0, 1), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 3000)),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0)),
)
BYTE_MUTATIONS = st.lists(_BYTE_OP, min_size=1, max_size=4)

# Header fields set to odd values, checksums kept valid so the value itself is what is tested:
# a PNG's IHDR (offset, struct format) and a NIfTI-1 header (offset, format, count).
_PNG_FIELDS = {"width": (16, ">I"), "height": (20, ">I"), "depth": (24, "B"), "color": (25, "B")}
_NIFTI_FIELDS = {
    "dim": (40, "<h"), "dim1": (42, "<h"), "dim2": (44, "<h"), "dim3": (46, "<h"),
    "dim4": (48, "<h"), "datatype": (70, "<h"), "bitpix": (72, "<h"), "pixdim1": (80, "<f"),
    "pixdim3": (88, "<f"), "vox_offset": (108, "<f"), "scl_slope": (112, "<f"),
    "scl_inter": (116, "<f"), "qform_code": (252, "<h"), "sform_code": (254, "<h"),
    "quatern_b": (256, "<f"), "srow_x0": (280, "<f"), "srow_x1": (284, "<f"),
    "srow_y1": (300, "<f"), "srow_z2": (320, "<f"), "srow_z3": (324, "<f"),
}  # fmt: skip
_ODD_INTS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64, 255, 512, 1536, 40000, 65535, 2**31 - 1, -1]
_ODD_FLOATS = [0.0, -1.0, 1e-30, 1e30, float("nan"), float("inf"), 352.0, 1e9]
_PNG_FIELD = st.tuples(
    st.just("png"), st.sampled_from(sorted(_PNG_FIELDS)), st.sampled_from(_ODD_INTS)
)
# Each NIfTI field takes odd values of its own type (float fields: NaN, inf, 0 ...).
_NIFTI_FIELD = st.one_of(
    *(
        st.tuples(
            st.just("nifti"),
            st.just(name),
            st.sampled_from(_ODD_FLOATS if fmt == "<f" else _ODD_INTS),
        )
        for name, (_, fmt) in sorted(_NIFTI_FIELDS.items())
    )
)
_FIELD_MUTATION = st.one_of(_PNG_FIELD, _NIFTI_FIELD)
MUTATIONS = st.lists(st.one_of(_BYTE_OP, _FIELD_MUTATION), min_size=1, max_size=4)


def _set_field(out: bytearray, kind: str, name: str, value: float) -> None:
    """Set one PNG IHDR or NIfTI header field (ignored for a file of the other kind)."""
    if kind == "png" and out[:8] == b"\x89PNG\r\n\x1a\n" and len(out) >= 33:
        offset, fmt = _PNG_FIELDS[name]
        bound = 2**32 - 1 if fmt == ">I" else 255
        out[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, int(value) % (bound + 1))
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    elif kind == "nifti" and len(out) >= 348 and out[:4] == struct.pack("<i", 348):
        offset, fmt = _NIFTI_FIELDS[name]
        if fmt == "<h":  # a float for an integer field: its nearest int16 (NaN: 0)
            value = max(-(2**15), min(2**15 - 1, value)) if value == value else 0
            value = int(value)
        out[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)


def mutate(data: bytes, ops: list[tuple], head: int | None = None) -> bytes:
    """Apply byte and field mutations; byte positions are fractions of the length (of
    ``data[:head]`` if set)."""
    out = bytearray(data)
    for op, where, arg in ops:
        if op in ("png", "nifti"):
            _set_field(out, op, where, arg)
            continue
        span = min(len(out), head) if head else len(out)
        at = min(int(where * span), max(len(out) - 1, 0))
        if op == "replace":
            out[at : at + len(arg)] = arg
        elif op == "insert":
            out[at:at] = arg
        elif op == "delete":
            del out[at : at + arg]
        else:
            del out[at:]
    return bytes(out)


# -- FER2013 ------------------------------------------------------------------------------------
USAGES = ("Training", "PublicTest", "PrivateTest")
_RNG = np.random.default_rng(0)
_PIXELS = [_RNG.integers(0, 256, 2304) for _ in range(3)]
FER_VALID = "emotion,pixels,Usage\n" + "".join(
    f"{i * 2},{' '.join(map(str, p))},{USAGES[i]}\n" for i, p in enumerate(_PIXELS)
)
# Latin-1 characters a user's file may hold where a field should be: digits of other scripts
# (str.isdigit is true for superscripts), whitespace that str.split knows, quotes, signs.
_FIELD_CHARS = st.sampled_from(list('0123456789 ,\t\r\n"-+.eE²³¹½\x85\xa0\x0c\x1cTrainigPubl'))
_FIELD_TEXT = st.one_of(
    st.sampled_from(["256", "-1", "00", "0007", "1e2", "²", "", " ", '"5"', "7", "Training "]),
    st.text(_FIELD_CHARS, max_size=12),
)
_FIELD_OP = st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2303), _FIELD_TEXT)


def mutate_fields(text: str, ops: list[tuple[int, int, int, str]]) -> str:
    """Replace a row's field (0 emotion, 2 Usage) or one pixel token (field 1) by ``new``."""
    lines = text.split("\n")
    for row, field, token, new in ops:
        fields = lines[1 + row].split(",")
        if field < len(fields):
            if field == 1:
                tokens = fields[1].split(" ")
                tokens[token % len(tokens)] = new
                fields[1] = " ".join(tokens)
            else:
                fields[field] = new
        lines[1 + row] = ",".join(fields)
    return "\n".join(lines)


def _unquote(field: str) -> str:
    field = field.strip()
    return field[1:-1].strip() if len(field) >= 2 and field[0] == field[-1] == '"' else field


def reference_rows(data: bytes) -> tuple[bool, list[tuple[int, int, list[int], str]], list[int]]:
    """A plain reading of a FER2013 CSV: header ok, good rows (line, emotion, pixels, usage),
    and the line numbers of bad rows."""
    text = data.removeprefix(b"\xef\xbb\xbf").decode("latin-1")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    header = [_unquote(h).lower() for h in lines[0].split(",")]
    if header not in (["emotion", "pixels", "usage"], ["emotion", "pixels"]):
        return False, [], []
    good, bad = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = [_unquote(f) for f in line.split(",")]
        usage = fields[2] if len(header) == 3 and len(fields) == 3 else "Training"
        tokens = fields[1].split() if len(fields) == len(header) else []
        if (
            len(fields) == len(header)
            and fields[0] in {str(i) for i in range(7)}
            and usage in USAGES
            and len(tokens) == 2304
            and all(t.isascii() and t.isdigit() and len(t) <= 3 and int(t) <= 255 for t in tokens)
        ):
            good.append((number, int(fields[0]), [int(t) for t in tokens], usage))
        else:
            bad.append(number)
    return True, good, bad


def check_fer2013(path: Path) -> None:
    """``parse_fer2013_csv`` (strict and skipping) agrees with :func:`reference_rows`."""
    header_ok, good, bad = reference_rows(path.read_bytes())
    for skip in (False, True):
        try:
            data = parse_fer2013_csv(path, skip_bad_rows=skip)
        except FER2013FormatError as err:
            message = str(err)
            assert str(path) in message
            if header_ok and bad and not skip:
                assert f"line {bad[0]}:" in message, (message, bad[:3])
            else:
                assert not header_ok or not good, message
            continue
        assert header_ok and good and (skip or not bad)
        assert data.images.shape == (len(good), 48, 48) and data.images.dtype == np.uint8
        assert data.labels.tolist() == [g[1] for g in good]
        assert data.usage.tolist() == [g[3] for g in good]
        np.testing.assert_array_equal(data.images.reshape(len(good), -1), [g[2] for g in good])
        assert data.skipped == (len(bad) if skip else 0)


def check_pixels_csv(path: Path) -> None:
    """``read_pixels_csv`` (prediction inputs) parses or raises the clear error."""
    try:
        rows = read_pixels_csv(path, skip_bad_rows=True)
    except BadInputError as err:
        assert str(path) in str(err)
        return
    assert rows.images.shape[1:] == (48, 48) and len(rows.lines) == len(rows.images)


@settings(PROFILE)
@given(ops=BYTE_MUTATIONS)
def test_fer2013_parser_survives_byte_mutations(ops):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fer.csv"
        path.write_bytes(mutate(FER_VALID.encode(), ops))
        check_fer2013(path)
        check_pixels_csv(path)


@settings(PROFILE)
@given(ops=st.lists(_FIELD_OP, min_size=1, max_size=3), crlf=st.booleans())
def test_fer2013_parser_survives_field_mutations(ops, crlf):
    text = mutate_fields(FER_VALID, ops)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fer.csv"
        path.write_bytes(text.replace("\n", "\r\n" if crlf else "\n").encode("latin-1"))
        check_fer2013(path)
        check_pixels_csv(path)


def test_reference_and_parser_agree_on_the_valid_file(tmp_path):
    path = tmp_path / "fer.csv"
    path.write_text(FER_VALID)
    check_fer2013(path)
    assert len(parse_fer2013_csv(path).labels) == 3


# -- class folders ------------------------------------------------------------------------------
def _png(seed: int, size: int = 8, channels: int = 1) -> bytes:
    shape = (size, size) if channels == 1 else (size, size, channels)
    image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


@settings(PROFILE)
@given(
    ops=MUTATIONS,
    victim=st.integers(0, 3),
    in_header=st.booleans(),
    color=st.sampled_from(["gray", "rgb"]),
    size=st.sampled_from([None, 8]),
)
def test_class_folder_loader_survives_byte_mutations(ops, victim, in_header, color, size):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        files = []
        for i, (name, channels) in enumerate([("a", 1), ("a", 3), ("b", 1), ("b", 1)]):
            path = root / name / f"img{i}.png"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(_png(i, channels=channels))
            files.append(path)
        target = files[victim]
        target.write_bytes(mutate(target.read_bytes(), ops, head=33 if in_header else None))
        try:
            index = index_class_folders(root)
            images = load_images(index.paths, size, color)
        except BadInputError as err:
            assert str(root) in str(err), err
            return
        assert images.dtype == np.uint8 and len(images) == 4
        assert images.shape[1:3] == (8, 8) or size is None


# -- liver --------------------------------------------------------------------------------------
def _liver_root(root: Path, pngs: bool = True) -> list[Path]:
    """A PNG slice pair (unless ``pngs`` is False), a NIfTI and a gzipped NIfTI volume with their
    segmentations."""
    rng = np.random.default_rng(3)
    files = []
    if pngs:
        (root / "images").mkdir()
        (root / "masks").mkdir()
        mask = np.zeros((16, 16), np.uint8)
        mask[4:10, 5:12] = 255
        cv2.imwrite(str(root / "images" / "p1_0.png"), rng.integers(0, 256, (16, 16), np.uint8))
        cv2.imwrite(str(root / "masks" / "p1_0.png"), mask)
        files += [root / "images" / "p1_0.png", root / "masks" / "p1_0.png"]
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    for key, suffix in (("1", ".nii"), ("2", ".nii.gz")):
        volume = rng.integers(-200, 500, (16, 16, 3)).astype(np.int16)
        labels = np.zeros((16, 16, 3), np.uint8)
        labels[3:9, 4:11, 1] = 1
        for name, array in (("volume", volume), ("segmentation", labels)):
            path = root / f"{name}-{key}{suffix}"
            nib.save(nib.Nifti1Image(array, affine), path)
            files.append(path)
    return files


def _mutate_file(path: Path, ops: list[tuple], in_header: bool) -> None:
    if path.name.endswith(".gz") and (in_header or any(op[0] == "nifti" for op in ops)):
        inner = gzip.decompress(path.read_bytes())  # mutate the NIfTI inside the gzip
        path.write_bytes(gzip.compress(mutate(inner, ops, head=348 if in_header else None)))
        return
    head = 348 if path.suffix == ".nii" else 33  # the NIfTI header, or a PNG's IHDR
    path.write_bytes(mutate(path.read_bytes(), ops, head=head if in_header else None))


def check_liver(root: Path, spacing: float | None = None) -> None:
    """Discovery and decoding of ``root`` give valid slices or a BadInputError naming a file."""
    try:
        sources = discover_sources(root)
        slices = decode_sources(sources, 16, (-100, 400), spacing=spacing, workers=1)
    except BadInputError as err:
        assert str(root) in str(err), err
        return
    n = len(slices.images)
    assert slices.images.shape == (n, 16, 16) and slices.images.dtype == np.uint8
    assert slices.masks.shape == (n, 16, 16) and int(slices.masks.max()) <= 2
    assert len(slices.patients) == len(slices.names) == len(slices.spacing) == n


_PNG_MUTATIONS = st.lists(st.one_of(_BYTE_OP, _PNG_FIELD), min_size=1, max_size=3)
_NIFTI_MUTATIONS = st.lists(st.one_of(_NIFTI_FIELD, _BYTE_OP), min_size=1, max_size=3)


@settings(PROFILE)
@given(ops=_PNG_MUTATIONS, mask=st.booleans(), in_header=st.booleans())
def test_liver_slice_pngs_survive_mutations(ops, mask, in_header):
    with tempfile.TemporaryDirectory() as folder:
        files = _liver_root(Path(folder))
        _mutate_file(files[int(mask)], ops, in_header)
        check_liver(Path(folder))


@settings(PROFILE)
@given(
    ops=_NIFTI_MUTATIONS,
    victim=st.sampled_from([0, 2, 0, 2, 1, 3]),  # volumes (0, 2) twice as often
    in_header=st.booleans(),
    spacing=st.sampled_from([None, 1.0]),
)
def test_liver_nifti_volumes_survive_mutations(ops, victim, in_header, spacing):
    with tempfile.TemporaryDirectory() as folder:
        files = _liver_root(Path(folder), pngs=False)
        _mutate_file(files[victim], ops, in_header)
        check_liver(Path(folder), spacing)


def test_liver_fixture_decodes_unmutated(tmp_path):
    _liver_root(tmp_path)
    slices = decode_sources(discover_sources(tmp_path), 16, (-100, 400), workers=1)
    assert len(slices.images) == 7  # one PNG slice and two volumes of three


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("srow_x0", float("nan"), "affine of its header"),
        ("srow_y1", 0.0, "affine of its header"),
        ("pixdim1", 1e9, "resampling to data.spacing"),
        ("scl_slope", 1e30, "outside the classes"),
    ],
)
def test_liver_header_faults_found_by_fuzzing_stay_clear(tmp_path, field, value, message):
    files = _liver_root(tmp_path, pngs=False)
    victim = files[1] if field == "scl_slope" else files[0]  # labels, else the volume
    if field == "pixdim1":  # the spacing comes from pixdim only without qform and sform
        _mutate_file(victim, [("nifti", "qform_code", 0), ("nifti", "sform_code", 0)], False)
    _mutate_file(victim, [("nifti", field, value)], False)
    with pytest.raises(BadInputError, match=message):
        decode_sources(discover_sources(tmp_path), 16, (-100, 400), spacing=1.0, workers=1)
