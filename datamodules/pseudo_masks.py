"""Pseudo face masks where none are given: a face box refined into a pixel mask by GrabCut.

The autism paper trains DeepLabV3+ to segment faces but publishes no masks, and the Kaggle set has
none. Without a mask folder, pseudo-masks are made automatically with classical OpenCV tools:

1. **Face box**: OpenCV's Haar frontal-face cascade
   (:class:`litlab.datamodules.face_preprocessing.HaarFaceDetector`) when this OpenCV build ships
   it (OpenCV 5 wheels may not); where it finds no face, or is missing, a skin-colour box: pixels
   inside the YCrCb skin range of Chai & Ngan (1999, Cr 133..173, Cb 77..127), cleaned by a
   morphological open/close, largest connected region that neither fills the frame nor hugs its
   border. Where no box is found, a centred box (the dataset's images are face crops) is used;
   each source is counted and logged.
2. **GrabCut** (``cv2.grabCut``, Rother et al. 2004) refines the box into a pixel mask: outside
   the grown box is sure background, a small central ellipse sure face, the inscribed ellipse and
   skin pixels probably face, the rest of the box probably background. It runs on a copy
   resized to ``work_size`` (GrabCut's graph cut costs grow with the pixel count; faces are smooth
   shapes, so 128 px loses nothing visible), then the largest region is kept, its holes (eyes,
   mouth) filled, and it is resized back.

   GrabCut needs colour samples of both sides. A face that fills the frame (its grown box is the
   whole image and every pixel outside the face ellipse is skin-coloured) or an all-skin image
   leaves it no background samples; such an image, and one where GrabCut keeps little more than
   its sure-face core, gets the box's inscribed ellipse instead, and each kind is counted in the
   log.

Masks are cached, keyed by the pixels and every option.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import astuple, dataclass
from pathlib import Path

import cv2
import numpy as np
from litlab.datamodules.cache import array_key, read_cached, write_atomically
from litlab.datamodules.face_preprocessing import (
    Box,
    BoxDetector,
    make_face_detector,
    settings_token,
)
from litlab.datamodules.folders import resize_image
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

BOX_METHODS: tuple[str, ...] = ("auto", "haar", "skin", "centre")

# Bump when the mask-making code changes, so stale caches are never reused.
_CACHE_VERSION = 3
# How far a detected box is grown (fractions of its width/height) before GrabCut: a Haar box
# spans brows to mouth, a skin box stops at the hairline, and GrabCut can only shrink the region.
_GROW = {"haar": (0.25, 0.45, 0.25), "skin": (0.12, 0.35, 0.1), "centre": (0.0, 0.0, 0.0)}
# Fewest pixels of each side GrabCut is started with: its colour models are 5-component Gaussian
# mixtures, and a handful of samples per component is the least that estimates a colour.
_MIN_SAMPLES = 20


@dataclass(eq=False)
class SkinBoxDetector:
    """The bounding box of the largest skin-coloured region (YCrCb thresholds).

    Args:
        min_area_fraction: Smallest region, as a fraction of the image, taken for a face.
        max_area_fraction: Largest region; bigger ones are skin-coloured backgrounds.
        cr_range: Accepted Cr values (Chai & Ngan 1999).
        cb_range: Accepted Cb values.
    """

    min_area_fraction: float = 0.03
    max_area_fraction: float = 0.7
    cr_range: tuple[int, int] = (133, 173)
    cb_range: tuple[int, int] = (77, 127)

    @property
    def cache_token(self) -> str:
        """Identifies the detector and its settings in cache keys."""
        return settings_token("skin", *astuple(self))

    def skin_mask(self, image: np.ndarray) -> np.ndarray:
        """``(H, W)`` uint8, 1 on skin-coloured pixels of an RGB uint8 ``(H, W, 3)`` image."""
        ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
        lo = np.array([0, self.cr_range[0], self.cb_range[0]], np.uint8)
        hi = np.array([255, self.cr_range[1], self.cb_range[1]], np.uint8)
        skin = cv2.inRange(ycrcb, lo, hi)
        k = max(3, (min(image.shape[:2]) // 40) | 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        skin = cv2.morphologyEx(skin, cv2.MORPH_OPEN, kernel)
        skin = cv2.morphologyEx(skin, cv2.MORPH_CLOSE, kernel)
        return (skin > 0).astype(np.uint8)

    def detect(self, image: np.ndarray) -> Box | None:
        """The face box ``(x, y, w, h)`` of an RGB uint8 image, or ``None``."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"skin detection needs an RGB (H, W, 3) image, got {image.shape}")
        h, w = image.shape[:2]
        n, _, stats, _ = cv2.connectedComponentsWithStats(self.skin_mask(image), connectivity=8)
        best, best_area = None, 0
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            fraction = area / (h * w)
            borders = (x == 0) + (y == 0) + (x + bw == w) + (y + bh == h)
            if not self.min_area_fraction <= fraction <= self.max_area_fraction or borders > 2:
                continue
            if area > best_area:
                best, best_area = (x, y, bw, bh), area
        return best


