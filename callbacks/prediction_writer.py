"""``<run>/predictions/``: what ``litlab predict`` writes for every input, by what the model predicts.

The LightningModule says what its ``predict_step`` returns (``PREDICTS``):

* ``"probabilities"`` (classifiers): ``predictions.csv`` with the source of each input (file, or
  ``<file.csv>:<line>``), its true class where the input gives one, the predicted class name and
  one probability column per class;
* ``"embeddings"``: ``embeddings.npy`` ``(N, D)`` float32 in the rows' order, and
  ``predictions.csv`` with the kNN class against the training gallery kept with the model, how
  many of the ``k`` neighbours voted for it and the nearest distance;
* ``"masks"`` (segmenters): one mask per input under ``masks/`` — a PNG for an image, at the
  image's own size (0/255 for two classes, else the class index), and a NIfTI label volume for a
  volume, reassembled from its slices on the input's grid with its affine and header — and
  ``predictions.csv`` with each mask's file and the fraction of pixels per class.

Batches are written as they come, so memory does not grow with the number of inputs (except the
embeddings, kept for one ``.npy``). Inputs come from the DataModule's ``PredictItems``
(:mod:`litlab.datamodules.predict_inputs`), which knows each input's source, name and grid.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import cv2
import lightning.pytorch as pl
import nibabel as nib
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

log = logging.getLogger(__name__)

KINDS = ("probabilities", "embeddings", "masks")
CSV_FILE = "predictions.csv"
EMBEDDINGS_FILE = "embeddings.npy"
MASK_DIR = "masks"


def _dataset(trainer: pl.Trainer) -> Any:
    loaders = trainer.predict_dataloaders
    loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
    return loader.dataset


def _class_names(pl_module: pl.LightningModule) -> list[str]:
    names = getattr(pl_module, "class_names", None) or pl_module.hparams.get("class_names")
    if not names:
        n = pl_module.hparams.get("num_classes") or pl_module.hparams.get("classes") or 0
        names = [f"class_{i}" for i in range(int(n))]
    return [str(name) for name in names]


def save_png(path: Path, image: np.ndarray) -> None:
    """Write a uint8 image as PNG (any path, non-ASCII included)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"could not encode {path} as PNG")
    data.tofile(path)


