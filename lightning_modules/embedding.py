"""Triplet-loss embedding training with honest kNN evaluation on held-out images.

Training: L2-normalised embeddings, pytorch-metric-learning's ``TripletMarginLoss`` on triplets
mined online in each class-balanced batch (batch-hard, semi-hard or all margin violators).

Evaluation (each validation and test epoch): the DataModule's ``gallery_dataloader()`` (the training
images without augmentation) is embedded at epoch end, sharded over DDP ranks and gathered by
torchmetrics; each held-out image is a query classified by a kNN vote over the gallery
(:mod:`litlab.metrics.knn_retrieval`). Gallery items byte-identical to a query (same content id) are
excluded, so a query is never its own neighbour; their count is logged as ``{stage}/self_matches``
(train/validation duplicates). Without a ``gallery_dataloader`` the held-out set is evaluated
leave-one-out against itself.

Prediction: each validation epoch's gallery is kept with the model (buffers, so it is saved in its
checkpoints), and ``predict_step`` gives each image's kNN class without the training data.
"""

from __future__ import annotations

import logging
import time

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from litlab.datamodules.identity import content_ids
from litlab.metrics import log_keys
from litlab.metrics.functional.knn_retrieval import knn_vote
from litlab.metrics.knn_retrieval import KNNRetrievalMetric
from litlab.networks.factory import create_embedding_net
from litlab.optim.factory import configure
from litlab.plots.embedding_projection import projection_figure
from litlab.plots.run_images import log_image
from pytorch_metric_learning import losses, miners
from torch.utils.data import DataLoader, Subset
from torchmetrics import MaxMetric
from torchmetrics.utilities import dim_zero_cat

log = logging.getLogger(__name__)

MINERS = ("batch_hard", "semi_hard", "all")
EPOCH_TIME_S = "epoch_time_s"
TIME_S = "time_s"
EVAL_LOSS_MAX = 4096  # held-out embeddings in the epoch-level loss (a 4096^2 distance matrix)


def build_miner(name: str, margin: float) -> miners.BaseMiner:
    """Online triplet miner by short name (see :data:`MINERS`)."""
    if name == "batch_hard":
        # hardest positive and hardest negative per anchor (Hermans et al., 2017)
        return miners.BatchHardMiner()
    if name == "semi_hard":
        # negatives farther than the positive but inside the margin (FaceNet, Schroff et al., 2015)
        return miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")
    if name == "all":
        return miners.TripletMarginMiner(margin=margin, type_of_triplets="all")
    raise ValueError(f"unknown miner {name!r}; choose one of {', '.join(MINERS)}")


