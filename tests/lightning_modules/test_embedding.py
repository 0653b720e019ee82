"""EmbeddingModule: triplet training learns, kNN evaluation is honest, presets and DDP run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import yaml
from litlab.datamodules.face_expression import FaceExpressionDataModule
from litlab.lightning_modules.embedding import EmbeddingModule, build_miner
from litlab.metrics import log_keys
from litlab.optim.factory import build_optimizer
from torch.utils.data import DataLoader, TensorDataset

REPO = Path(__file__).resolve().parents[2]
PRESETS = ["faceexpr-facenet", "faceexpr-facenet-sgd", "faceexpr-facenet-rmsprop"]
SIZE = 24


def _toy_image(label: int, rng: np.random.Generator) -> np.ndarray:
    """Noise plus a bright square in one of four quadrants: separable by position."""
    image = rng.integers(0, 60, (SIZE, SIZE)).astype(np.uint8)
    r, c = divmod(label, 2)
    h = SIZE // 2
    image[r * h + 3 : r * h + h - 3, c * h + 3 : c * h + h - 3] = rng.integers(180, 255)
    return image


def _toy_folders(root: Path, n_train: int = 12, n_val: int = 4, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("validation", n_val)):
        for label in range(4):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cv2.imwrite(str(folder / f"{i:03d}.png"), _toy_image(label, rng))
    return root


def _toy_dm(root: Path, **kwargs) -> FaceExpressionDataModule:
    kwargs.setdefault("batch_size", 8)
    kwargs.setdefault("m_per_class", 2)
    return FaceExpressionDataModule(root=str(root), image_size=SIZE, double_train=False,
                                    num_workers=0, **kwargs)  # fmt: skip


def _trainer(tmp_path: Path, **kwargs) -> pl.Trainer:
    kwargs.setdefault("max_epochs", 1)
    return pl.Trainer(accelerator="cpu", devices=1, default_root_dir=str(tmp_path), logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, **kwargs)  # fmt: skip


def test_mined_triplet_loss_decreases_and_knn_beats_chance(tmp_path: Path) -> None:
    pl.seed_everything(0)
    dm = _toy_dm(_toy_folders(tmp_path / "data"), batches_per_epoch=8)
    dm.setup("fit")
    model = EmbeddingModule(num_classes=4, lr=1e-3, knn_k=3, projection_plot=False)
    fixed = next(iter(dm.train_dataloader()))

    def fixed_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(model.model_step(fixed)[0])

    before = fixed_loss()
    model.train()  # Lightning keeps the modes it finds
    trainer = _trainer(tmp_path, max_epochs=3)
    trainer.fit(model, dm)
    after = fixed_loss()
    assert after < before
    metrics = trainer.callback_metrics
    assert float(metrics["val/knn_acc"]) > 0.5  # chance is 0.25
    assert float(metrics["val/gallery_size"]) == 48
    assert float(metrics["val/self_matches"]) == 0
    assert float(metrics["train/time_s"]) >= float(metrics["train/epoch_time_s"]) > 0
    assert {"val/precision", "val/recall", "val/f1", "val/precision_at_1", "val/map_at_r",
            "val/loss", "val/knn_acc_best"} <= set(metrics)  # fmt: skip


class _ValidateOnTrain(FaceExpressionDataModule):
    """A user evaluating on the training images: queries and gallery are the same set."""

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        self.val_set = self.gallery_set


def test_a_query_is_never_its_own_neighbour(tmp_path: Path) -> None:
    dm = _ValidateOnTrain(root=str(_toy_folders(tmp_path / "data")), image_size=SIZE,
                          double_train=False, num_workers=0, batch_size=8, m_per_class=2)  # fmt: skip
    model = EmbeddingModule(num_classes=4, knn_k=1)
    (out,) = _trainer(tmp_path).validate(model, dm, verbose=False)
    # every one of the 48 queries found (and skipped) itself in the gallery
    assert out["val/self_matches"] == 48
    assert out["val/gallery_size"] == 48
    # the projection plot of held-out embeddings is written beside the run
    assert list((tmp_path / "images").glob("val_embeddings_pca-epoch*.png"))


class _NoGallery(pl.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(24, 1, SIZE, SIZE, generator=g)
        self.y = torch.arange(24) % 3

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=8)


def test_without_a_gallery_the_held_out_set_is_evaluated_leave_one_out(tmp_path: Path) -> None:
    model = EmbeddingModule(num_classes=3, knn_k=3, projection_plot=False)
    with pytest.warns(UserWarning, match="leave-one-out"):
        (out,) = _trainer(tmp_path).validate(model, _NoGallery(), verbose=False)
    assert out["val/self_matches"] == 24 and out["val/gallery_size"] == 24


def test_timm_trunk_and_factories() -> None:
    model = EmbeddingModule(trunk="resnet18", embedding_dim=512).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, SIZE, SIZE))
    assert out.shape == (2, 512)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="timm.list_models"):
        EmbeddingModule(trunk="no-such-net")
    for name in ("batch_hard", "semi_hard", "all"):
        emb = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
        triplets = build_miner(name, 0.2)(emb, torch.arange(8) % 2)
        assert len(triplets) == 3
    with pytest.raises(ValueError, match="batch_hard"):
        build_miner("hardest", 0.2)
    assert EmbeddingModule.MONITOR == log_keys.key("val", log_keys.KNN_ACC) == "val/knn_acc"
    assert EmbeddingModule.MONITOR_MODE == "max"


@pytest.mark.parametrize("name", PRESETS)
def test_presets_build_the_paper_setup(name: str) -> None:
    cfg = yaml.safe_load((REPO / "litlab" / "presets" / f"{name}.yaml").read_text())
    assert cfg["trainer"]["max_epochs"] == 8
    model_args = cfg["model"]["init_args"]
    assert model_args["lr"] == pytest.approx(1e-4) and model_args["embedding_dim"] == 128
    assert model_args["optimizer"] == {"faceexpr-facenet": "adam", "faceexpr-facenet-sgd": "sgd",
                                       "faceexpr-facenet-rmsprop": "rmsprop"}[name]  # fmt: skip
    assert cfg["data"]["init_args"]["batch_size"] == 16
    assert cfg["data"]["init_args"]["double_train"] is True
    model = EmbeddingModule(**model_args)
    opt = build_optimizer(model.parameters(), model.hparams.optimizer, model.hparams.lr)
    expected = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}
    assert type(opt) is expected[model_args["optimizer"]]
    assert cfg["model"]["class_path"] == "litlab.lightning_modules.embedding.EmbeddingModule"
    assert (
        cfg["data"]["class_path"] == "litlab.datamodules.face_expression.FaceExpressionDataModule"
    )
    FaceExpressionDataModule(**cfg["data"]["init_args"])


def _fast_dev_run(name: str, tmp_path: Path) -> dict[str, float]:
    from litlab.cli import fit_and_test

    return fit_and_test([
        "--config", name, "--trainer.fast_dev_run=true", "--trainer.accelerator=cpu",
        f"--output_dir={tmp_path}", "--wandb_mode=disabled",
        "--data.init_args.num_workers=0", "--data.init_args.synthetic_train=60",
        "--data.init_args.synthetic_val=20",
    ])  # fmt: skip


def test_preset_fast_dev_run(tmp_path: Path) -> None:
    results = _fast_dev_run("faceexpr-facenet", tmp_path)
    assert 0.0 <= results["test/knn_acc"] <= 1.0
    assert results["test/self_matches"] == 0
    assert list(tmp_path.glob("faceexpr-facenet/*/images/test_embeddings_pca-*.png"))


@pytest.mark.slow
@pytest.mark.parametrize("name", PRESETS[1:])
def test_other_presets_fast_dev_run(name: str, tmp_path: Path) -> None:
    assert "test/knn_acc" in _fast_dev_run(name, tmp_path)


DDP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import lightning.pytorch as pl
    import torch
    from litlab.datamodules.face_expression import FaceExpressionDataModule
    from litlab.lightning_modules.embedding import EmbeddingModule

    root, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)

    class Record(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            bs = trainer.train_dataloader.batch_sampler
            self.batches = list(bs)
            self.world = bs._world()

        def on_fit_end(self, trainer, module):
            m = {k: float(v) for k, v in trainer.callback_metrics.items()}
            path = os.path.join(out, f"rank{trainer.global_rank}.json")
            with open(path, "w") as f:
                json.dump({"batches": self.batches, "world": self.world, "metrics": m}, f)

    pl.seed_everything(0)
    dm = FaceExpressionDataModule(root=root, image_size=32, double_train=False, num_workers=0,
                                  batch_size=8, m_per_class=2, seed=0)
    model = EmbeddingModule(num_classes=4, knn_k=3, projection_plot=False)
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[Record()],
                         default_root_dir=out)
    trainer.fit(model, dm)
    """
)


def test_two_process_cpu_ddp_fit_with_the_sampler(tmp_path: Path) -> None:
    root = _toy_folders(tmp_path / "data")
    script = tmp_path / "ddp_fit.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(script), str(root), str(tmp_path)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [[2, 0], [2, 1]]
    # 48 train images / batch 8 = 6 global batches -> 3 per rank, disjoint
    assert [len(r["batches"]) for r in ranks] == [3, 3]
    seen = [{i for b in r["batches"] for i in b} for r in ranks]
    assert not seen[0] & seen[1]
    # the gallery was sharded over the ranks and gathered back whole
    for r in ranks:
        assert r["metrics"]["val/gallery_size"] == 48
        assert r["metrics"]["val/self_matches"] == 0
