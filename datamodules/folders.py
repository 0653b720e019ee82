"""Class-folder image datasets (``root/<class>/<image>``): index once, decode once, cache as uint8.

The arrays returned here feed :class:`litlab.datamodules.arrays.ArrayDataset`. Any dataset laid out as one
folder per class (CK+48, the autism faces, the face-expression folders) uses these two functions:

>>> index = index_class_folders("CK+48")                       # doctest: +SKIP
>>> images = load_images(index.paths, size=48, cache_dir=cache_root() / "ckplus")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from litlab.datamodules.cache import read_cached, write_atomically
from tqdm.auto import tqdm

from litlab.errors import BadInputError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""File suffixes treated as images (compared case-insensitively)."""

COLORS: tuple[str, ...] = ("gray", "rgb")

# Bump when the decoding/resizing code changes, so stale caches are never reused.
_CACHE_VERSION = 1
# OpenCV's default CV_IO_MAX_IMAGE_PIXELS: larger images are refused before decoding.
_MAX_PIXELS = 1 << 30


@dataclass(frozen=True)
class FolderIndex:
    """The images found under a class-folder root.

    Attributes:
        paths: Image files, grouped by class in ``classes`` order, sorted by name within a class.
        labels: ``(N,)`` int64 class index of each path (an index into ``classes``).
        classes: Class names; label ``i`` is ``classes[i]``.
    """

    paths: list[Path]
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        """Images per class, in ``classes`` order."""
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(c) for name, c in zip(self.classes, counts, strict=True)}


