"""``litlab workflow remove-background``: a face folder copied with its background removed.

``litlab workflow remove-background --checkpoint <segmenter.ckpt> --images faces/ --out copy/``

A trained face segmenter (a 2-class ``SegmentationModule``, class 1 = face, e.g. from ``litlab
fit --config autism-face-segmenter``) predicts a mask for every image under ``--images`` (any
depth), and the background outside it is set to zero or blurred. The copy mirrors the source's
layout (:mod:`litlab.datamodules.autism_copy`): ``images/``, ``masks/``, ``preview.png``, then
``copy.json``; an interrupted copy has no ``copy.json`` and is made again from the start. This is
the middle step of ``litlab workflow segment-then-classify``, a run of its own, and it also
prepares new faces for ``litlab predict`` with the segmented arm.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from litlab.callbacks.run_result import save_result
from litlab.datamodules.autism_copy import (
    IMAGES_DIR,
    MANIFEST,
    MASKS_DIR,
    PREVIEW,
    SegmentedCopy,
    write_manifest,
)
from litlab.datamodules.cache import cache_root
from litlab.datamodules.face_masks import (
    BACKGROUND_MODES,
    mask_preview_grid,
    remove_background,
    save_rgb_png,
)
from litlab.datamodules.face_segmentation import to_model_input
from litlab.datamodules.folders import is_image_file, load_images
from litlab.lightning_modules.segmentation import SegmentationModule
from litlab.runs import RUN_DIR_ENV

log = logging.getLogger(__name__)

ACCELERATORS = ("auto", "cpu", "gpu")


@torch.no_grad()
def predict_masks(
    model: SegmentationModule, images: np.ndarray, batch_size: int, device: torch.device
) -> np.ndarray:
    """Face masks predicted by a trained segmenter.

    Args:
        model: A 2-class ``SegmentationModule`` (class 1 = face) in eval mode.
        images: ``(N, S, S, 3)`` RGB uint8; ``S`` must suit the network (a multiple of 16 for
            DeepLabV3+).
        batch_size: Images per forward pass.
        device: Where to run.

    Returns:
        ``(N, S, S)`` uint8, 1 on the face.
    """
    model = model.to(device)
    out = np.empty(images.shape[:3], np.uint8)
    for start in range(0, len(images), batch_size):
        x = to_model_input(images[start : start + batch_size]).to(device)
        out[start : start + len(x)] = model(x).argmax(1).to(torch.uint8).cpu().numpy()
    return out


def load_segmenter(checkpoint: Path, device: torch.device) -> SegmentationModule:
    """A face segmenter from its checkpoint, in eval mode.

    Raises:
        FileNotFoundError: No such file.
        ValueError: The checkpoint is not a 2-class RGB segmenter.
    """
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"segmenter checkpoint {checkpoint} does not exist; train one with `litlab fit "
            "--config autism-face-segmenter` (its run keeps checkpoints/best.ckpt)"
        )
    # weights_only: the checkpoint holds tensors and plain hyperparameters only.
    model = SegmentationModule.load_from_checkpoint(
        str(checkpoint), map_location=device, weights_only=True
    )
    hp = model.hparams
    if hp.get("classes") != 2 or hp.get("in_channels") != 3:
        raise ValueError(
            f"{checkpoint} is a {hp.get('classes')}-class segmenter of {hp.get('in_channels')}-"
            "channel images; a face segmenter takes RGB images and predicts 2 classes "
            "(background, face): pass one from `litlab fit --config autism-face-segmenter`"
        )
    return model.eval()


def image_folders(root: Path, limit_per_folder: int | None = None) -> dict[Path, list[Path]]:
    """The image files under ``root`` grouped by folder (sorted; the first ``limit_per_folder``
    of each when given).

    Raises:
        FileNotFoundError: ``root`` is missing or holds no image.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    folders: dict[Path, list[Path]] = defaultdict(list)
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if is_image_file(path) and not any(part.startswith(".") for part in rel.parts):
            folders[path.parent].append(path)
    if not folders:
        raise FileNotFoundError(f"{root} holds no image files at any depth")
    return {k: v[:limit_per_folder] for k, v in folders.items()}


