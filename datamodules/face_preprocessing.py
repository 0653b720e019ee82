"""OpenCV preprocessing for face-expression images: face crop, resize, equalisation, Canny edges.

The CK+ paper's pipeline, run once per dataset and cached (it is deterministic, so it stays out of
the training loop):

1. **Face region** — a Haar cascade (``haarcascade_frontalface_default.xml``, the file OpenCV
   ships under ``cv2.data.haarcascades``) finds the largest face in the gray image; the image is
   cropped to it. Where no face is found the whole image is kept; these fallbacks are counted
   and logged.
2. **Resize** to ``size x size`` (``INTER_AREA`` to shrink, ``INTER_LINEAR`` to enlarge).
3. **Histogram equalisation** (``cv2.equalizeHist``) spreads the intensities over 0..255.
4. **Canny edges** (``cv2.Canny`` after a small Gaussian blur) on the equalised image.

The network input is the gray image, the edge map, or both stacked as two channels
(:data:`INPUT_MODES`); :func:`input_channels` says how many, so the model's ``in_chans`` can be
checked against it.

Not every OpenCV build has the cascade detector: OpenCV 5 wheels may lack
``cv2.CascadeClassifier`` and the XML files. ``detect_face=True`` then fails with an error
saying how to get it; ``detect_face="auto"`` uses it when present and otherwise logs one warning
and keeps whole images (every image counts as a fallback).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np
from litlab.datamodules.cache import array_key, read_cached, write_atomically
from litlab.datamodules.folders import resize_image
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

INPUT_MODES: tuple[str, ...] = ("gray", "edges", "both")
CASCADE_NAME = "haarcascade_frontalface_default.xml"
CASCADE_ENV = "LITLAB_HAAR_CASCADE"  # optional path to a cascade XML, checked first

DetectFace = bool | Literal["auto"]
Box = tuple[int, int, int, int]  # x, y, width, height in the input image's pixels

# Bump when the preprocessing code changes, so stale caches are never reused.
_CACHE_VERSION = 1


class FaceDetectorUnavailableError(RuntimeError):
    """This OpenCV build cannot run the Haar face cascade (no classifier class or no XML)."""


class BoxDetector(Protocol):
    """Anything that returns the main face box of a gray uint8 image, or ``None``."""

    def detect(self, image: np.ndarray) -> Box | None: ...


def input_channels(input_mode: str) -> int:
    """Channels the network sees: 1 for ``"gray"`` or ``"edges"``, 2 for ``"both"``."""
    if input_mode not in INPUT_MODES:
        raise ValueError(f"input_mode must be one of {INPUT_MODES}, got {input_mode!r}")
    return 2 if input_mode == "both" else 1


def to_gray(image: np.ndarray) -> np.ndarray:
    """A uint8 gray image from gray ``(H, W)``/``(H, W, 1)`` or RGB ``(H, W, 3)`` input."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[..., 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected (H, W), (H, W, 1) or (H, W, 3) image, got shape {image.shape}")


def equalize(image: np.ndarray) -> np.ndarray:
    """Histogram-equalised copy of a gray uint8 image (``cv2.equalizeHist``)."""
    return cv2.equalizeHist(to_gray(image))


def canny_edges(
    image: np.ndarray, low: float = 50.0, high: float = 150.0, blur: int = 3
) -> np.ndarray:
    """Canny edge map (0 or 255) of a gray uint8 image.

    Args:
        image: ``(H, W)`` uint8.
        low: Hysteresis lower threshold on the gradient magnitude.
        high: Hysteresis upper threshold; gradients above it start an edge.
        blur: Odd Gaussian kernel size applied first (``cv2.Canny`` has no smoothing step of its
            own, and equalisation amplifies sensor noise); 0 or 1 skips it.

    Returns:
        ``(H, W)`` uint8 with 255 on edges.
    """
    if not 0 <= low <= high:
        raise ValueError(f"need 0 <= canny low <= high, got low={low}, high={high}")
    gray = to_gray(image)
    if blur > 1:
        if blur % 2 == 0:
            raise ValueError(f"canny blur must be an odd kernel size, got {blur}")
        gray = cv2.GaussianBlur(gray, (blur, blur), 0)
    return cv2.Canny(gray, low, high)


