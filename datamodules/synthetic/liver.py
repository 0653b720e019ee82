"""Abdominal-CT-like liver phantoms in Hounsfield units, written in both real liver layouts.

Each patient is a stack of axial slices in radiological display orientation (row 0 anterior,
the patient's right on the image's left, so the liver sits on the left of the image):

* air (-1000 HU) around a body ellipse: subcutaneous fat (~-100), an abdominal-wall muscle ring
  (~50), and inside it a mix of visceral fat and bowel loops (~-90 / ~35, with gas pockets);
* the liver (label 1), of adult size (about 8 % of a slice where present, filling the right
  upper abdomen): a smooth irregular outline (a few Fourier harmonics) plus a left lobe that
  fades inferiorly; ~55-105 HU depending on a per-patient contrast phase, with a smooth
  texture and vessels; size and outline change from slice to slice and vanish at its ends;
* sometimes a tumour blob (label 2), hypodense to the liver, over part of the z range;
* distractors near the liver's intensity: spleen (a little darker unenhanced, level with the
  liver once contrast arrives), kidneys (enhancing most), stomach wall, muscle, bowel, aorta
  and vena cava; a vertebra (cortex ~700 HU) with its canal;
* Gaussian noise (8-18 HU), slightly correlated like reconstructed CT noise.

A single HU threshold cannot segment the liver (spleen, kidneys and muscle overlap its range);
its position, shape and texture make it learnable.

:func:`write_liver_phantoms` writes some patients as LiTS-style NIfTI volumes (int16 HU with an
LPS-like affine, as DICOM conversions give) and the others as PNG slice folders (the
[-100, 400] HU window applied, 8-bit; masks 0/255). PNG patients carry no tumour, since 2-class
slice masks cannot say where one is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
from litlab.datamodules.liver_decode import unit_to_uint8, window_to_unit
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

#: Bump when the drawing changes: cached default datasets are regenerated.
GENERATOR_VERSION = 2  # 2: liver of adult size; spleen and kidneys enhance as in CT
#: Window applied to the PNG slices (the loader's default window).
PNG_WINDOW = (-100.0, 400.0)
#: Field of view of the phantom slices in millimetres (a typical abdominal CT).
FIELD_OF_VIEW_MM = 380.0

_AIR = -1000.0
_FAT = -100.0


def _ellipse(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float, angle: float = 0.0
) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    u = ((x - cx) * c + (y - cy) * s) / max(ax, 1e-6)
    v = (-(x - cx) * s + (y - cy) * c) / max(ay, 1e-6)
    return u * u + v * v <= 1.0


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    # Two unit-variance low-frequency fields; mixing them by an angle that moves with z
    # gives a texture that changes smoothly from slice to slice.
    def one() -> np.ndarray:
        grid = rng.standard_normal((cells, cells)).astype(np.float32)
        field = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        return field / (field.std() + 1e-6)

    return one(), one()


def phantom_patient(
    patient: int, n_slices: int = 16, size: int = 256, seed: int = 0, tumour: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one patient's slices.

    Args:
        patient: Patient index; with ``seed`` it fixes every random choice.
        n_slices: Axial slices; index 0 is the most inferior.
        size: Slice height and width in pixels.
        seed: Dataset seed.
        tumour: Whether this patient has a liver tumour (label 2).

    Returns:
        ``hu``: ``(n_slices, size, size)`` int16 Hounsfield units and ``labels``:
        ``(n_slices, size, size)`` uint8 (0 background, 1 liver, 2 tumour), display orientation.
    """
    if n_slices < 1 or size < 8:
        raise ValueError(f"need n_slices >= 1 and size >= 8, got {n_slices} and {size}")
    rng = np.random.default_rng([seed, patient])
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    y, x = np.meshgrid(coords, coords, indexing="ij")

    # Per-patient anatomy.
    body_ax, body_ay, body_cy = (
        rng.uniform(0.82, 0.95),
        rng.uniform(0.62, 0.74),
        rng.uniform(0, 0.08),
    )
    fat, wall = rng.uniform(0.04, 0.13), rng.uniform(0.03, 0.06)
    contrast = rng.uniform(0.0, 50.0)  # contrast phase: organs brighten together
    liver_hu = 55.0 + contrast
    noise_sd = rng.uniform(8.0, 18.0)
    liv_cx, liv_cy = rng.uniform(-0.52, -0.38), rng.uniform(-0.15, 0.05)
    liv_r = rng.uniform(0.36, 0.46)
    liv_drift = rng.uniform(-0.08, 0.08, size=2)
    harmonics = np.arange(2, 6)
    amps = rng.normal(0.0, 0.07, size=4) / np.sqrt(harmonics - 1)
    phases = rng.uniform(0, 2 * np.pi, size=4)
    phase_drift = rng.uniform(-1.5, 1.5, size=4)
    z_start, z_end = rng.uniform(-0.2, 0.05), rng.uniform(0.95, 1.25)
    lobe = (rng.uniform(0.22, 0.32), rng.uniform(0.09, 0.14), rng.uniform(-0.2, -0.08))
    vessels = rng.uniform(-1, 1, size=(rng.integers(2, 5), 2)) * 0.5
    vessel_hu = liver_hu + rng.choice([-25.0, 45.0])
    spine_cy = body_cy + rng.uniform(0.3, 0.38)
    # Unenhanced, the spleen reads ~8 HU below the liver; it enhances faster, so with contrast
    # it catches up. Kidneys enhance most (cortex ~150 HU in the portal phase).
    spleen_hu = liver_hu - 8.0 + 0.25 * contrast + rng.normal(0, 4)
    kidney_hu = 30.0 + 2.4 * contrast + rng.uniform(-10, 10)
    # Distractors: (centre x, centre y, half-width, half-height, z limit, HU).
    spleen = (rng.uniform(0.45, 0.6), rng.uniform(0.05, 0.25), rng.uniform(0.12, 0.18),
              rng.uniform(0.16, 0.24), rng.uniform(0.1, 0.45), spleen_hu)  # fmt: skip
    kidney = (rng.uniform(0.27, 0.35), rng.uniform(0.28, 0.38), rng.uniform(0.08, 0.11),
              rng.uniform(0.12, 0.16), rng.uniform(0.5, 0.9), kidney_hu)  # fmt: skip
    stomach = (rng.uniform(0.12, 0.32), rng.uniform(-0.45, -0.3), rng.uniform(0.14, 0.22),
               rng.uniform(0.09, 0.14), rng.uniform(0.5, 0.8), rng.uniform(0.0, 30.0))  # fmt: skip
    bowel_a, bowel_b = _smooth_field(rng, size, 9)
    texture_a, texture_b = _smooth_field(rng, size, 14)
    tumour_at = rng.uniform(-0.4, 0.4, size=2)
    tumour_r, tumour_hu = rng.uniform(0.06, 0.12), liver_hu - rng.uniform(25.0, 50.0)
    tumour_z = np.sort(rng.uniform(0.1, 0.9, size=2))

    # Structures that do not change along z: psoas muscles, vertebra (cortex, marrow, canal,
    # spinous process), aorta and vena cava.
    static = [
        (_ellipse(x, y, -0.13, spine_cy + 0.02, 0.07, 0.09), 48.0),
        (_ellipse(x, y, 0.13, spine_cy + 0.02, 0.07, 0.09), 48.0),
        (_ellipse(x, y, 0.0, spine_cy, 0.12, 0.11), 700.0),
        (_ellipse(x, y, 0.0, spine_cy, 0.095, 0.085), 250.0),
        (_ellipse(x, y, 0.0, spine_cy + 0.17, 0.05, 0.045), 20.0),
        (_ellipse(x, y, 0.0, spine_cy + 0.25, 0.03, 0.06), 650.0),
        (_ellipse(x, y, 0.07, spine_cy - 0.18, 0.05, 0.05), 40.0 + 1.6 * contrast),
        (_ellipse(x, y, -0.13, spine_cy - 0.15, 0.05, 0.04), 40.0 + 1.0 * contrast),
    ]
    vert = static[2][0]

    hu = np.empty((n_slices, size, size), dtype=np.int16)
    labels = np.zeros((n_slices, size, size), dtype=np.uint8)
    for k in range(n_slices):
        t = k / max(n_slices - 1, 1)
        swing = np.pi / 2 * t
        breathe = 1.0 + 0.03 * np.sin(2 * np.pi * t + patient)
        body = _ellipse(x, y, 0.0, body_cy, body_ax * breathe, body_ay * breathe)
        muscle = _ellipse(x, y, 0.0, body_cy, body_ax * breathe - fat, body_ay * breathe - fat)
        inner_ax, inner_ay = body_ax * breathe - fat - wall, body_ay * breathe - fat - wall
        inner = _ellipse(x, y, 0.0, body_cy, inner_ax, inner_ay)

        slab = np.full((size, size), _AIR, dtype=np.float32)
        slab[body] = _FAT
        slab[muscle] = 50.0
        # Inside: visceral fat with bowel loops of soft-tissue density and some gas.
        bowel = np.cos(swing) * bowel_a + np.sin(swing) * bowel_b
        viscera = np.where(bowel > 0.2, 35.0 + 8.0 * bowel, -90.0)
        viscera = np.where(bowel > 2.0, -700.0, viscera)
        slab[inner] = viscera[inner]

        for region, value in static:
            slab[region & inner] = value

        # Liver-like distractors, each over part of the z range.
        sx, sy, sax, say, stop, shu = spleen  # stop: lowest t
        if t > stop:
            grow = np.sqrt(max(0.0, 1.0 - ((1.0 - t) / (1.0 - stop)) ** 4))
            slab[_ellipse(x, y, sx, sy, sax * grow, say * grow, 0.5) & inner] = shu
        kx, ky, kax, kay, ktop, khu = kidney
        if t < ktop:
            for side in (-1.0, 1.0):
                slab[_ellipse(x, y, side * kx, ky, kax, kay, side * 0.4) & inner] = khu
        gx, gy, gax, gay, gstop, ghu = stomach
        if t > 1.0 - gstop:
            wall_mask = _ellipse(x, y, gx, gy, gax, gay) & inner
            slab[wall_mask] = 45.0
            slab[_ellipse(x, y, gx, gy, gax - 0.025, gay - 0.025)] = ghu
            slab[_ellipse(x, y, gx, gy - gay * 0.55, gax * 0.5, gay * 0.3)] = -800.0

        # The liver, drawn last so it owns any overlap.
        p = (t - z_start) / (z_end - z_start)
        extent = np.sqrt(max(0.0, np.sin(np.pi * np.clip(p, 0.0, 1.0)))) * (0.85 + 0.3 * p)
        if extent > 0.15:
            cx, cy = liv_cx + liv_drift[0] * t, liv_cy + liv_drift[1] * t
            theta = np.arctan2(y - cy, x - cx)
            wobble = sum(
                a * np.cos(h * theta + ph + d * t)
                for a, h, ph, d in zip(amps, harmonics, phases, phase_drift, strict=True)
            )
            r_liver = liv_r * extent * (1.0 + wobble)
            liver = (np.hypot(x - cx, y - cy) <= r_liver) & inner
            lax, lay, lcy = lobe
            lobe_scale = max(0.0, 1.0 - 1.3 * (1.0 - t)) * extent
            if lobe_scale > 0.1:
                lobe_x = cx + 0.8 * liv_r * extent + 0.5 * lax * lobe_scale
                liver |= _ellipse(x, y, lobe_x, cy + lcy, lax * lobe_scale, lay * lobe_scale, -0.3)
                liver &= inner & ~vert
            texture = np.cos(swing) * texture_a + np.sin(swing) * texture_b
            slab[liver] = liver_hu + 6.0 * texture[liver]
            for vx, vy in vessels:
                vessel = _ellipse(x, y, cx + vx * liv_r * extent, cy + vy * liv_r * extent,
                                  0.03, 0.025) & liver  # fmt: skip
                slab[vessel] = vessel_hu
            labels[k][liver] = 1
            if tumour and tumour_z[0] <= t <= tumour_z[1]:
                grow = np.sin(np.pi * (t - tumour_z[0]) / max(tumour_z[1] - tumour_z[0], 1e-6))
                blob = (
                    _ellipse(
                        x,
                        y,
                        cx + tumour_at[0] * liv_r * extent,
                        cy + tumour_at[1] * liv_r * extent,
                        tumour_r * (0.4 + 0.6 * grow),
                        tumour_r * (0.35 + 0.55 * grow),
                    )
                    & liver
                )
                slab[blob] = tumour_hu
                labels[k][blob] = 2

        noise = rng.standard_normal((size, size)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), 0.7)
        noise *= noise_sd / (noise.std() + 1e-6)
        slab[body] += noise[body]
        slab[~body] += 0.2 * noise[~body]  # air is nearly noise-free
        hu[k] = np.clip(np.rint(slab), -1024, 3071).astype(np.int16)
    return hu, labels