def device_for(accelerator: str) -> torch.device:
    """``auto`` and ``gpu`` take the first CUDA device when there is one; else the CPU."""
    if accelerator not in ACCELERATORS:
        raise ValueError(f"--accelerator must be one of {ACCELERATORS}, got {accelerator!r}")
    if accelerator != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def write_copy(
    checkpoint: Path,
    images_root: Path,
    out: Path,
    image_size: int = 224,
    background: str = "zero",
    blur_sigma: float = 8.0,
    batch_size: int = 8,
    limit_per_folder: int | None = None,
    accelerator: str = "auto",
) -> SegmentedCopy:
    """Predict a mask for every image and write the background-removed copy (module docstring).

    Raises:
        FileNotFoundError: The checkpoint or the images are missing.
        ValueError: A bad option, or a checkpoint that is not a face segmenter.
    """
    if background not in BACKGROUND_MODES:
        raise ValueError(f"--background must be one of {BACKGROUND_MODES}, got {background!r}")
    if image_size < 16 or image_size % 16:
        raise ValueError(
            f"--image-size {image_size} is not a multiple of 16, which the DeepLabV3+ segmenter "
            f"needs; use e.g. {max(16, round(image_size / 16) * 16)}"
        )
    if limit_per_folder is not None and limit_per_folder < 1:
        raise ValueError(f"--limit-per-folder must be >= 1, got {limit_per_folder}")
    folders = image_folders(images_root, limit_per_folder)
    device = device_for(accelerator)
    model = load_segmenter(checkpoint, device)
    start, count = time.time(), 0
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # the copy is unfinished until it is written again
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
    try:
        preview: tuple[np.ndarray, ...] | None = None
        for folder, paths in folders.items():
            images = load_images(paths, image_size, "rgb", cache_root() / "autism" / "images")
            masks = predict_masks(model, images, batch_size, device)
            segmented = remove_background(images, masks, background, blur_sigma)
            for path, mask, image in zip(paths, masks, segmented, strict=True):
                rel = path.relative_to(images_root).with_suffix(".png")
                save_rgb_png(tmp / IMAGES_DIR / rel, image)
                save_rgb_png(tmp / MASKS_DIR / rel, (mask * 255).astype(np.uint8))
            count += len(paths)
            if preview is None or "test" in folder.relative_to(images_root).parts[:1]:
                preview = (images[:8], masks[:8], segmented[:8])
            log.info("%s: %d image(s) segmented", folder.relative_to(images_root), len(paths))
        save_rgb_png(tmp / PREVIEW, mask_preview_grid(*preview))
        for name in (IMAGES_DIR, MASKS_DIR, PREVIEW):  # an earlier, interrupted copy goes
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(tmp / name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    copy = SegmentedCopy(
        root=out,
        source_root=images_root.resolve(),
        image_size=image_size,
        background=background,
        blur_sigma=blur_sigma,
        segmenter_checkpoint=str(checkpoint.resolve()),
        segmenter=f"{model.hparams.get('arch')}/{model.hparams.get('encoder_name')}",
        images=count,
        limit_per_folder=limit_per_folder,
    )
    write_manifest(copy)
    log.info(
        "wrote the %s-background copy of %d image(s) in %.0f s to %s%s",
        background, count, time.time() - start, out,
        f" (the first {limit_per_folder} of each folder)" if limit_per_folder else "",
    )  # fmt: skip
    return copy


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="litlab workflow remove-background",
        description="Copy a face folder with the background removed by a trained face segmenter.",
    )
    p.add_argument("--checkpoint", required=True, help="the face segmenter's .ckpt")
    p.add_argument("--images", required=True, help="folder of face images (any depth)")
    p.add_argument("--out", default=None, help="the copy's folder (default: $LITLAB_RUN_DIR)")
    p.add_argument("--image-size", type=int, default=224, help="side of the copy's images")
    p.add_argument("--background", default="zero", help=f"one of {', '.join(BACKGROUND_MODES)}")
    p.add_argument("--blur-sigma", type=float, default=8.0, help="Gaussian sigma of blur")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    p.add_argument("--limit-per-folder", type=int, default=None, help="first N of each folder")
    p.add_argument("--accelerator", default="auto", help=f"one of {', '.join(ACCELERATORS)}")
    return p


def main(argv: list[str]) -> int:
    """Console entry point; returns the exit status (2 for bad input)."""
    args = _parser().parse_args(argv)
    out = args.out or os.environ.get(RUN_DIR_ENV)
    if not out:
        print("litlab workflow remove-background: error: pass --out <folder>")
        return 2
    out = Path(out).expanduser()
    started = time.time()
    try:
        copy = write_copy(
            Path(args.checkpoint).expanduser(),
            Path(args.images).expanduser(),
            out,
            args.image_size,
            args.background,
            args.blur_sigma,
            args.batch_size,
            args.limit_per_folder,
            args.accelerator,
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"litlab workflow remove-background: error: {err}")
        return 2
    result = {"status": "finished", "copy": copy.as_json(), "seconds": time.time() - started}
    save_result(out, result)
    print(f"background-removed copy: {copy.images_root} ({copy.images} images)")
    print(f"masks:                   {copy.masks_root}")
    print(f"preview:                 {out / PREVIEW}")
    return 0