def find_cascade_file(name: str = CASCADE_NAME) -> Path:
    """Locate a Haar cascade XML shipped with OpenCV.

    Looks at ``$LITLAB_HAAR_CASCADE``, then ``cv2.data.haarcascades``, then anywhere inside the
    installed ``cv2`` package.

    Raises:
        FaceDetectorUnavailableError: No such file in this OpenCV install.
    """
    env = os.environ.get(CASCADE_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise FaceDetectorUnavailableError(
                f"${CASCADE_ENV} points to {path}, which does not exist"
            )
        return path
    data = getattr(cv2, "data", None)
    folder = getattr(data, "haarcascades", None)
    if folder and (Path(folder) / name).is_file():
        return Path(folder) / name
    package = Path(cv2.__file__).resolve().parent
    hits = sorted(package.rglob(name))
    if hits:
        return hits[0]
    raise FaceDetectorUnavailableError(
        f"{name} is not in this OpenCV install (cv2 {cv2.__version__} at {package}). "
        "Install an OpenCV build that ships the Haar cascades, e.g. "
        "pip install 'opencv-python-headless>=4.10,<5', or point "
        f"${CASCADE_ENV} at a copy of the XML; or run without face cropping "
        "(data.detect_face=false, or 'auto' to use it only where available)."
    )


def _cascade_class() -> Callable[[str], object]:
    cls = getattr(cv2, "CascadeClassifier", None)
    if cls is None:
        raise FaceDetectorUnavailableError(
            f"this OpenCV build (cv2 {cv2.__version__}) has no cv2.CascadeClassifier. "
            "Install one that has it, e.g. pip install 'opencv-python-headless>=4.10,<5'; "
            "or run without face cropping (data.detect_face=false, or 'auto' to use it only "
            "where available)."
        )
    return cls


def haar_available() -> bool:
    """True when this OpenCV build can run the frontal-face Haar cascade."""
    try:
        _cascade_class()
        find_cascade_file()
    except FaceDetectorUnavailableError:
        return False
    return True


def settings_token(kind: str, *settings: object) -> str:
    """``kind|setting|setting...``: a detector and its settings, as cache keys name them."""
    return "|".join([kind, *map(str, settings)])


@dataclass(eq=False)
class HaarFaceDetector:
    """The largest frontal face found by OpenCV's Haar cascade.

    Args:
        cascade_path: Cascade XML; ``None`` finds OpenCV's frontal-face file.
        scale_factor: Image pyramid step of ``detectMultiScale``.
        min_neighbors: Overlapping detections needed to accept a face (higher = fewer false ones).
        min_size_fraction: Smallest face side as a fraction of the image's shorter side; faces in
            these datasets fill most of the frame, so tiny detections are false positives.

    Raises:
        FaceDetectorUnavailableError: No classifier class or no XML in this OpenCV build.
    """

    cascade_path: str | Path | None = None
    scale_factor: float = 1.1
    min_neighbors: int = 3
    min_size_fraction: float = 0.3

    def __post_init__(self) -> None:
        cls = _cascade_class()
        self.cascade_path = Path(self.cascade_path) if self.cascade_path else find_cascade_file()
        self.classifier = cls(str(self.cascade_path))
        if self.classifier.empty():
            raise FaceDetectorUnavailableError(
                f"OpenCV could not load the cascade {self.cascade_path}"
            )

    @property
    def cache_token(self) -> str:
        """Identifies the detector and its settings in cache keys."""
        settings = (self.scale_factor, self.min_neighbors, self.min_size_fraction)
        return settings_token("haar", self.cascade_path.name, *settings)

    def detect(self, image: np.ndarray) -> Box | None:
        """The largest face box ``(x, y, w, h)`` in a uint8 image, or ``None``."""
        gray = to_gray(image)
        side = max(1, int(min(gray.shape) * self.min_size_fraction))
        faces = self.classifier.detectMultiScale(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(side, side),
        )
        if len(faces) == 0:
            return None
        x, y, w, h = max((tuple(int(v) for v in f) for f in faces), key=lambda b: b[2] * b[3])
        return x, y, w, h


def make_face_detector(detect_face: DetectFace) -> HaarFaceDetector | None:
    """The detector for a ``detect_face`` option.

    ``True`` requires the cascade (raises :class:`FaceDetectorUnavailableError` with the fix),
    ``"auto"`` returns ``None`` with one warning when it is missing, ``False`` returns ``None``.
    """
    if detect_face is False:
        return None
    if detect_face not in (True, "auto"):
        raise ValueError(f"detect_face must be true, false or 'auto', got {detect_face!r}")
    try:
        return HaarFaceDetector()
    except FaceDetectorUnavailableError as err:
        if detect_face is True:
            raise
        log.warning("face cropping is off: %s", err)
        return None


def crop_box(image: np.ndarray, box: Box, margin: float = 0.0) -> np.ndarray:
    """The region ``box = (x, y, w, h)`` grown by ``margin`` of its size per side, clipped to the image."""
    x, y, w, h = box
    dx, dy = int(round(w * margin)), int(round(h * margin))
    height, width = image.shape[:2]
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {box} lies outside the {width}x{height} image")
    return image[y0:y1, x0:x1]


@dataclass(frozen=True)
class Preprocessed:
    """Output of :func:`preprocess_images`.

    Attributes:
        images: ``(N, S, S)`` uint8 for ``"gray"``/``"edges"``, ``(N, S, S, 2)`` for ``"both"``
            (channel 0 gray, channel 1 edges).
        boxes: ``(N, 4)`` int32 face boxes ``(x, y, w, h)`` in input pixels; ``-1`` rows where
            no face was found or detection was off.
        fallbacks: Images kept whole because detection was on but found no face (or, with
            ``detect_face="auto"`` on a build without the cascade, every image).
        detector: ``"haar"`` when the cascade ran, ``"none"`` when no detector ran, else the
            injected detector's class name.
    """

    images: np.ndarray
    boxes: np.ndarray
    fallbacks: int
    detector: str


def _read_preprocessed(path: Path) -> Preprocessed:
    with np.load(path) as z:
        return Preprocessed(
            images=z["images"],
            boxes=z["boxes"],
            fallbacks=int(z["fallbacks"]),
            detector=str(z["detector"]),
        )


def preprocess_images(
    images: np.ndarray,
    size: int = 48,
    equalize_hist: bool = True,
    detect_face: DetectFace = True,
    input_mode: str = "gray",
    canny_low: float = 50.0,
    canny_high: float = 150.0,
    face_margin: float = 0.0,
    cache_dir: Path | None = None,
    detector: BoxDetector | None = None,
) -> Preprocessed:
    """Run the face-crop / resize / equalise / Canny pipeline on a batch of images.

    Args:
        images: ``(N, H, W)`` gray or ``(N, H, W, 3)`` RGB uint8 images.
        size: Output side in pixels.
        equalize_hist: Histogram-equalise after resizing (edges are then found on the
            equalised image, as in the paper).
        detect_face: Crop to the Haar-cascade face: ``True`` (required), ``"auto"`` (when this
            OpenCV build has it), ``False``.
        input_mode: ``"gray"``, ``"edges"`` or ``"both"`` (see :func:`input_channels`).
        canny_low: Canny lower threshold.
        canny_high: Canny upper threshold.
        face_margin: Grow the face box by this fraction of its size per side before cropping.
        cache_dir: Store/reuse the result as ``preprocessed-<hash>.npz`` here; the hash covers
            the input pixels and every option.
        detector: Use this detector instead of the Haar cascade (overrides ``detect_face``).

    Returns:
        The arrays, face boxes and fallback count (see :class:`Preprocessed`).
    """
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(
            f"images must be uint8 (N,H,W) or (N,H,W,3), got {images.dtype} {images.shape}"
        )
    channels = input_channels(input_mode)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if detector is None:
        detector = make_face_detector(detect_face)
    detector_name = (
        "none" if detector is None else getattr(detector, "cache_token", type(detector).__name__)
    )
    wanted = detect_face is not False or detector is not None

    cache_file = None
    if cache_dir is not None:
        options = f"{size}|{equalize_hist}|{detector_name}|{input_mode}|{canny_low}|{canny_high}|{face_margin}"
        cache_file = (
            Path(cache_dir) / f"preprocessed-{array_key(images, _CACHE_VERSION, options)}.npz"
        )
        cached = read_cached(cache_file, _read_preprocessed, "preprocessing")
        if cached is not None:
            _log_fallbacks(cached, len(images), wanted)
            return cached

    shape = (len(images), size, size) if channels == 1 else (len(images), size, size, channels)
    out = np.empty(shape, np.uint8)
    boxes = np.full((len(images), 4), -1, np.int32)
    fallbacks = 0
    for i in tqdm(range(len(images)), desc="preprocessing faces", unit="img", leave=False):
        gray = to_gray(images[i])
        if detector is not None:
            box = detector.detect(gray)
            if box is None:
                fallbacks += 1
            else:
                boxes[i] = box
                gray = crop_box(gray, box, face_margin)
        elif wanted:
            fallbacks += 1
        gray = resize_image(gray, (size, size))
        if equalize_hist:
            gray = cv2.equalizeHist(gray)
        if input_mode == "gray":
            out[i] = gray
        elif input_mode == "edges":
            out[i] = canny_edges(gray, canny_low, canny_high)
        else:
            out[i, ..., 0] = gray
            out[i, ..., 1] = canny_edges(gray, canny_low, canny_high)
    result = Preprocessed(
        images=out,
        boxes=boxes,
        fallbacks=fallbacks,
        detector=_detector_label(detector),
    )
    _log_fallbacks(result, len(images), wanted)

    if cache_file is not None:
        write_atomically(cache_file, lambda tmp: np.savez(
            tmp, images=out, boxes=boxes, fallbacks=fallbacks, detector=result.detector
        ))  # fmt: skip
    return result


def _detector_label(detector: BoxDetector | None) -> str:
    if detector is None:
        return "none"
    return "haar" if isinstance(detector, HaarFaceDetector) else type(detector).__name__


def _log_fallbacks(result: Preprocessed, n: int, wanted: bool) -> None:
    if wanted and result.detector == "none":
        log.info("face detection unavailable: all %d images used whole", n)
    elif wanted and result.fallbacks:
        log.info(
            "face detection (%s): no face found in %d of %d images; those are used whole",
            result.detector,
            result.fallbacks,
            n,
        )