def centre_box(height: int, width: int) -> Box:
    """A centred box covering 70 % of the width and 85 % of the height (faces are pre-cropped)."""
    bw, bh = int(width * 0.7), int(height * 0.85)
    return (width - bw) // 2, (height - bh) // 2, bw, bh


def _grow_box(box: Box, grow: tuple[float, float, float], height: int, width: int) -> Box:
    x, y, w, h = box
    side, top, bottom = grow
    x0, x1 = max(0, int(x - side * w)), min(width, int(x + w + side * w))
    y0, y1 = max(0, int(y - top * h)), min(height, int(y + h + bottom * h))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def _box_ellipse(box: Box, height: int, width: int) -> np.ndarray:
    """``(H, W)`` uint8 ellipse inscribed in ``box`` (the shape prior of a face)."""
    x, y, w, h = box
    out = np.zeros((height, width), np.uint8)
    cv2.ellipse(out, (x + w // 2, y + h // 2), (max(1, w // 2), max(1, h // 2)), 0, 0, 360, 1, -1)
    return out


def _fill_largest(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of a binary mask with its holes filled."""
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    out = np.zeros(mask.shape, np.uint8)
    if contours:
        cv2.drawContours(out, [max(contours, key=cv2.contourArea)], -1, 1, thickness=-1)
    return out


def grabcut_mask(
    image: np.ndarray,
    box: Box,
    skin: np.ndarray | None = None,
    iterations: int = 5,
    work_size: int = 128,
    sure_outside: bool = True,
) -> np.ndarray | None:
    """Refine a face box into a face mask with GrabCut.

    Args:
        image: ``(H, W, 3)`` RGB uint8.
        box: ``(x, y, w, h)`` region that contains the whole face (already grown).
        skin: Optional ``(H, W)`` skin map; skin pixels in the box start as probable face.
        iterations: GrabCut iterations.
        work_size: Longer side GrabCut runs at (the mask is resized back).
        sure_outside: Outside the box is sure background. ``False`` (for guessed boxes, which
            may cut through a face that fills the frame) makes it probable background and only
            the image border sure background.

    Returns:
        ``(H, W)`` uint8 mask, 1 on the face; ``None`` where GrabCut cannot run because the
        starting labels leave fewer than ``_MIN_SAMPLES`` background (or face) pixels: a box
        covering the whole frame whose every pixel outside the face ellipse is skin-coloured.
    """
    h, w = image.shape[:2]
    scale = min(1.0, work_size / max(h, w))
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    small = resize_image(image, (sh, sw))
    fx, fy = sw / w, sh / h
    x, y, bw, bh = box
    x0, y0 = int(x * fx), int(y * fy)
    x1, y1 = min(sw, max(x0 + 2, int((x + bw) * fx))), min(sh, max(y0 + 2, int((y + bh) * fy)))
    init = np.full((sh, sw), cv2.GC_BGD if sure_outside else cv2.GC_PR_BGD, np.uint8)
    init[y0:y1, x0:x1] = cv2.GC_PR_BGD
    if not sure_outside:  # after the box, so a box that spans the frame keeps its border too
        init[[0, -1], :] = init[:, [0, -1]] = cv2.GC_BGD
    centre = ((x0 + x1) // 2, (y0 + y1) // 2)
    half = ((x1 - x0) // 2, (y1 - y0) // 2)
    ellipse = np.zeros_like(init)
    cv2.ellipse(ellipse, centre, (int(half[0] * 0.85), int(half[1] * 0.85)), 0, 0, 360, 1, -1)
    init[(ellipse > 0) & (init == cv2.GC_PR_BGD)] = cv2.GC_PR_FGD
    if skin is not None:
        skin_small = cv2.resize(skin, (sw, sh), interpolation=cv2.INTER_NEAREST)
        init[(skin_small > 0) & (init == cv2.GC_PR_BGD)] = cv2.GC_PR_FGD
    core = np.zeros_like(init)
    cv2.ellipse(
        core, centre, (max(1, int(half[0] * 0.3)), max(1, int(half[1] * 0.3))), 0, 0, 360, 1, -1
    )
    init[core > 0] = cv2.GC_FGD
    background = int(np.count_nonzero((init == cv2.GC_BGD) | (init == cv2.GC_PR_BGD)))
    if min(background, init.size - background) < _MIN_SAMPLES:
        return None  # cv2.grabCut would stop on an empty colour model (initGMMs)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut's colour models come from OpenCV's RNG: seed it so masks are reproducible.
    cv2.setRNGSeed(0)
    cv2.grabCut(
        cv2.cvtColor(small, cv2.COLOR_RGB2BGR), init, None, bgd, fgd, iterations,
        cv2.GC_INIT_WITH_MASK,
    )  # fmt: skip
    face = _fill_largest((init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD))
    # Linear resize of the 0/1 map then a 0.5 threshold: smooth edges instead of blocky ones.
    big = cv2.resize(face.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return (big >= 0.5).astype(np.uint8)


@dataclass(frozen=True)
class PseudoMasks:
    """Output of :func:`make_pseudo_masks`.

    Attributes:
        masks: ``(N, H, W)`` uint8, 1 on the face.
        boxes: ``(N, 4)`` int32 grown boxes ``(x, y, w, h)`` GrabCut started from.
        sources: How many boxes came from each source (``haar``, ``skin``, ``centre``);
            ``<source>+ellipse`` where the box's ellipse was used instead of GrabCut's mask.
        no_grabcut: How many of the ellipse masks are there because GrabCut had no background
            (or face) samples to start from: faces that fill the frame, all-skin images.
    """

    masks: np.ndarray
    boxes: np.ndarray
    sources: dict[str, int]
    no_grabcut: int = 0


def _box_detectors(box_method: str) -> list[tuple[str, BoxDetector]]:
    """The detectors tried in order for a ``box_method``; the centred box comes after them all."""
    if box_method not in BOX_METHODS:
        raise ValueError(f"box_method must be one of {BOX_METHODS}, got {box_method!r}")
    if box_method == "centre":
        return []
    detectors: list[tuple[str, BoxDetector]] = []
    if box_method in ("auto", "haar"):
        haar = make_face_detector(True if box_method == "haar" else "auto")
        if haar is not None:
            detectors.append(("haar", haar))
        else:
            log.info("pseudo-masks: no Haar cascade in this OpenCV build; using skin-colour boxes")
    # Skin colour also backs up the cascade, which misses turned, small or unusual faces.
    detectors.append(("skin", SkinBoxDetector()))
    return detectors


def _read_pseudo_masks(path: Path) -> PseudoMasks:
    with np.load(path) as z:
        counts = zip(z["source_names"].tolist(), z["source_counts"].tolist(), strict=True)
        return PseudoMasks(
            masks=z["masks"],
            boxes=z["boxes"],
            sources=dict(counts),
            no_grabcut=int(z["no_grabcut"]) if "no_grabcut" in z else 0,
        )


def make_pseudo_masks(
    images: np.ndarray,
    box_method: str = "auto",
    iterations: int = 5,
    work_size: int = 128,
    cache_dir: Path | None = None,
) -> PseudoMasks:
    """Face pseudo-masks: a face box (Haar, skin colour or centre) refined by GrabCut.

    Args:
        images: ``(N, H, W, 3)`` RGB uint8.
        box_method: ``"auto"`` (Haar when this OpenCV build has it, else skin colour),
            ``"haar"`` (required; an error with the fix when missing), ``"skin"`` or ``"centre"``.
        iterations: GrabCut iterations per image.
        work_size: Side GrabCut runs at.
        cache_dir: Store/reuse the result as ``pseudo-masks-<hash>.npz``; the hash covers the
            pixels and every option (and which detector ``auto`` resolved to).

    Returns:
        Masks, boxes and the count of each box source (logged).
    """
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"images must be uint8 (N, H, W, 3) RGB, got {images.dtype} {images.shape}"
        )
    detectors = _box_detectors(box_method)
    token = "+".join(getattr(d, "cache_token", name) for name, d in detectors) or "centre"
    cache_file = None
    if cache_dir is not None:
        key = array_key(images, _CACHE_VERSION, f"{token}|{iterations}|{work_size}")
        cache_file = Path(cache_dir) / f"pseudo-masks-{key}.npz"
        cached = read_cached(cache_file, _read_pseudo_masks, "pseudo-mask")
        if cached is not None:
            log.info("reusing cached pseudo-masks %s (%d images)", cache_file, len(images))
            return cached

    n, h, w = images.shape[:3]
    masks = np.zeros((n, h, w), np.uint8)
    boxes = np.zeros((n, 4), np.int32)
    sources: Counter[str] = Counter()
    no_grabcut = 0
    skin_detector = SkinBoxDetector()
    for i in tqdm(range(n), desc="pseudo-masks (GrabCut)", unit="img", leave=False, disable=n < 32):
        box, source = None, "centre"
        for name, detector in detectors:
            box = detector.detect(images[i])
            if box is not None:
                source = name
                break
        if box is None:
            box = centre_box(h, w)
        box = _grow_box(box, _GROW[source], h, w)
        skin = skin_detector.skin_mask(images[i])
        mask = grabcut_mask(images[i], box, skin, iterations, work_size, source != "centre")
        prior = _box_ellipse(box, h, w)
        if mask is None:
            # No background (or face) samples for GrabCut: the face fills the frame, or the
            # image is skin-coloured throughout. The box's ellipse is the face's shape prior.
            mask, source = prior, f"{source}+ellipse"
            no_grabcut += 1
        elif mask.sum() < 0.5 * prior.sum():
            # GrabCut kept little more than its sure-face core: no colour contrast between face
            # and surroundings (e.g. gray, tightly cropped faces). The box's ellipse is a
            # better guess than that core.
            mask, source = prior, f"{source}+ellipse"
        masks[i] = mask
        boxes[i] = box
        sources[source] += 1
    result = PseudoMasks(masks=masks, boxes=boxes, sources=dict(sources), no_grabcut=no_grabcut)
    centred = sum(v for k, v in sources.items() if k.startswith("centre"))
    fallbacks = centred if detectors else 0
    log.info(
        "pseudo-masks for %d images: boxes from %s%s%s",
        n,
        ", ".join(f"{k} {v}" for k, v in sorted(sources.items())),
        f" ({fallbacks} found no face and used the centred box)" if fallbacks else "",
        f"; {no_grabcut} left GrabCut no background or face samples (a face filling the frame "
        "or an all-skin image) and use the box's ellipse"
        if no_grabcut
        else "",
    )
    if cache_file is not None:
        names = sorted(sources)
        write_atomically(cache_file, lambda tmp: np.savez_compressed(
            tmp, masks=masks, boxes=boxes, source_names=np.array(names),
            source_counts=np.array([sources[k] for k in names]), no_grabcut=np.array(no_grabcut),
        ))  # fmt: skip
    return result
