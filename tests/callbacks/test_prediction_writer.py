"""PredictionWriter: masks back on each input's grid, embeddings with their kNN rows."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import lightning.pytorch as pl
import nibabel as nib
import numpy as np
import pytest
import torch
from litlab.callbacks.prediction_writer import PredictionWriter
from litlab.datamodules.fer2013 import FER2013DataModule
from litlab.datamodules.liver import LiverDataModule
from litlab.datamodules.liver_decode import unit_to_uint8, window_to_unit

WINDOW = (-100.0, 400.0)


class _Predictor(pl.LightningModule):
    """A module that only predicts: what it predicts and its class names, as the writer reads them."""

    PREDICTS: str | None = None
    CLASS_NAMES: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.class_names = list(self.CLASS_NAMES)


class Threshold(_Predictor):
    """A 'segmenter' whose mask is known: liver where the input is above one half."""

    PREDICTS = "masks"
    CLASS_NAMES = ("background", "liver")

    def predict_step(self, batch, batch_idx):
        return (batch[0][:, 0] > 0.5).long()


class FixedEmbedding(_Predictor):
    """An 'embedder' returning the image mean as a 2-d embedding and class = brighter half."""

    PREDICTS = "embeddings"
    CLASS_NAMES = ("dark", "bright")

    def predict_step(self, batch, batch_idx):
        mean = batch[0].mean(dim=(1, 2, 3))
        bright = (mean > 0).long()
        return {"embeddings": torch.stack([mean, -mean], 1), "knn_class": bright,
                "knn_votes": torch.full_like(bright, 3), "nearest_distance": mean.abs()}  # fmt: skip


def _predict(tmp_path: Path, model: pl.LightningModule, data: pl.LightningDataModule) -> Path:
    writer = PredictionWriter(tmp_path / "predictions")
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                         default_root_dir=tmp_path, callbacks=[writer])  # fmt: skip
    trainer.predict(model, datamodule=data, return_predictions=False)
    return writer.output_dir


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "predictions.csv").open(newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("batch_size", [2, 5])  # a volume's slices over several batches
def test_volume_masks_are_reassembled_on_the_inputs_grid(tmp_path: Path, batch_size) -> None:
    rng = np.random.default_rng(0)
    hu = rng.integers(-300, 600, (32, 32, 7)).astype(np.int16)
    affine = np.diag([-0.7, -0.7, 2.0, 1.0])
    (tmp_path / "in").mkdir()
    nib.save(nib.Nifti1Image(hu, affine), tmp_path / "in" / "volume-5.nii.gz")
    slice_png = rng.integers(0, 256, (40, 24), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "in" / "s.png"), slice_png)
    data = LiverDataModule(image_size=32, hu_window=WINDOW, batch_size=batch_size, num_workers=0)
    data.predict_from(tmp_path / "in")
    out = _predict(tmp_path, Threshold(), data)

    mask = nib.load(out / "masks" / "volume-5.nii.gz")
    expected = unit_to_uint8(window_to_unit(hu, WINDOW)) > 127
    np.testing.assert_array_equal(np.asarray(mask.dataobj), expected)
    np.testing.assert_allclose(mask.affine, affine)
    png = cv2.imread(str(out / "masks" / "s.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (40, 24) and set(np.unique(png)) <= {0, 255}  # the input's own size
    rows = {r["source"]: r for r in _rows(out)}
    volume_row = rows[str(tmp_path / "in" / "volume-5.nii.gz")]
    assert volume_row["mask"] == "masks/volume-5.nii.gz"
    assert float(volume_row["fraction_liver"]) == pytest.approx(expected.mean(), abs=1e-6)
    assert rows[str(tmp_path / "in" / "s.png")]["mask"] == "masks/s.png"


def test_embeddings_are_saved_in_the_rows_order(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for i, level in enumerate((10, 240, 30)):
        cv2.imwrite(str(tmp_path / "in" / f"{i}.png"), np.full((48, 48), level, np.uint8))
    data = FER2013DataModule(csv_path=str(tmp_path / "unused.csv"), batch_size=2, num_workers=0)
    data.predict_from(tmp_path / "in")
    out = _predict(tmp_path, FixedEmbedding(), data)
    embeddings = np.load(out / "embeddings.npy")
    assert embeddings.shape == (3, 2)
    np.testing.assert_allclose(embeddings[:, 0], [10 / 127.5 - 1, 240 / 127.5 - 1, 30 / 127.5 - 1],
                               atol=1e-6)  # fmt: skip
    rows = _rows(out)
    assert [r["knn_class"] for r in rows] == ["dark", "bright", "dark"]
    assert [r["source"] for r in rows] == [str(tmp_path / "in" / f"{i}.png") for i in range(3)]
    assert all(r["knn_votes"] == "3" for r in rows)


def test_a_module_that_does_not_say_what_it_predicts_is_refused(tmp_path: Path) -> None:
    class Anonymous(Threshold):
        PREDICTS = None

    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "s.png"), np.zeros((8, 8), np.uint8))
    data = LiverDataModule(image_size=8, num_workers=0)
    data.predict_from(tmp_path / "in")
    with pytest.raises(ValueError, match="set its PREDICTS to one of probabilities"):
        _predict(tmp_path, Anonymous(), data)
