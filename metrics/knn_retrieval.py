"""kNN retrieval as a torchmetrics ``Metric``: embeddings gathered over DDP, scored by the core.

The math is :func:`litlab.metrics.functional.knn_retrieval.knn_retrieval`; this class holds the
query and gallery embeddings as ``cat``-reduced states, so each rank may feed only its share.
"""

from __future__ import annotations

import torch
from litlab.metrics import log_keys
from litlab.metrics.functional.knn_retrieval import knn_retrieval
from torchmetrics import Metric
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)
from torchmetrics.utilities import dim_zero_cat

from litlab.checks import check_at_least


class KNNRetrievalMetric(Metric):
    """Accumulates query (and gallery) embeddings; ``compute`` runs :func:`knn_retrieval`.

    States are concatenated across processes on sync, so each rank may feed only its share of the
    queries and of the gallery. Without a gallery the queries are evaluated leave-one-out against
    each other (each query's own id, or without ids its own position, excluded).

    Args:
        num_classes: Number of classes.
        k: Neighbours that vote.
        chunk_size: Queries per distance block.

    ``compute`` returns a dict keyed by the names in :mod:`litlab.metrics.log_keys`: ``knn_acc``,
    ``precision``, ``recall``, ``f1`` (macro), ``precision_at_1``, ``map_at_r``, plus
    ``self_matches`` (queries that had a same-id gallery item excluded) and ``gallery_size``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int, k: int = 5, chunk_size: int = 256) -> None:
        super().__init__()
        check_at_least("num_classes", num_classes, 2)
        check_at_least("k", k, 1)
        self.num_classes = num_classes
        self.k = k
        self.chunk_size = chunk_size
        for prefix in ("query", "gallery"):
            for name in ("emb", "labels", "ids"):
                self.add_state(f"{prefix}_{name}", default=[], dist_reduce_fx="cat")

    def update(
        self, embeddings: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor | None = None
    ) -> None:
        """Add queries: ``(B, D)`` embeddings, ``(B,)`` labels, optional ``(B,)`` int64 ids."""
        self._append("query", embeddings, labels, ids)

    def update_gallery(
        self, embeddings: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor | None = None
    ) -> None:
        """Add gallery items: ``(B, D)`` embeddings, ``(B,)`` labels, optional ``(B,)`` int64 ids."""
        self._append("gallery", embeddings, labels, ids)

    def _append(
        self, role: str, embeddings: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor | None
    ) -> None:
        getattr(self, f"{role}_emb").append(embeddings.detach().float())
        getattr(self, f"{role}_labels").append(labels.detach().long())
        getattr(self, f"{role}_ids").append(_ids_or_placeholder(ids, embeddings, _NO_ID[role]))

    def compute(self) -> dict[str, torch.Tensor]:
        query = dim_zero_cat(self.query_emb)
        q_labels = dim_zero_cat(self.query_labels)
        q_ids = dim_zero_cat(self.query_ids)
        if _is_empty(self.gallery_emb):
            # leave-one-out: content ids exclude the query itself and its exact duplicates (e.g.
            # DDP padding repeats); without ids, positions exclude exactly the query itself
            gallery, g_labels = query, q_labels
            if bool((q_ids < 0).any()):
                q_ids = torch.arange(len(query), device=query.device)
            g_ids = q_ids
        else:
            gallery = dim_zero_cat(self.gallery_emb)
            g_labels = dim_zero_cat(self.gallery_labels)
            g_ids = dim_zero_cat(self.gallery_ids)
        result = knn_retrieval(
            query, q_labels, gallery, g_labels, self.k, self.num_classes, q_ids, g_ids,
            self.chunk_size,
        )  # fmt: skip
        nc = self.num_classes
        preds = result.preds
        return {
            log_keys.KNN_ACC: multiclass_accuracy(preds, q_labels, nc, average="micro"),
            log_keys.PRECISION: multiclass_precision(preds, q_labels, nc, average="macro"),
            log_keys.RECALL: multiclass_recall(preds, q_labels, nc, average="macro"),
            log_keys.F1: multiclass_f1_score(preds, q_labels, nc, average="macro"),
            log_keys.PRECISION_AT_1: result.precision_at_1,
            log_keys.MAP_AT_R: result.map_at_r,
            "self_matches": (result.num_excluded > 0).sum().float(),
            "gallery_size": torch.tensor(float(len(gallery)), device=query.device),
        }


def _is_empty(state: list[torch.Tensor] | torch.Tensor) -> bool:
    if isinstance(state, torch.Tensor):
        return state.numel() == 0
    return len(state) == 0 or all(t.numel() == 0 for t in state)


# Placeholder ids for items fed without ids: negative (content ids are >= 0) and different for
# queries and gallery, so an id-less query never excludes anything.
_NO_ID = {"query": -1, "gallery": -2}


def _ids_or_placeholder(
    ids: torch.Tensor | None, embeddings: torch.Tensor, placeholder: int
) -> torch.Tensor:
    if ids is None:
        return torch.full(
            (len(embeddings),), placeholder, dtype=torch.long, device=embeddings.device
        )
    if len(ids) != len(embeddings):
        raise ValueError(f"{len(ids)} ids for {len(embeddings)} embeddings")
    return ids.detach().long()