def _write_nifti(folder: Path, patient_id: str, hu: np.ndarray, labels: np.ndarray) -> None:
    size, n_slices = hu.shape[1], hu.shape[0]
    spacing, thickness = FIELD_OF_VIEW_MM / size, 5.0
    # LPS-like affine, as DICOM conversions (and most LiTS files) have: array axis 0 runs
    # towards the patient's left, axis 1 towards posterior, axis 2 superior. A display slice
    # (rows anterior->posterior, columns right->left) is then the transpose of the array slice.
    affine = np.diag([-spacing, -spacing, thickness, 1.0])
    affine[:3, 3] = [FIELD_OF_VIEW_MM / 2, FIELD_OF_VIEW_MM / 2, -thickness * n_slices / 2]
    volume = nib.Nifti1Image(np.ascontiguousarray(hu.transpose(2, 1, 0)), affine)
    volume.header.set_xyzt_units("mm", "sec")
    segmentation = nib.Nifti1Image(np.ascontiguousarray(labels.transpose(2, 1, 0)), affine)
    segmentation.header.set_xyzt_units("mm", "sec")
    nib.save(volume, folder / f"volume-{patient_id}.nii.gz")
    nib.save(segmentation, folder / f"segmentation-{patient_id}.nii.gz")


def _write_pngs(folder: Path, patient_id: str, hu: np.ndarray, labels: np.ndarray) -> None:
    images = unit_to_uint8(window_to_unit(hu, PNG_WINDOW))
    for k in range(len(hu)):
        name = f"{patient_id}_slice{k:03d}.png"
        cv2.imwrite(str(folder / "images" / name), images[k])
        cv2.imwrite(str(folder / "masks" / name), np.where(labels[k] > 0, 255, 0).astype(np.uint8))