class EmbeddingModule(pl.LightningModule):
    """Triplet-loss embedding model evaluated by kNN on held-out data.

    Args:
        trunk: ``"facenet"`` (the paper's 48-px Inception net) or any timm model name.
        in_chans: Input channels.
        embedding_dim: Embedding size (the paper: 128 or 512).
        num_classes: Number of classes, for the kNN metrics.
        miner: ``"batch_hard"``, ``"semi_hard"`` or ``"all"`` (every margin violator).
        margin: Triplet margin (on unit-norm embeddings, so within ``[0, 2]``).
        optimizer: ``adam``, ``sgd``, ``rmsprop`` or ``adamw``.
        lr: Learning rate.
        momentum: Momentum for SGD / RMSprop.
        weight_decay: L2 penalty.
        scheduler: ``none``, ``cosine``, ``step`` or ``plateau``.
        knn_k: Neighbours that vote on a query's class.
        class_names: Names for plot legends; taken from the DataModule when ``None``.
        projection_plot: Save a 2-D PCA plot of held-out embeddings after each evaluation.
    """

    MONITOR = log_keys.key("val", log_keys.KNN_ACC)
    MONITOR_MODE = "max"
    PREDICTS = "embeddings"  # predict_step: a dict, see predict_step

    def __init__(
        self,
        trunk: str = "facenet",
        in_chans: int = 1,
        embedding_dim: int = 128,
        num_classes: int = 7,
        miner: str = "batch_hard",
        margin: float = 0.2,
        optimizer: str = "adam",
        lr: float = 1e-4,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        scheduler: str = "none",
        knn_k: int = 5,
        class_names: list[str] | None = None,
        projection_plot: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f"{len(class_names)} class_names for num_classes={num_classes}: {class_names}"
            )
        if not margin > 0:
            raise ValueError(f"margin must be > 0, got {margin}")
        self.net = create_embedding_net(trunk, in_chans, embedding_dim)
        self.miner = build_miner(miner, margin)
        self.loss_fn = losses.TripletMarginLoss(margin=margin)
        self.val_knn = KNNRetrievalMetric(num_classes, knn_k)
        self.test_knn = KNNRetrievalMetric(num_classes, knn_k)
        self.val_knn_acc_best = MaxMetric()
        self.val_knn_acc_best.persistent(True)  # in checkpoints, so a resumed fit keeps its best
        # The embedded training gallery of the last validation epoch, saved with the weights.
        self.register_buffer("gallery_embeddings", torch.empty(0, embedding_dim))
        self.register_buffer("gallery_labels", torch.empty(0, dtype=torch.long))
        # Every rank holds the same gathered gallery: DDP need not broadcast it at each step.
        self._ddp_params_and_buffers_to_ignore = ["gallery_embeddings", "gallery_labels"]
        self._fit_start: float | None = None
        self._epoch_start: float | None = None
        self._warned_no_gallery = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, embedding_dim)`` unit-norm embeddings."""
        return self.net(x)

    def model_step(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mined triplet loss of a batch.

        Returns:
            ``(loss, embeddings (B, D), targets (B,))``; the embeddings are the "predictions"
            that the kNN evaluation turns into classes.
        """
        x, y = batch
        emb = self(x)
        triplets = self.miner(emb, y)
        return self.loss_fn(emb, y, triplets), emb, y

    def on_train_start(self) -> None:
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        loss, _, y = self.model_step(batch)
        self.log(log_keys.key("train", log_keys.LOSS), loss, on_step=True, on_epoch=True,
                 prog_bar=True, batch_size=len(y), sync_dist=True)  # fmt: skip
        return loss

    def on_train_epoch_end(self) -> None:
        # Wall-clock like the paper's Table 4 "elapsed time": it includes this epoch's validation.
        now = time.perf_counter()
        if self._epoch_start is not None:
            self.log(log_keys.key("train", EPOCH_TIME_S), now - self._epoch_start, sync_dist=True)
        if self._fit_start is not None:
            self.log(log_keys.key("train", TIME_S), now - self._fit_start, sync_dist=True)

    def _eval_step(self, metric: KNNRetrievalMetric, batch: tuple) -> None:
        x, y = batch
        metric.update(self(x), y, content_ids(x))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(self.val_knn, batch)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(self.test_knn, batch)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            # the gallery pass costs a full sweep of the training set: not worth it for a sanity check
            self.val_knn.reset()
            return
        results = self._evaluate("val", self.val_knn)
        self.val_knn_acc_best.update(results[log_keys.KNN_ACC])
        self.log(log_keys.key("val", f"{log_keys.KNN_ACC}_best"), self.val_knn_acc_best.compute(),
                 sync_dist=True)  # fmt: skip

    def on_test_epoch_end(self) -> None:
        self._evaluate("test", self.test_knn)

    def _evaluate(self, stage: str, metric: KNNRetrievalMetric) -> dict[str, torch.Tensor]:
        self._fill_gallery(metric)
        results = metric.compute()
        with metric.sync_context():  # collective: every rank takes part
            emb = dim_zero_cat(metric.query_emb)
            labels = dim_zero_cat(metric.query_labels)
            gallery = metric.gallery_emb
            if stage == "val" and (isinstance(gallery, torch.Tensor) or len(gallery) > 0):
                self.gallery_embeddings = dim_zero_cat(gallery).detach().float().clone()
                self.gallery_labels = dim_zero_cat(metric.gallery_labels).detach().long().clone()
        # Held-out loss over the whole held-out set: evaluation batches come in file order, often
        # one class per batch, where no triplet exists. Capped so the distance matrix stays small.
        keep = torch.randperm(len(emb), generator=torch.Generator().manual_seed(0))[:EVAL_LOSS_MAX]
        keep = keep.to(emb.device)
        loss = self.loss_fn(emb[keep], labels[keep], self.miner(emb[keep], labels[keep]))
        self.log(log_keys.key(stage, log_keys.LOSS), loss, sync_dist=True)
        for name, value in results.items():
            self.log(
                log_keys.key(stage, name), value, sync_dist=True, prog_bar=name == log_keys.KNN_ACC
            )
        if self.hparams.projection_plot and self.trainer.is_global_zero and len(emb) >= 3:
            fig = projection_figure(
                emb.float().cpu(), labels.cpu(), self._class_names(),
                title=f"{stage} embeddings (PCA), epoch {self.current_epoch}, "
                f"kNN acc {float(results[log_keys.KNN_ACC]):.3f}",
            )  # fmt: skip
            log_image(self, log_keys.key(stage, "embeddings_pca"), fig)
        metric.reset()
        return results

    def _fill_gallery(self, metric: KNNRetrievalMetric) -> None:
        """Embed the DataModule's gallery; rank ``r`` of ``W`` takes items ``r, r + W, ...``."""
        datamodule = getattr(self.trainer, "datamodule", None)
        make_loader = getattr(datamodule, "gallery_dataloader", None)
        if make_loader is None:
            if not self._warned_no_gallery:
                rank_zero_warn(
                    "the DataModule has no gallery_dataloader(); kNN metrics are computed "
                    "leave-one-out on the held-out set itself"
                )
                self._warned_no_gallery = True
            return
        loader = make_loader()
        world, rank = self.trainer.world_size, self.trainer.global_rank
        shard = Subset(loader.dataset, range(rank, len(loader.dataset), world))
        loader = DataLoader(shard, batch_size=loader.batch_size, shuffle=False,
                            num_workers=loader.num_workers, collate_fn=loader.collate_fn)  # fmt: skip
        # fast_dev_run is a smoke test: one gallery batch per rank is enough
        max_batches = 1 if self.trainer.fast_dev_run else None
        added = 0
        with torch.no_grad():
            for i, (x, y) in enumerate(loader):
                if max_batches is not None and i >= max_batches:
                    break
                x = x.to(self.device)
                metric.update_gallery(self(x), y.to(self.device), content_ids(x))
                added += len(x)
        if added == 0:
            # every rank must add a state, or the DDP gather of the gallery would mismatch
            dim = self.hparams.embedding_dim
            empty = torch.empty(0, dtype=torch.long, device=self.device)
            metric.update_gallery(torch.empty(0, dim, device=self.device), empty, empty)

    def predict_step(
        self, batch: tuple[torch.Tensor, ...] | torch.Tensor, batch_idx: int
    ) -> dict[str, torch.Tensor]:
        """Embeddings and, from the gallery kept with the model, the kNN class of each image.

        Returns:
            ``embeddings (B, D)``; with a gallery also ``knn_class (B,)`` (the majority of the
            ``knn_k`` nearest gallery images, ties to the nearer class), ``knn_votes (B,)``
            (how many of them have that class) and ``nearest_distance (B,)``.
        """
        x = batch if isinstance(batch, torch.Tensor) else batch[0]
        emb = self(x)
        out = {"embeddings": emb}
        gallery, labels = self.gallery_embeddings, self.gallery_labels
        if len(labels) == 0:
            if not self._warned_no_gallery:
                rank_zero_warn(
                    "this model holds no training gallery (its checkpoint predates them, or it "
                    "never validated), so predictions carry embeddings but no kNN class"
                )
                self._warned_no_gallery = True
            return out
        k = min(int(self.hparams.knn_k), len(labels))
        dist, nearest = torch.cdist(emb.float(), gallery.float()).topk(k, dim=1, largest=False)
        neighbours = labels[nearest]
        knn_class = knn_vote(neighbours, int(self.hparams.num_classes))
        out["knn_class"] = knn_class
        out["knn_votes"] = (neighbours == knn_class[:, None]).sum(dim=1)
        out["nearest_distance"] = dist[:, 0]
        return out

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Size the gallery buffers to the checkpoint's (an older checkpoint has none)."""
        state = checkpoint.setdefault("state_dict", {})
        state.setdefault("gallery_embeddings", torch.empty(0, self.hparams.embedding_dim))
        state.setdefault("gallery_labels", torch.empty(0, dtype=torch.long))
        self.gallery_embeddings = torch.empty_like(state["gallery_embeddings"], device=self.device)
        self.gallery_labels = torch.empty_like(state["gallery_labels"], device=self.device)

    def _class_names(self) -> list[str]:
        names = self.hparams.class_names
        if names is None:
            names = getattr(getattr(self.trainer, "datamodule", None), "class_names", None)
        if names is None or len(names) != self.hparams.num_classes:
            names = [str(i) for i in range(self.hparams.num_classes)]
        return list(names)

    def configure_optimizers(self) -> dict:
        return configure(self)
