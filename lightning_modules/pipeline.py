"""Segment-then-classify: the chain that turns a face dataset into a background-removed copy.

The autism paper's second arm (DeepLabV3+ with a ResNet-50 encoder removes the background, then
the same ResNet-50 classifies) as four cached stages:

1. **masks**: face masks for ``train/`` and ``valid/`` — a user mask folder or pseudo-masks
   (:mod:`litlab.datamodules.face_masks`), cached by the pixels and options;
2. **segmenter**: ``SegmentationModule`` (DeepLabV3+ / ResNet-50, 2 classes) trained on them by a
   nested ``pl.Trainer`` (best val/loss kept), under ``cache_root()/autism/segmenter/<key>``;
3. **predict**: the segmenter's mask for every image of every split;
4. **copy**: background removed (zero or blur), written in the same layout under
   ``cache_root()/autism/segmented/<key>/images`` with the masks beside it in ``masks/``.

Each key covers everything that changes the stage's output: the source files (paths, sizes,
modification times), image size, mask and segmenter settings, the Trainer settings that reach
the nested stage (fast_dev_run, batch limits, precision) and the background mode. A finished stage
is marked by a ``DONE.json`` written last (a copy is assembled in a temporary folder and renamed),
so an interrupted run is never mistaken for a finished one. Each run logs what it built and
what it reused.

The nested stage runs with its own RNG state (saved and restored around it), so the classifier
that follows sees the same random numbers whether the stages ran or came from the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from litlab.datamodules.autism import AutismLayout, index_autism_layout
from litlab.datamodules.cache import cache_root
from litlab.datamodules.face_masks import mask_preview_grid, remove_background, save_rgb_png
from litlab.datamodules.face_segmentation import FaceMaskDataModule, to_model_input
from litlab.datamodules.folders import load_images
from litlab.lightning_modules.segmentation import SegmentationModule
from litlab.metrics import log_keys
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

# Bump when a stage's code changes what it writes, so stale caches are never reused.
_CHAIN_VERSION = 1
DONE = "DONE.json"


def _digest(*parts: Any) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def _file_stats(path: Path) -> str:
    st = os.stat(path)
    return f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}"


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed Python, NumPy and torch (CPU and CUDA) for a block, then restore their states."""
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        pl.seed_everything(seed, workers=True, verbose=False)
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


@dataclass(frozen=True)
class StageTrainerSettings:
    """The outer Trainer's settings that a nested stage inherits.

    Attributes:
        accelerator: ``"cpu"``, ``"gpu"``, ``"mps"`` or ``"auto"``.
        fast_dev_run: The outer ``fast_dev_run`` (batches, or ``False``).
        limit_train_batches: The outer limit (fraction or count).
        limit_val_batches: The outer limit (fraction or count).
        precision: The outer precision, e.g. ``"32-true"``, ``"bf16-mixed"``.
    """

    accelerator: str = "auto"
    fast_dev_run: int | bool = False
    limit_train_batches: float | int = 1.0
    limit_val_batches: float | int = 1.0
    precision: str = "32-true"

    @classmethod
    def from_trainer(cls, trainer: pl.Trainer | None) -> StageTrainerSettings:
        """Read the settings off a Trainer; defaults when there is none."""
        if trainer is None:
            return cls()
        name = type(trainer.accelerator).__name__.lower()
        accelerator = next((a for a in ("cpu", "cuda", "mps") if name.startswith(a)), "auto")
        fast = trainer.fast_dev_run
        return cls(
            accelerator="gpu" if accelerator == "cuda" else accelerator,
            fast_dev_run=int(fast) if fast else False,
            # fast_dev_run sets the limits itself; keep the user's own limits out of its key
            limit_train_batches=1.0 if fast else trainer.limit_train_batches,
            limit_val_batches=1.0 if fast else trainer.limit_val_batches,
            precision=str(trainer.precision),
        )

    def token(self) -> str:
        """What in these settings changes a stage's output (not the device)."""
        return f"fdr={self.fast_dev_run}|ltb={self.limit_train_batches}|lvb={self.limit_val_batches}|p={self.precision}"

    def device(self) -> torch.device:
        """The device predictions run on."""
        if self.accelerator in ("gpu", "auto") and torch.cuda.is_available():
            return torch.device("cuda")
        if self.accelerator == "mps" and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")