def is_image_file(path: Path) -> bool:
    """True for a regular file whose suffix is in :data:`IMAGE_EXTENSIONS` (any case)."""
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def class_folder_names(root: str | Path, required: bool = False) -> list[str]:
    """The class folders of a ``root/<class>/<image>`` tree: visible sub-folders, sorted by name.

    Args:
        root: The tree's root.
        required: Raise when there is none (the classes are the folders), instead of ``[]``.

    Raises:
        FileNotFoundError: ``root`` does not exist or is not a folder.
        BadInputError: ``required`` and ``root`` holds no class folder.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise FileNotFoundError(
            f"image folder root {root} {what}; expected a folder laid out as <root>/<class>/<image>"
        )
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if required and not names:
        raise BadInputError(
            f"{root} has no class sub-folders; expected <root>/<class>/<image> "
            "(one folder per class)"
        )
    return names


def index_class_folders(root: str | Path, classes: Sequence[str] | None = None) -> FolderIndex:
    """List ``root/<class>/<image>`` files with integer labels.

    Only files directly inside a class folder count; hidden entries (names starting with ``.``)
    are skipped; other non-image files are ignored and their count is logged.

    Args:
        root: Folder holding one sub-folder per class.
        classes: Class folders to use, in label order. ``None`` uses every sub-folder, sorted by
            name. Folders not listed are ignored (logged).

    Returns:
        The paths, their labels and the class names.

    Raises:
        FileNotFoundError: ``root`` does not exist or is not a folder, or a requested class
            folder is missing.
        ValueError: ``root`` has no class folders, a class folder holds no images, or
            ``classes`` is empty or repeats a name.
    """
    root = Path(root).expanduser()
    found = class_folder_names(root, required=classes is None)
    if classes is None:
        names = found
    else:
        names = list(classes)
        if not names:
            raise BadInputError("classes is empty; pass None to use every sub-folder of the root")
        if len(set(names)) != len(names):
            raise BadInputError(f"classes repeats a name: {names}")
        missing = [c for c in names if c not in found]
        if missing:
            raise FileNotFoundError(
                f"class folder(s) {missing} not found under {root}; it holds {found}. Add or "
                f"rename folders so that each of the classes {names} has one"
            )
        extra = [c for c in found if c not in names]
        if extra:
            log.info("%s: ignoring folders not in classes: %s", root, extra)

    paths: list[Path] = []
    labels: list[int] = []
    ignored = 0
    for label, name in enumerate(names):
        entries = sorted(p for p in (root / name).iterdir() if not p.name.startswith("."))
        images = [p for p in entries if is_image_file(p)]
        ignored += len(entries) - len(images)
        if not images:
            fix = (
                "add images to it, or delete the empty folder"
                if classes is None
                else f"add images to it (this dataset needs each of the classes {names})"
            )
            raise BadInputError(
                f"class folder {root / name} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                + fix
            )
        paths.extend(images)
        labels.extend([label] * len(images))
    if ignored:
        log.info("%s: ignored %d non-image entries in class folders", root, ignored)
    return FolderIndex(paths=paths, labels=np.asarray(labels, dtype=np.int64), classes=names)


def _target_hw(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or any(int(s) < 1 for s in hw):
        raise BadInputError(f"size must be a positive int or (height, width), got {size!r}")
    return int(hw[0]), int(hw[1])


def decode_image(path: Path, color: str = "gray") -> np.ndarray:
    """One image file as uint8 ``(H, W)`` gray or ``(H, W, 3)`` RGB; a clear error if unreadable."""
    # imdecode from bytes (not imread) so non-ASCII paths work on every platform.
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise FileNotFoundError(f"cannot read image file {path}: {err}") from err
    flag = cv2.IMREAD_GRAYSCALE if color == "gray" else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(data, flag) if data.size else None
    except cv2.error as err:
        raise _decode_error(path, err) from err
    if image is None:
        raise BadInputError(
            f"cannot decode image file {path} (empty, truncated or not an image); "
            "remove or replace it"
        )
    if color == "rgb":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def _decode_error(path: Path, err: cv2.error) -> BadInputError:
    """The clear error for an image OpenCV refused to decode (most often: too many pixels)."""
    if "CV_IO_MAX_IMAGE_PIXELS" not in str(err):
        return BadInputError(f"cannot decode image file {path} ({err}); remove or replace it")
    size = ""
    try:  # only the header is read, to say how large the image is
        from PIL import Image

        with Image.open(path) as im:
            size = f" ({im.width}x{im.height} = {im.width * im.height:,} pixels)"
    except Exception:  # the size is a courtesy; the error stands without it
        pass
    return BadInputError(
        f"image file {path} is too large to decode{size}: OpenCV refuses images over "
        f"{_MAX_PIXELS:,} pixels before --data.load_size can shrink it. Downscale the file with "
        "an image tool, or remove it; with the memory for it, OPENCV_IO_MAX_IMAGE_PIXELS=<pixels> "
        "raises OpenCV's limit"
    )


def resize_image(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 image to ``(height, width)``.

    ``cv2.INTER_AREA`` when shrinking (it averages, so no aliasing), ``cv2.INTER_LINEAR`` when
    enlarging; unchanged when the size already matches.
    """
    h, w = image.shape[:2]
    if (h, w) == hw:
        return image
    shrink = hw[0] * hw[1] < h * w
    return cv2.resize(
        image, (hw[1], hw[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )


def _cache_key(paths: Sequence[Path], hw: tuple[int, int] | None, color: str) -> str:
    digest = hashlib.sha256(f"v{_CACHE_VERSION}|{hw}|{color}".encode())
    for path in paths:
        st = os.stat(path)
        digest.update(f"|{Path(path).resolve()}|{st.st_mtime_ns}|{st.st_size}".encode())
    return digest.hexdigest()[:24]


def load_images(
    paths: Sequence[Path],
    size: int | tuple[int, int] | None,
    color: str = "gray",
    cache_dir: Path | None = None,
    size_option: str = "size=(height, width)",
) -> np.ndarray:
    """Decode image files with OpenCV into one uint8 array, optionally cached as ``.npy``.

    Args:
        paths: Image files (e.g. ``FolderIndex.paths``).
        size: Output ``(height, width)``, or an int for a square. Images of another size are
            resized (``INTER_AREA`` to shrink, ``INTER_LINEAR`` to enlarge; aspect ratio is not
            kept). ``None`` keeps the files' size, which must then be the same for all.
        color: ``"gray"`` (one channel, OpenCV's luma conversion) or ``"rgb"``.
        cache_dir: When given, the array is stored there as ``images-<hash>.npy``; the hash covers
            the paths, their modification times and byte sizes and the options, so editing,
            adding or removing a file makes a new cache entry.
        size_option: How the user sets ``size`` (e.g. ``--data.load_size``), for the error
            about images of differing sizes.

    Returns:
        ``(N, H, W)`` uint8 for gray, ``(N, H, W, 3)`` uint8 for RGB.

    Raises:
        BadInputError: Unknown ``color``, bad ``size``, no paths, an undecodable file, or
            differing sizes with ``size=None`` (both files and ``size_option`` are named).
        FileNotFoundError: A file is missing.
    """
    if color not in COLORS:
        raise BadInputError(f"color must be one of {COLORS}, got {color!r}")
    hw = _target_hw(size)
    paths = [Path(p) for p in paths]
    if not paths:
        raise BadInputError("load_images got no paths")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"image file {path} does not exist")

    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"images-{_cache_key(paths, hw, color)}.npy"
        cached = read_cached(cache_file, np.load, "image")
        if cached is not None and len(cached) == len(paths) and cached.dtype == np.uint8:
            log.debug("loaded %d images from cache %s", len(cached), cache_file)
            return cached

    images: list[np.ndarray] = []
    # No bar for a handful of files (previews, tests), where it is only noise; None: none in a log.
    for path in tqdm(
        paths, desc="decoding images", unit="img", leave=False, disable=len(paths) < 64 or None
    ):
        image = decode_image(path, color)
        if hw is not None:
            image = resize_image(image, hw)
        elif images and image.shape != images[0].shape:
            (h0, w0), (h1, w1) = images[0].shape[:2], image.shape[:2]
            raise BadInputError(
                f"images differ in size: {paths[0]} is {w0}x{h0} but {path} is {w1}x{h1}; pass "
                f"{size_option} to resize every image to one size when it is read"
            )
        images.append(image)
    array = np.stack(images).astype(np.uint8, copy=False)

    if cache_file is not None:
        write_atomically(cache_file, lambda tmp: np.save(tmp, array))
    return array
