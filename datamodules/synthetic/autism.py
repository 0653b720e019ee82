"""Embedded autism-faces stand-in: drawn RGB faces on cluttered backgrounds, Kaggle layout.

The real dataset (``train|valid|test/<autistic|non_autistic>/*.jpg``, RGB 224x224) was scraped
from the web and its labels cannot be verified, so nothing here imitates its people. The drawn
set only reproduces the *claim the pipeline rests on*: the label lives in face geometry, and the
background is noise a classifier has to learn to ignore.

- **Label**: the paper's premise (its introduction) is a broader upper face with wide-set eyes.
  Each face draws its eye spacing (as a fraction of the face half-width) and its upper-face width
  (as a ratio to the lower face) from class-dependent normals that overlap, so even a perfect
  reader of the geometry is about 92 % accurate. The means lie far enough apart (eyes about 24
  px further apart at 224 px) for a network trained from scratch on a few hundred faces to see
  them; in generator v1 they lay 9 px apart and such a network stayed at chance.
- **Nuisance, independent of the label**: face position and size, skin tone, lighting, feature
  shapes, hair, JPEG noise.
- **Background distractors**: colour gradients, shapes, lines, skin-coloured blobs and pairs of
  dark "eye" dots at random spacing — the same cue the label lives in, placed where only a
  segmentation stage can rule it out. ``background_bias`` (default 0) can additionally tie the
  background's colour to the label in the training split only, an adversarial shortcut that a
  raw classifier learns and a segmented one cannot see.

:func:`draw_autism_faces` also returns the true face/hair masks, which tests use to score the
pseudo-mask maker; the written dataset holds images only, as the real one does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

AUTISM_CLASSES: tuple[str, ...] = ("autistic", "non_autistic")
KAGGLE_SPLITS: tuple[str, ...] = ("train", "valid", "test")
GENERATOR_VERSION = 2  # 2: the two label cues 2.2x farther apart, with proportionally wider spread

# Class means (label 0 autistic, 1 non_autistic) and the shared spread of the two label cues.
_EYE_SPACING = (0.60, 0.40)  # eye centre offset / face half-width
_UPPER_WIDTH = (1.18, 1.00)  # upper-face half-width / lower-face half-width
_EYE_SD, _UPPER_SD = 0.09, 0.10
_CANVAS = 224  # drawn at the real dataset's size, then resized on request

# Skin tones (RGB) spanning light to dark; each face mixes two neighbours.
_SKIN = np.array([[255, 224, 196], [241, 194, 160], [224, 172, 125],
                  [198, 134, 92], [141, 85, 54], [96, 60, 40]], dtype=np.float64)  # fmt: skip


def _background(rng: np.random.Generator, c: int, tint: np.ndarray | None) -> np.ndarray:
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if tint is not None:  # label-tied colour (background_bias), blended over the random one
        a, b = 0.35 * a + 0.65 * tint, 0.35 * b + 0.65 * tint
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:c, 0:c] / c
    t = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    t = (t - t.min()) / (t.max() - t.min() + 1e-9)
    img = (1 - t) * a + t * b
    for _ in range(rng.integers(4, 10)):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        kind = rng.integers(0, 3)
        p = rng.integers(0, c, 2)
        if kind == 0:
            cv2.circle(img, tuple(int(v) for v in p), int(rng.uniform(6, 40)), colour, -1)
        elif kind == 1:
            q = p + rng.integers(-60, 60, 2)
            cv2.rectangle(img, tuple(int(v) for v in p), tuple(int(v) for v in q), colour, -1)
        else:
            q = rng.integers(0, c, 2)
            cv2.line(
                img,
                tuple(int(v) for v in p),
                tuple(int(v) for v in q),
                colour,
                int(rng.integers(1, 6)),
            )
    # Skin-coloured blobs and pairs of dark dots: face-like cues outside the face.
    for _ in range(rng.integers(0, 3)):
        tone = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.8, 1.1)
        centre = tuple(int(v) for v in rng.integers(0, c, 2))
        axes = tuple(int(v) for v in rng.uniform(8, 28, 2))
        cv2.ellipse(img, centre, axes, rng.uniform(0, 180), 0, 360, tuple(tone.tolist()), -1)
    for _ in range(rng.integers(1, 4)):
        x, y = rng.integers(0, c, 2)
        gap = rng.uniform(12, 40)
        for side in (-1, 1):
            cv2.circle(
                img, (int(x + side * gap / 2), int(y)), int(rng.uniform(3, 7)), (30, 25, 20), -1
            )
    return img


def _draw_one(
    label: int, rng: np.random.Generator, tint: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    c = _CANVAS
    img = _background(rng, c, tint)
    eye_spacing = rng.normal(_EYE_SPACING[label], _EYE_SD)
    upper = rng.normal(_UPPER_WIDTH[label], _UPPER_SD)

    cx, cy = c / 2 + rng.normal(0, c * 0.04), c / 2 + rng.normal(0, c * 0.03)
    half_w = c * rng.uniform(0.22, 0.28)  # lower-face half-width
    half_h = half_w * rng.uniform(1.25, 1.4)
    upper_w = half_w * upper
    mix = rng.uniform()
    k = rng.integers(len(_SKIN) - 1)
    skin = (1 - mix) * _SKIN[k] + mix * _SKIN[k + 1]

    # Head = lower ellipse (cheeks to chin) + upper ellipse (forehead, cheekbones).
    head = np.zeros((c, c), np.uint8)
    centre = (int(cx), int(cy))
    cv2.ellipse(head, centre, (int(half_w), int(half_h)), 0, 0, 180, 255, -1, cv2.LINE_8)
    cv2.ellipse(head, centre, (int(upper_w), int(half_h * 1.02)), 0, 180, 360, 255, -1, cv2.LINE_8)
    cv2.rectangle(head, (int(cx - half_w), int(cy - 1)), (int(cx + half_w), int(cy + 1)), 255, -1)
    # Hair: a cap over the top of the upper ellipse, part of the head.
    hair = np.zeros_like(head)
    hair_colour = rng.uniform(10, 90) * np.array(
        [1.0, rng.uniform(0.7, 0.9), rng.uniform(0.5, 0.8)]
    )
    cv2.ellipse(
        hair, (int(cx), int(cy - half_h * 0.35)), (int(upper_w * 1.04), int(half_h * 0.78)),
        0, 180, 360, 255, -1,
    )  # fmt: skip
    shade = 1.0 + rng.uniform(-0.25, 0.15) * np.linspace(-1, 1, c)[None, :]  # side lighting
    face_rgb = skin[None, None, :] * shade[..., None]
    img = np.where((head > 0)[..., None], face_rgb, img)
    img = np.where((hair > 0)[..., None], hair_colour[None, None, :], img)
    mask = np.where(hair > 0, 2, (head > 0).astype(np.uint8)).astype(np.uint8)

    eye_y = cy - half_h * rng.uniform(0.12, 0.2)
    eye_dx = upper_w * eye_spacing
    eye_r = half_w * rng.uniform(0.11, 0.14)
    iris = tuple((rng.uniform(20, 90) * np.array([1.0, 0.8, 0.6])).tolist())
    dark = tuple((skin * rng.uniform(0.2, 0.4)).tolist())
    for side in (-1, 1):
        ex = int(cx + side * eye_dx)
        cv2.ellipse(
            img,
            (ex, int(eye_y)),
            (int(eye_r * 1.5), int(eye_r)),
            0,
            0,
            360,
            (245, 245, 240),
            -1,
            cv2.LINE_AA,
        )
        cv2.circle(img, (ex, int(eye_y)), int(eye_r * 0.75), iris, -1, cv2.LINE_AA)
        by = int(eye_y - eye_r * rng.uniform(1.8, 2.4))
        cv2.line(
            img,
            (int(ex - eye_r * 1.6), by),
            (int(ex + eye_r * 1.6), by - 2),
            dark,
            max(2, int(eye_r * 0.4)),
            cv2.LINE_AA,
        )
    nose_y = cy + half_h * rng.uniform(0.1, 0.2)
    cv2.line(
        img,
        (int(cx), int(eye_y + eye_r)),
        (int(cx + rng.normal(0, 3)), int(nose_y)),
        dark,
        2,
        cv2.LINE_AA,
    )
    mouth_y = cy + half_h * rng.uniform(0.45, 0.55)
    mouth_w = half_w * rng.uniform(0.3, 0.5)
    lips = tuple((skin * np.array([0.75, 0.45, 0.45])).tolist())
    cv2.ellipse(
        img,
        (int(cx), int(mouth_y)),
        (int(mouth_w), int(mouth_w * rng.uniform(0.15, 0.4))),
        0,
        0,
        360,
        lips,
        -1,
        cv2.LINE_AA,
    )

    img = img * rng.uniform(0.75, 1.15) + rng.normal(0, rng.uniform(2, 8), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def draw_autism_faces(
    labels: np.ndarray,
    seed: int,
    size: int = 224,
    background_bias: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one RGB face per label.

    Args:
        labels: ``(N,)`` class indices into :data:`AUTISM_CLASSES` (0 autistic, 1 non_autistic).
        seed: Seed; the same arguments give the same pixels.
        size: Output side in pixels (drawn at 224, area-resized).
        background_bias: Probability that a face's background is tinted with its class colour
            (warm for autistic, cool for non_autistic) instead of a random one; 0 keeps the
            background independent of the label.

    Returns:
        ``(images uint8 (N, size, size, 3) RGB, masks uint8 (N, size, size))``; mask values are
        0 background, 1 face skin (with eyes, nose, mouth), 2 hair.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 1):
        raise ValueError(
            f"labels must be 0 (autistic) or 1 (non_autistic), got {np.unique(labels)}"
        )
    if not 0.0 <= background_bias <= 1.0:
        raise ValueError(f"background_bias must lie in [0, 1], got {background_bias}")
    tints = np.array([[220.0, 120.0, 60.0], [60.0, 130.0, 220.0]])
    rng = np.random.default_rng(seed)
    images = np.empty((len(labels), size, size, 3), np.uint8)
    masks = np.empty((len(labels), size, size), np.uint8)
    for i, label in enumerate(labels):
        tint = tints[label] if rng.uniform() < background_bias else None
        image, mask = _draw_one(int(label), rng, tint)
        if size != _CANVAS:
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
        images[i], masks[i] = image, mask
    return images, masks


def write_autism_folders(
    root: str | Path,
    counts: dict[str, int] | None = None,
    seed: int = 0,
    background_bias: float = 0.0,
    jpeg_quality: int = 90,
) -> Path:
    """Write drawn faces as JPEGs in the Kaggle layout ``root/<split>/<class>/<n>.jpg``.

    Args:
        root: Output folder (created).
        counts: Images per class in each split; default ``train 300, valid 20, test 40`` (720
            images in all: a ResNet-50 from scratch stayed at chance on 120 per class).
        seed: Seed; each (split, class) draws from its own derived seed, so no two images repeat.
        background_bias: See :func:`draw_autism_faces`; applied to the ``train`` split only (so
            a classifier that learns the shortcut is caught out on valid/test).
        jpeg_quality: JPEG quality of the written files.

    Returns:
        ``root``.
    """
    root = Path(root)
    counts = counts or {"train": 300, "valid": 20, "test": 40}
    unknown = set(counts) - set(KAGGLE_SPLITS)
    if unknown:
        raise ValueError(f"unknown split(s) {sorted(unknown)}; the layout has {KAGGLE_SPLITS}")
    total = sum(counts.values()) * len(AUTISM_CLASSES)
    bar = tqdm(
        total=total, desc="drawing autism faces", unit="img", leave=False, disable=total < 64
    )
    for s, (split, n) in enumerate(counts.items()):
        bias = background_bias if split == "train" else 0.0
        for label, name in enumerate(AUTISM_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            images, _ = draw_autism_faces(
                np.full(n, label), seed=seed * 1000 + 10 * s + label, background_bias=bias
            )
            for i, image in enumerate(images):
                ok, data = cv2.imencode(
                    ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality],
                )  # fmt: skip
                if not ok:
                    raise RuntimeError(f"OpenCV could not encode image {i} of {folder} as JPEG")
                (folder / f"{i:04d}.jpg").write_bytes(data.tobytes())
                bar.update()
    bar.close()
    return root
