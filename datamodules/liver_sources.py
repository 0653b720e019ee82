"""Liver CT data on disk: find slice folders and NIfTI volumes under a root, and whose each one is.

Two real layouts are understood, alone or side by side under one root:

* **Slice folders**: ``images/*.png`` with ``masks/*.png`` of the same names.
* **NIfTI volumes** (LiTS naming): ``volume-<id>.nii[.gz]`` with ``segmentation-<id>.nii[.gz]``.

Patients, which the split keeps together:

* a NIfTI volume is one patient, ``volume-<id>``;
* slice folders: when several ``<name>/images`` + ``<name>/masks`` folders share a parent
  directory, each ``<name>`` is one patient. A slice folder alone in its directory (for example
  ``root/images`` or ``root/slices/images``) is flat: the patient is read from each file stem with
  ``patient_regex`` (default :data:`DEFAULT_PATIENT_REGEX`: everything before an optional
  ``_slice``/``-slice`` and the trailing number, so ``p07_slice012.png`` and ``volume-3_45.png``
  belong to ``p07`` and ``volume-3``).
* the same id anywhere under the root is the same patient, so a volume also exported as PNG
  slices named ``volume-<id>_<n>.png`` can never land in two splits.

:mod:`litlab.datamodules.liver_decode` turns the found sources into slices.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from litlab.errors import BadInputError

#: Patient = the file stem before an optional ``_slice``/``-slice`` and the trailing number.
DEFAULT_PATIENT_REGEX = r"(?P<patient>.+?)(?:[_ -]?slice)?[_ -]?(?<!\d)\d+"
LAYOUTS = ("auto", "slices", "nifti")

_VOLUME_RE = re.compile(r"volume-(?P<id>.+?)\.nii(?:\.gz)?", re.IGNORECASE)
_SEGMENTATION_RE = re.compile(r"segmentation-(?P<id>.+?)\.nii(?:\.gz)?", re.IGNORECASE)


@dataclass(frozen=True)
class LiverSource:
    """One decodable unit: a PNG image/mask pair or a NIfTI volume/segmentation pair."""

    kind: str  # "png" or "nifti"
    patient: str
    image: Path
    mask: Path


def discover_sources(
    root: Path, layout: str = "auto", patient_regex: str = DEFAULT_PATIENT_REGEX
) -> list[LiverSource]:
    """Every image/mask pair under ``root`` in the requested layout(s), sorted.

    Raises:
        FileNotFoundError: ``root`` is missing or holds no data of the layout.
        BadInputError: an image without mask (or the reverse), duplicate volume ids, a file name
            the patient regex cannot read.
    """
    if layout not in LAYOUTS:
        raise BadInputError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"liver data root {root} does not exist or is not a directory; pass the folder that "
            "holds images/ + masks/ slice folders or volume-*.nii[.gz] files (or root=None for "
            "the generated phantoms)"
        )
    sources: list[LiverSource] = []
    if layout in ("auto", "nifti"):
        sources += _nifti_sources(root)
    if layout in ("auto", "slices"):
        sources += _png_sources(root, patient_regex)
    if not sources:
        wanted = {
            "auto": "slice folders (images/*.png + masks/*.png) or NIfTI volumes "
            "(volume-*.nii[.gz] + segmentation-*.nii[.gz])",
            "slices": "slice folders (images/*.png + masks/*.png with the same names)",
            "nifti": "NIfTI volumes (volume-*.nii[.gz] + segmentation-*.nii[.gz])",
        }[layout]
        raise FileNotFoundError(f"no liver data under {root}: expected {wanted}")
    return sources


def _nifti_sources(root: Path) -> list[LiverSource]:
    volumes: dict[str, Path] = {}
    segmentations: dict[str, Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        for pattern, found in ((_VOLUME_RE, volumes), (_SEGMENTATION_RE, segmentations)):
            match = pattern.fullmatch(path.name)
            if match:
                key = match["id"]
                if key in found:
                    raise BadInputError(
                        f"two files for id {key!r}: {found[key]} and {path}; keep one "
                        "(volume ids must be unique under the root)"
                    )
                found[key] = path
    for key in sorted(volumes.keys() - segmentations.keys()):
        raise BadInputError(
            f"volume {volumes[key]} has no segmentation-{key}.nii[.gz]; add the segmentation "
            "or move the volume out of the data root"
        )
    for key in sorted(segmentations.keys() - volumes.keys()):
        raise BadInputError(
            f"segmentation {segmentations[key]} has no volume-{key}.nii[.gz]; add the volume "
            "or move the segmentation out of the data root"
        )
    return [
        LiverSource("nifti", f"volume-{key}", volumes[key], segmentations[key])
        for key in sorted(volumes, key=_natural_key)
    ]


def _png_sources(root: Path, patient_regex: str) -> list[LiverSource]:
    try:
        pattern = re.compile(patient_regex)
    except re.error as err:
        raise BadInputError(f"patient_regex {patient_regex!r} is not a valid regex: {err}") from err
    folders = []
    for candidate in sorted([root, *(p for p in root.rglob("*") if p.is_dir())]):
        images, masks = candidate / "images", candidate / "masks"
        if images.is_dir() and masks.is_dir():
            folders.append(candidate)
        elif images.is_dir() != masks.is_dir() and _pngs(images if images.is_dir() else masks):
            present, absent = (images, masks) if images.is_dir() else (masks, images)
            raise BadInputError(
                f"{present} has no sibling {absent.name}/ folder; slice folders need both "
                f"images/ and masks/ (same file names) — add {absent}"
            )
    siblings: dict[Path, int] = defaultdict(int)
    for folder in folders:
        siblings[folder.parent] += 1
    sources = []
    for folder in folders:
        per_patient = siblings[folder.parent] > 1
        sources += _pair_pngs(folder, folder.name if per_patient else None, pattern)
    return sources


def _pngs(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png"}


def _pair_pngs(folder: Path, patient: str | None, pattern: re.Pattern) -> list[LiverSource]:
    images, masks = _pngs(folder / "images"), _pngs(folder / "masks")
    for names, have, lack, what in (
        (sorted(images.keys() - masks.keys()), "image", "masks", "mask"),
        (sorted(masks.keys() - images.keys()), "mask", "images", "image"),
    ):
        if names:
            more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
            raise BadInputError(
                f"{have} {folder / (have + 's') / names[0]}{more} has no {what} "
                f"{folder / lack / names[0]}; add the {what} with the same file name or remove "
                f"the {have}"
            )
    sources = []
    for name in sorted(images, key=_natural_key):
        sources.append(
            LiverSource(
                "png",
                patient if patient is not None else _patient_from_name(images[name], pattern),
                images[name],
                masks[name],
            )
        )
    return sources


def _patient_from_name(path: Path, pattern: re.Pattern) -> str:
    match = pattern.fullmatch(path.stem)
    patient = None
    if match:
        patient = match.groupdict().get("patient") or (match.group(1) if match.re.groups else None)
    if not patient:
        raise BadInputError(
            f"cannot tell the patient of {path}: patient_regex {pattern.pattern!r} does not "
            "find one in its name. Name slices '<patient>_slice<N>.png', put each patient in "
            "'<patient>/images' + '<patient>/masks', or pass patient_regex with a named group "
            "'patient' ('(?P<patient>.+)' makes every slice its own patient, which leaks "
            "neighbouring slices of one scan into different splits)"
        )
    return patient


def _natural_key(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