class PredictionWriter(BasePredictionWriter):
    """Write each predicted batch under ``output_dir`` (module docstring), from one process.

    Args:
        output_dir: The run's ``predictions`` folder.

    Attributes:
        written: Inputs written so far (a volume counts once).
    """

    def __init__(self, output_dir: str | Path) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.written = 0
        self._file: Any = None
        self._csv: Any = None
        self._embeddings: list[np.ndarray] = []
        self._volumes: dict[int, np.ndarray] = {}
        self._filled: dict[int, int] = {}

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            raise ValueError(
                "litlab predict writes its outputs from one process; pass --trainer.devices=1 "
                "(one GPU or the CPU)"
            )
        self.kind = getattr(pl_module, "PREDICTS", None)
        if self.kind not in KINDS:
            raise ValueError(
                f"{type(pl_module).__name__} does not say what its predict_step returns; set "
                f"its PREDICTS to one of {', '.join(KINDS)}"
            )
        self.dataset = _dataset(trainer)
        self.class_names = _class_names(pl_module)
        self.written, self._embeddings, self._volumes, self._filled = 0, [], {}, {}
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._file = (self.output_dir / CSV_FILE).open("w", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(self._header())

    def _header(self) -> list[str]:
        truth = ["true_class"] if getattr(self.dataset, "labels", None) is not None else []
        if self.kind == "probabilities":
            return ["source", *truth, "predicted_class", *(f"p_{n}" for n in self.class_names)]
        if self.kind == "embeddings":
            return ["source", *truth, "knn_class", "knn_votes", "nearest_distance"]
        return ["source", "mask", *(f"fraction_{n}" for n in self.class_names)]

    def _truth(self, index: int) -> list[str]:
        labels = getattr(self.dataset, "labels", None)
        if labels is None:
            return []
        label = int(labels[index])
        return [self.class_names[label] if 0 <= label < len(self.class_names) else ""]

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        indices = [int(i) for i in batch[1]]
        if self.kind == "probabilities":
            self._write_probabilities(indices, prediction)
        elif self.kind == "embeddings":
            self._write_embeddings(indices, prediction)
        else:
            self._write_masks(indices, prediction)
        self._file.flush()

    def _write_probabilities(self, indices: list[int], probs: torch.Tensor) -> None:
        probs = probs.float().cpu().numpy()
        for index, p in zip(indices, probs, strict=True):
            source = self.dataset.sources[index]
            predicted = self.class_names[int(p.argmax())]
            self._csv.writerow([source, *self._truth(index), predicted, *(f"{v:.6f}" for v in p)])
            self.written += 1

    def _write_embeddings(self, indices: list[int], out: dict[str, torch.Tensor]) -> None:
        self._embeddings.append(out["embeddings"].float().cpu().numpy())
        has_knn = "knn_class" in out
        for j, index in enumerate(indices):
            knn = (
                [
                    self.class_names[int(out["knn_class"][j])],
                    int(out["knn_votes"][j]),
                    f"{float(out['nearest_distance'][j]):.6f}",
                ]
                if has_knn
                else ["", "", ""]
            )
            self._csv.writerow([self.dataset.sources[index], *self._truth(index), *knn])
            self.written += 1

    def _write_masks(self, indices: list[int], masks: torch.Tensor) -> None:
        masks = masks.to(torch.uint8).cpu().numpy()
        for index, mask in zip(indices, masks, strict=True):
            volume = int(self.dataset.volume_of[index])
            if volume >= 0:
                self._add_slice(volume, index, mask)
                continue
            sizes = getattr(self.dataset, "sizes", None)
            if sizes is not None and tuple(sizes[index]) != mask.shape:
                rows, cols = (int(v) for v in sizes[index])
                mask = cv2.resize(mask, (cols, rows), interpolation=cv2.INTER_NEAREST_EXACT)
            path = self.output_dir / MASK_DIR / f"{self.dataset.names[index]}.png"
            save_png(path, mask * 255 if len(self.class_names) == 2 else mask)
            self._mask_row(self.dataset.sources[index], path, mask)

    def _add_slice(self, volume: int, index: int, mask: np.ndarray) -> None:
        items = self.dataset.volume_items(volume)
        if volume not in self._volumes:
            self._volumes[volume] = np.zeros((len(items), *mask.shape), np.uint8)
            self._filled[volume] = 0
        self._volumes[volume][index - int(items[0])] = mask
        self._filled[volume] += 1
        if self._filled[volume] < len(items):
            return
        grid = self.dataset.volumes[volume]
        image = grid.mask_image(self._volumes.pop(volume))
        path = self.output_dir / MASK_DIR / f"{self.dataset.names[int(items[0])]}.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(image, path)
        self._mask_row(str(grid.path), path, np.asarray(image.dataobj))

    def _mask_row(self, source: str, path: Path, mask: np.ndarray) -> None:
        counts = np.bincount(mask.ravel(), minlength=len(self.class_names))[: len(self.class_names)]
        fractions = counts / max(1, mask.size)
        rel = path.relative_to(self.output_dir).as_posix()
        self._csv.writerow([source, rel, *(f"{f:.6f}" for f in fractions)])
        self.written += 1

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._volumes:
            missing = ", ".join(str(self.dataset.volumes[v].path) for v in self._volumes)
            log.warning("not every slice was predicted (batch limits?); not written: %s", missing)
        if self._embeddings:
            np.save(self.output_dir / EMBEDDINGS_FILE, np.concatenate(self._embeddings))
        self.teardown(trainer, pl_module, "predict")
        log.info("wrote predictions for %d input(s) to %s", self.written, self.output_dir)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
