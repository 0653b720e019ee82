"""EmbeddingModule keeps its training gallery in its checkpoints, so predict gives a kNN class."""

from __future__ import annotations

from pathlib import Path

import cv2
import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from litlab.datamodules.face_expression import FaceExpressionDataModule
from litlab.lightning_modules.embedding import EmbeddingModule
from litlab.metrics.functional.knn_retrieval import knn_vote

SIZE = 24


def _folders(root: Path, n_train: int = 6, n_val: int = 2) -> Path:
    """Noise with a bright square in one of four quadrants per class."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("validation", n_val)):
        for label in range(4):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = rng.integers(0, 60, (SIZE, SIZE)).astype(np.uint8)
                r, c = divmod(label, 2)
                image[r * 12 + 3 : r * 12 + 9, c * 12 + 3 : c * 12 + 9] = 220
                cv2.imwrite(str(folder / f"{i:03d}.png"), image)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FaceExpressionDataModule]:
    """A one-epoch fit; its checkpoint and DataModule."""
    tmp = tmp_path_factory.mktemp("gallery")
    pl.seed_everything(0)
    data = FaceExpressionDataModule(root=str(_folders(tmp / "data")), image_size=SIZE,
                                    double_train=False, batch_size=8, m_per_class=2,
                                    num_workers=0)  # fmt: skip
    model = EmbeddingModule(num_classes=4, embedding_dim=16, knn_k=3, projection_plot=False)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, limit_train_batches=2, logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, default_root_dir=tmp)  # fmt: skip
    trainer.fit(model, data)
    ckpt = tmp / "model.ckpt"
    trainer.save_checkpoint(ckpt, weights_only=True)
    return ckpt, data


def test_the_validated_gallery_is_saved_and_restored(trained) -> None:
    ckpt, data = trained
    model = EmbeddingModule.load_from_checkpoint(ckpt, map_location="cpu")
    assert model.gallery_embeddings.shape == (len(data.gallery_set), 16)
    assert sorted(model.gallery_labels.tolist()) == sorted(data.gallery_set.labels.tolist())
    model.eval()
    with torch.no_grad():  # the gallery is the training images embedded by these weights
        images = torch.stack([data.gallery_set[i][0] for i in range(len(data.gallery_set))])
        again = model(images)
    order = torch.cdist(model.gallery_embeddings, again).argmin(dim=1)
    torch.testing.assert_close(again[order], model.gallery_embeddings, atol=1e-5, rtol=0)


def test_predict_votes_over_the_k_nearest_gallery_images(trained) -> None:
    ckpt, data = trained
    model = EmbeddingModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    images = torch.stack([data.val_set[i][0] for i in range(len(data.val_set))])
    with torch.no_grad():
        out = model.predict_step((images, torch.arange(len(images))), 0)
    distances = torch.cdist(out["embeddings"], model.gallery_embeddings)
    nearest = distances.argsort(dim=1)[:, :3]
    expected = knn_vote(model.gallery_labels[nearest], 4)
    assert torch.equal(out["knn_class"], expected)
    votes = (model.gallery_labels[nearest] == expected[:, None]).sum(dim=1)
    assert torch.equal(out["knn_votes"], votes)
    torch.testing.assert_close(out["nearest_distance"], distances.min(dim=1).values)


def test_a_checkpoint_without_gallery_loads_and_predicts_embeddings_only(trained, tmp_path) -> None:
    ckpt, _ = trained
    checkpoint = torch.load(ckpt, weights_only=True)
    for key in ("gallery_embeddings", "gallery_labels"):
        del checkpoint["state_dict"][key]
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    model = EmbeddingModule.load_from_checkpoint(old, map_location="cpu").eval()
    assert len(model.gallery_labels) == 0
    with pytest.warns(UserWarning, match="no training gallery"), torch.no_grad():
        out = model.predict_step(torch.zeros(2, 1, SIZE, SIZE), 0)
    assert set(out) == {"embeddings"} and out["embeddings"].shape == (2, 16)