def write_liver_phantoms(
    root: Path | str,
    n_patients: int = 12,
    n_slices: int = 16,
    size: int = 256,
    seed: int = 0,
    nifti_patients: int | None = None,
    tumour_probability: float = 0.5,
) -> Path:
    """Write a phantom liver CT dataset in both real layouts.

    Layout written::

        root/nifti/volume-<i>.nii.gz, segmentation-<i>.nii.gz      (patients 0 .. nifti_patients-1)
        root/slices/images/phantom-<i>_slice<k>.png                (the other patients)
        root/slices/masks/phantom-<i>_slice<k>.png                 (0 / 255)
        root/phantoms.json                                         (the parameters)

    Patient ``i`` is the same drawing whichever layout it is written in.

    Args:
        root: Output folder (created).
        n_patients: Number of patients.
        n_slices: Axial slices per patient.
        size: Slice height and width in pixels.
        seed: Dataset seed; the same arguments always write the same data.
        nifti_patients: How many patients are written as NIfTI; default half (rounded down).
        tumour_probability: Chance that a NIfTI patient has a tumour.

    Returns:
        ``root``.
    """
    if n_patients < 1:
        raise ValueError(f"n_patients must be >= 1, got {n_patients}")
    nifti_patients = n_patients // 2 if nifti_patients is None else nifti_patients
    if not 0 <= nifti_patients <= n_patients:
        raise ValueError(f"nifti_patients must be in [0, {n_patients}], got {nifti_patients}")
    root = Path(root)
    if nifti_patients:
        (root / "nifti").mkdir(parents=True, exist_ok=True)
    if nifti_patients < n_patients:
        for sub in ("images", "masks"):
            (root / "slices" / sub).mkdir(parents=True, exist_ok=True)
    tumours = np.random.default_rng([seed, 10**6]).random(n_patients) < tumour_probability
    for i in tqdm(range(n_patients), desc="drawing liver phantoms", unit="patient", leave=False):
        as_nifti = i < nifti_patients
        hu, labels = phantom_patient(i, n_slices, size, seed, tumour=bool(tumours[i]) and as_nifti)
        if as_nifti:
            _write_nifti(root / "nifti", str(i), hu, labels)
        else:
            _write_pngs(root / "slices", f"phantom-{i:02d}", hu, labels)
    params = {
        "generator_version": GENERATOR_VERSION,
        "n_patients": n_patients,
        "n_slices": n_slices,
        "size": size,
        "seed": seed,
        "nifti_patients": nifti_patients,
        "tumour_probability": tumour_probability,
    }
    (root / "phantoms.json").write_text(json.dumps(params, indent=2))
    log.info("wrote %d liver phantoms (%d as NIfTI) to %s", n_patients, nifti_patients, root)
    return root