class SegmentationChain:
    """Build or reuse the background-removed copy of a Kaggle-layout face dataset.

    Args:
        source_root: The raw dataset (``<split>/<class>/*``).
        image_size: Side images are resized to for the segmenter and the copy.
        seed: Seed of the segmenter training.
        num_workers: DataLoader workers for segmenter training.
        predict_limit: Under ``fast_dev_run``, images segmented per split and class.
        stage: Settings inherited from the outer Trainer.
        background: ``"zero"`` or ``"blur"``.
        blur_sigma: Gaussian sigma for ``"blur"``.
        mask_root: User masks mirroring the layout; ``None`` makes pseudo-masks.
        box_method, grabcut_iterations, grabcut_size: Pseudo-mask settings.
        segmenter_checkpoint: A trained ``SegmentationModule`` checkpoint to use instead of
            training one.
        arch, encoder_name, loss, lr, max_epochs, batch_size: Segmenter settings.
    """

    def __init__(
        self,
        source_root: Path,
        image_size: int,
        seed: int = 42,
        num_workers: int = 2,
        predict_limit: int = 8,
        stage: StageTrainerSettings | None = None,
        background: str = "zero",
        blur_sigma: float = 8.0,
        mask_root: str | None = None,
        box_method: str = "auto",
        grabcut_iterations: int = 5,
        grabcut_size: int = 128,
        segmenter_checkpoint: str | None = None,
        arch: str = "DeepLabV3Plus",
        encoder_name: str = "resnet50",
        loss: str = "ce",
        lr: float = 1e-3,
        max_epochs: int = 10,
        batch_size: int = 8,
    ) -> None:
        self.source_root = Path(source_root)
        self.image_size = image_size
        self.seed = seed
        self.num_workers = num_workers
        self.predict_limit = predict_limit
        self.stage = stage or StageTrainerSettings()
        self.background = background
        self.blur_sigma = blur_sigma
        self.mask_root = mask_root
        self.box_method = box_method
        self.grabcut_iterations = grabcut_iterations
        self.grabcut_size = grabcut_size
        self.given_checkpoint = (
            Path(segmenter_checkpoint).expanduser() if segmenter_checkpoint else None
        )
        if self.given_checkpoint is not None and not self.given_checkpoint.is_file():
            raise FileNotFoundError(
                f"segmenter checkpoint {self.given_checkpoint} does not exist; train one with "
                "`litlab fit --config autism-face-segmenter` or leave data.segmenter_checkpoint unset"
            )
        self.segmenter = {
            "arch": arch,
            "encoder_name": encoder_name,
            "loss": loss,
            "lr": lr,
            "max_epochs": max_epochs,
            "batch_size": batch_size,
        }
        self._layout: AutismLayout | None = None

    # -- keys and folders ------------------------------------------------------------------
    def layout(self) -> AutismLayout:
        """The indexed source dataset (indexed once)."""
        if self._layout is None:
            self._layout = index_autism_layout(self.source_root)
        return self._layout

    def mask_key(self) -> str:
        """Key of the training masks: source files, size and how the masks are made."""
        if self.mask_root:
            root = Path(self.mask_root).expanduser()
            files = sorted(p for p in root.rglob("*") if p.is_file())
            how = _digest("folder", *(_file_stats(p) for p in files))
        else:
            how = f"pseudo|{self.box_method}|{self.grabcut_iterations}|{self.grabcut_size}"
        return _digest(_CHAIN_VERSION, self.layout().fingerprint(), self.image_size, how)

    def segmenter_key(self) -> str:
        """Key of the trained segmenter: masks, segmenter and inherited Trainer settings."""
        if self.given_checkpoint is not None:
            return _digest("given", _file_stats(self.given_checkpoint))
        return _digest(
            _CHAIN_VERSION,
            self.mask_key(),
            sorted(self.segmenter.items()),
            self.seed,
            self.stage.token(),
        )

    def segmenter_dir(self) -> Path:
        return cache_root() / "autism" / "segmenter" / self.segmenter_key()

    def segmenter_checkpoint(self) -> Path:
        """The checkpoint the copy is predicted with (given, or trained into the cache)."""
        return self.given_checkpoint or self.segmenter_dir() / "segmenter.ckpt"

    def _limit(self) -> int | None:
        return self.predict_limit if self.stage.fast_dev_run else None

    def copy_key(self) -> str:
        """Key of the segmented copy: segmenter, source files, size, background and limit."""
        return _digest(
            _CHAIN_VERSION,
            self.segmenter_key(),
            self.layout().fingerprint(),
            self.image_size,
            self.background,
            self.blur_sigma if self.background == "blur" else "",
            self._limit(),
        )

    def copy_dir(self) -> Path:
        return cache_root() / "autism" / "segmented" / self.copy_key()

    def copy_root(self) -> Path:
        """The background-removed dataset (``<split>/<class>/<stem>.png``)."""
        return self.copy_dir() / "images"

    def copy_masks_root(self) -> Path:
        """The predicted masks (``<split>/<class>/<stem>.png``, 255 = face)."""
        return self.copy_dir() / "masks"

    def copy_done(self) -> bool:
        return (self.copy_dir() / DONE).is_file()

    # -- stages ------------------------------------------------------------------------------
    def run(self) -> Path:
        """Build whatever is missing and return :meth:`copy_root`."""
        if self.copy_done():
            log.info("segment-then-classify: reusing cached segmented copy %s", self.copy_root())
            return self.copy_root()
        checkpoint = self.ensure_segmenter()
        self.write_copy(checkpoint)
        return self.copy_root()

    def ensure_segmenter(self) -> Path:
        """Train the segmenter unless it is given or cached; returns its checkpoint."""
        if self.given_checkpoint is not None:
            log.info("segment-then-classify: using the given segmenter %s", self.given_checkpoint)
            return self.given_checkpoint
        out = self.segmenter_dir()
        if (out / DONE).is_file() and (out / "segmenter.ckpt").is_file():
            log.info("segment-then-classify: reusing cached segmenter %s", out / "segmenter.ckpt")
            return out / "segmenter.ckpt"
        log.info(
            "segment-then-classify: training the %s/%s face segmenter (%s) into %s",
            self.segmenter["arch"],
            self.segmenter["encoder_name"],
            "fast_dev_run" if self.stage.fast_dev_run else f"{self.segmenter['max_epochs']} epochs",
            out,
        )
        if out.exists():  # an interrupted earlier attempt
            shutil.rmtree(out)
        out.mkdir(parents=True)
        start = time.time()
        with isolated_rng(self.seed):
            data = FaceMaskDataModule(
                root=str(self.source_root),
                mask_root=self.mask_root,
                image_size=self.image_size,
                box_method=self.box_method,
                grabcut_iterations=self.grabcut_iterations,
                grabcut_size=self.grabcut_size,
                augment=True,
                limit_per_class=self._limit(),
                batch_size=self.segmenter["batch_size"],
                num_workers=self.num_workers,
                seed=self.seed,
            )
            model = SegmentationModule(
                arch=self.segmenter["arch"],
                encoder_name=self.segmenter["encoder_name"],
                in_channels=3,
                classes=2,
                loss=self.segmenter["loss"],
                optimizer="adam",
                lr=self.segmenter["lr"],
                class_names=["background", "face"],
            )
            checkpoint_cb = ModelCheckpoint(
                dirpath=str(out / "checkpoints"),
                filename="best",
                monitor=log_keys.VAL_LOSS,
                mode="min",
                auto_insert_metric_name=False,
            )
            trainer = pl.Trainer(
                accelerator=self.stage.accelerator,
                devices=1,  # a nested stage never spawns processes, even inside a DDP run
                max_epochs=self.segmenter["max_epochs"],
                fast_dev_run=self.stage.fast_dev_run,
                limit_train_batches=self.stage.limit_train_batches,
                limit_val_batches=self.stage.limit_val_batches,
                precision=self.stage.precision,
                logger=CSVLogger(str(out), name="", version="csv"),
                callbacks=[checkpoint_cb],
                default_root_dir=str(out),
                enable_model_summary=False,
                num_sanity_val_steps=0,
            )
            trainer.fit(model, datamodule=data)
        final = out / "segmenter.ckpt"
        if checkpoint_cb.best_model_path:
            shutil.copyfile(checkpoint_cb.best_model_path, final)
        else:  # fast_dev_run saves no checkpoints
            trainer.save_checkpoint(str(final))
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        (out / DONE).write_text(
            json.dumps(
                {
                    "checkpoint": str(final),
                    "best_val_loss": float(checkpoint_cb.best_model_score)
                    if checkpoint_cb.best_model_score is not None
                    else None,
                    "last_metrics": metrics,
                    "settings": self.segmenter,
                    "stage": asdict(self.stage),
                    "mask_preview": str(data.preview_path),
                    "seconds": round(time.time() - start, 1),
                },
                indent=2,
            )
        )
        log.info(
            "segment-then-classify: segmenter trained in %.0f s (val/miou %.3f); mask preview %s",
            time.time() - start,
            metrics.get(log_keys.VAL_MIOU, float("nan")),
            data.preview_path,
        )
        return final

    def write_copy(self, checkpoint: Path) -> Path:
        """Predict a mask for every image and write the background-removed copy."""
        layout = self.layout()
        limit = self._limit()
        device = self.stage.device()
        # weights_only: the checkpoint holds tensors and plain hyperparameters only.
        model = SegmentationModule.load_from_checkpoint(
            str(checkpoint), map_location=device, weights_only=True
        )
        model.eval()
        final = self.copy_dir()
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
        counts: dict[str, int] = {}
        preview: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        try:
            for split, index in layout.splits.items():
                paths = [
                    p
                    for label in range(len(index.classes))
                    for p in [
                        q for q, lab in zip(index.paths, index.labels, strict=True) if lab == label
                    ][:limit]
                ]
                images = load_images(
                    paths, self.image_size, "rgb", cache_root() / "autism" / "images"
                )
                masks = predict_masks(model, images, self.segmenter["batch_size"], device)
                segmented = remove_background(images, masks, self.background, self.blur_sigma)
                for path, mask, image in zip(paths, masks, segmented, strict=True):
                    rel = path.relative_to(layout.root).with_suffix(".png")
                    save_rgb_png(tmp / "images" / rel, image)
                    save_rgb_png(tmp / "masks" / rel, (mask * 255).astype(np.uint8))
                counts[split] = len(paths)
                if split == "test":
                    preview = [(images[:8], masks[:8], segmented[:8])]
            if preview:
                save_rgb_png(tmp / "preview.png", mask_preview_grid(*preview[0]))
            (tmp / DONE).write_text(
                json.dumps(
                    {
                        "source_root": str(layout.root),
                        "segmenter_checkpoint": str(checkpoint),
                        "background": self.background,
                        "image_size": self.image_size,
                        "images": counts,
                        "fast_dev_run_subset": limit,
                    },
                    indent=2,
                )
            )
            if final.exists():  # an interrupted earlier attempt without DONE.json
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info(
            "segment-then-classify: wrote the %s-background copy (%s) to %s%s",
            self.background,
            ", ".join(f"{k} {v}" for k, v in counts.items()),
            self.copy_root(),
            f" (fast_dev_run: {limit} images per split and class)" if limit else "",
        )
        return self.copy_root()


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
    for start in tqdm(
        range(0, len(images), batch_size), desc="predicting masks", unit="batch", leave=False,
        disable=len(images) <= batch_size,
    ):  # fmt: skip
        x = to_model_input(images[start : start + batch_size]).to(device)
        out[start : start + len(x)] = model(x).argmax(1).to(torch.uint8).cpu().numpy()
    return out
