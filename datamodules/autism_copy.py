"""The background-removed copy of a face folder: its files and the manifest that says how it was made.

``litlab workflow remove-background`` (the middle step of ``litlab workflow
segment-then-classify``) predicts a face mask for every image with a trained face segmenter and
removes the background outside it. It writes, mirroring the source folder's layout::

    <copy>/images/<split>/<class>/<stem>.png   background-removed images at image_size
    <copy>/masks/<split>/<class>/<stem>.png    the predicted masks (255 = face)
    <copy>/preview.png                         image / mask / result rows of some images
    <copy>/copy.json                           this manifest, written last

:class:`litlab.datamodules.autism.AutismSegmentedDataModule` serves such a copy: it reads the
manifest with :func:`read_segmented_copy` and checks it against its own options. No model is
involved on this side; the copy is data.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from litlab.datamodules.cache import write_atomically

MANIFEST = "copy.json"
IMAGES_DIR = "images"
MASKS_DIR = "masks"
PREVIEW = "preview.png"
_MANIFEST_VERSION = 1


@dataclass(frozen=True)
class SegmentedCopy:
    """A background-removed copy (module docstring).

    Attributes:
        root: The copy's folder.
        source_root: The folder it copies.
        image_size: Side of every image and mask.
        background: ``"zero"`` or ``"blur"``: what replaced the background.
        blur_sigma: Gaussian sigma of ``"blur"``.
        segmenter_checkpoint: The face segmenter's checkpoint that predicted the masks.
        segmenter: Its architecture, e.g. ``"DeepLabV3Plus/resnet50"``.
        images: How many images the copy holds.
        limit_per_folder: Only the first this many images of each folder were copied (a smoke
            copy), or ``None`` for all.
    """

    root: Path
    source_root: Path
    image_size: int
    background: str
    blur_sigma: float
    segmenter_checkpoint: str
    segmenter: str
    images: int
    limit_per_folder: int | None = None

    @property
    def images_root(self) -> Path:
        """The background-removed images, in the source's layout."""
        return self.root / IMAGES_DIR

    @property
    def masks_root(self) -> Path:
        """The masks, in the same layout."""
        return self.root / MASKS_DIR

    def as_json(self) -> dict[str, Any]:
        """The manifest's contents."""
        out = asdict(self)
        out.pop("root")
        return {
            "version": _MANIFEST_VERSION,
            **out,
            "source_root": str(self.source_root),
        }


def write_manifest(copy: SegmentedCopy) -> Path:
    """Write ``<copy>/copy.json`` atomically: the last file of a finished copy."""
    text = json.dumps(copy.as_json(), indent=2)
    return write_atomically(copy.root / MANIFEST, lambda tmp: tmp.write_text(text))


def read_segmented_copy(root: str | Path) -> SegmentedCopy:
    """The copy at ``root``, from its manifest.

    Raises:
        FileNotFoundError: ``root`` holds no finished copy (the message says how to make one).
        ValueError: The manifest is unreadable or from another version.
    """
    root = Path(root).expanduser()
    path = root / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{root} is not a finished background-removed copy (no {MANIFEST}); make one with "
            "`litlab workflow segment-then-classify --data.root <faces>` (it trains the face "
            "segmenter, writes the copy and classifies it) or `litlab workflow remove-background "
            "--checkpoint <segmenter.ckpt> --images <faces> --out <copy>`"
        )
    try:
        raw = json.loads(path.read_text())
        if raw.get("version") != _MANIFEST_VERSION:
            raise ValueError(f"version {raw.get('version')!r}, expected {_MANIFEST_VERSION}")
        raw.pop("version")
        raw["source_root"] = Path(raw["source_root"])
        return SegmentedCopy(root=root, **raw)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"cannot read {path} ({err}); delete {root} and make the copy again"
        ) from err
