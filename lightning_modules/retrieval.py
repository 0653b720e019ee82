"""kNN evaluation of embeddings: a functional core and a torchmetrics wrapper that syncs under DDP.

A *gallery* (usually the embedded training set) is searched for each *query* (a held-out image).
The class of a query is the majority vote of its ``k`` nearest gallery items; retrieval quality is
precision@1 and MAP@R (Musgrave et al., "A Metric Learning Reality Check", 2020): for a query with
``R`` relevant gallery items, ``AP@R = 1/R * sum_{i<=R} P(i) * rel(i)``.

A query is never its own neighbour: when query and gallery items carry ids, every gallery item
whose id equals the query's id is excluded from the search. With content-hash ids this also drops
exact duplicates of the query, which would otherwise make a leaked test image look like a correct
retrieval.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from litlab.lightning_modules import keys
from torchmetrics import Metric
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)
from torchmetrics.utilities import dim_zero_cat


@dataclass
class RetrievalResult:
    """Output of :func:`knn_retrieval`.

    Attributes:
        preds: ``(Q,)`` majority-vote class per query.
        neighbors: ``(Q, k)`` gallery indices of the ``k`` nearest non-excluded items, nearest first.
        precision_at_1: Fraction of queries whose nearest neighbour has their label (queries with
            no relevant gallery item are left out, as pytorch-metric-learning does).
        map_at_r: Mean AP@R over the same queries.
        num_excluded: ``(Q,)`` number of gallery items excluded per query (same id).
    """

    preds: torch.Tensor
    neighbors: torch.Tensor
    precision_at_1: torch.Tensor
    map_at_r: torch.Tensor
    num_excluded: torch.Tensor


def content_ids(images: torch.Tensor) -> torch.Tensor:
    """A 63-bit id per image from the md5 of its bytes, so identical images share an id.

    Args:
        images: ``(B, ...)`` any dtype; each row is hashed as raw bytes (on CPU).

    Returns:
        ``(B,)`` int64 ids on the input's device.
    """
    rows = images.detach().reshape(len(images), -1).cpu().contiguous().numpy()
    ids = [int.from_bytes(hashlib.md5(row.tobytes()).digest()[:8], "little") >> 1 for row in rows]
    return torch.tensor(np.asarray(ids, dtype=np.int64), device=images.device)


def knn_vote(neighbor_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Majority vote over neighbour labels; a tie goes to the class seen nearest first.

    Args:
        neighbor_labels: ``(Q, k)`` int labels, nearest neighbour first.
        num_classes: Number of classes ``C``.

    Returns:
        ``(Q,)`` int64 predicted classes.
    """
    q, k = neighbor_labels.shape
    counts = torch.zeros(q, num_classes, dtype=torch.long, device=neighbor_labels.device)
    counts.scatter_add_(1, neighbor_labels, torch.ones_like(neighbor_labels))
    ranks = torch.arange(k, device=neighbor_labels.device).expand(q, k)
    first_rank = torch.full_like(counts, k)
    first_rank.scatter_reduce_(1, neighbor_labels, ranks, reduce="amin")
    # count dominates; among equal counts the smaller first rank wins (first_rank <= k < k + 1)
    score = counts * (k + 1) - first_rank
    return score.argmax(dim=1)


def knn_retrieval(
    query: torch.Tensor,
    query_labels: torch.Tensor,
    gallery: torch.Tensor,
    gallery_labels: torch.Tensor,
    k: int,
    num_classes: int,
    query_ids: torch.Tensor | None = None,
    gallery_ids: torch.Tensor | None = None,
    chunk_size: int = 256,
) -> RetrievalResult:
    """Euclidean kNN classification and retrieval metrics, in query chunks to bound memory.

    Args:
        query: ``(Q, D)`` query embeddings.
        query_labels: ``(Q,)`` int labels.
        gallery: ``(G, D)`` gallery embeddings.
        gallery_labels: ``(G,)`` int labels.
        k: Neighbours that vote.
        num_classes: Number of classes ``C`` (labels lie in ``[0, C)``).
        query_ids: ``(Q,)`` ids; a gallery item with the same id is never a neighbour.
        gallery_ids: ``(G,)`` ids; must be given together with ``query_ids``.
        chunk_size: Queries per distance block (``chunk_size x G`` floats at a time).

    Returns:
        A :class:`RetrievalResult`.

    Raises:
        ValueError: On mismatched shapes, ``k < 1``, or when fewer than ``k`` gallery items remain
            for some query after exclusion.
    """
    if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query and gallery must be (Q, D) and (G, D) with the same D, got "
            f"{tuple(query.shape)} and {tuple(gallery.shape)}"
        )
    if len(query_labels) != len(query) or len(gallery_labels) != len(gallery):
        raise ValueError(
            f"{len(query)} queries with {len(query_labels)} labels, "
            f"{len(gallery)} gallery items with {len(gallery_labels)} labels"
        )
    if (query_ids is None) != (gallery_ids is None):
        raise ValueError("pass both query_ids and gallery_ids, or neither")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(query) == 0:
        raise ValueError("no queries to evaluate")
    n_gallery = len(gallery)
    if n_gallery < k:
        raise ValueError(f"the gallery holds {n_gallery} items, fewer than k={k}; lower knn_k")

    query = query.float()
    gallery = gallery.to(query.device).float()
    gallery_labels = gallery_labels.to(query.device).long()
    query_labels = query_labels.long()
    if query_ids is not None:
        if len(query_ids) != len(query) or len(gallery_ids) != len(gallery):
            raise ValueError(
                f"{len(query_ids)} query ids for {len(query)} queries, "
                f"{len(gallery_ids)} gallery ids for {len(gallery)} gallery items"
            )
        query_ids = query_ids.to(query.device)
        gallery_ids = gallery_ids.to(query.device)

    preds, neighbors, hits_at_1, ap_at_r, has_relevant, n_excl = [], [], [], [], [], []
    for start in range(0, len(query), chunk_size):
        q = query[start : start + chunk_size]
        q_labels = query_labels[start : start + chunk_size]
        dist = torch.cdist(q, gallery)
        if query_ids is not None:
            excluded = query_ids[start : start + chunk_size, None] == gallery_ids[None, :]
        else:
            excluded = torch.zeros_like(dist, dtype=torch.bool)
        n_excluded = excluded.sum(dim=1)
        if int((n_gallery - n_excluded).min()) < k:
            raise ValueError(
                f"after excluding each query's own id, a query has only "
                f"{int((n_gallery - n_excluded).min())} gallery items left, fewer than k={k}; "
                "lower knn_k or evaluate against a larger gallery"
            )
        dist = dist.masked_fill(excluded, float("inf"))
        relevant = (q_labels[:, None] == gallery_labels[None, :]) & ~excluded
        r = relevant.sum(dim=1)
        depth = min(n_gallery, max(k, int(r.max())))
        _, order = torch.topk(dist, depth, dim=1, largest=False, sorted=True)
        if bool(excluded.gather(1, order[:, :k]).any()):
            raise RuntimeError("a query was matched to itself; the exclusion mask failed")
        nn_idx = order[:, :k]
        preds.append(knn_vote(gallery_labels[nn_idx], num_classes))
        neighbors.append(nn_idx)

        hits = relevant.gather(1, order)  # (c, depth) bool, rank order
        positions = torch.arange(1, depth + 1, device=q.device)
        within_r = positions[None, :] <= r[:, None]
        hits_r = hits & within_r
        precision_at_i = hits_r.cumsum(dim=1).float() / positions
        ap = (precision_at_i * hits_r).sum(dim=1) / r.clamp(min=1)
        hits_at_1.append(hits[:, 0])
        ap_at_r.append(ap)
        has_relevant.append(r > 0)
        n_excl.append(n_excluded)

    valid = torch.cat(has_relevant)
    if bool(valid.any()):
        p_at_1 = torch.cat(hits_at_1)[valid].float().mean()
        map_r = torch.cat(ap_at_r)[valid].mean()
    else:
        p_at_1 = map_r = torch.tensor(float("nan"), device=query.device)
    return RetrievalResult(
        preds=torch.cat(preds),
        neighbors=torch.cat(neighbors),
        precision_at_1=p_at_1,
        map_at_r=map_r,
        num_excluded=torch.cat(n_excl),
    )


class KNNRetrievalMetric(Metric):
    """Accumulates query (and gallery) embeddings; ``compute`` runs :func:`knn_retrieval`.

    States are concatenated across processes on sync, so each rank may feed only its share of the
    queries and of the gallery. Without a gallery the queries are evaluated leave-one-out against
    each other (each query's own id, or without ids its own position, excluded).

    Args:
        num_classes: Number of classes.
        k: Neighbours that vote.
        chunk_size: Queries per distance block.

    ``compute`` returns a dict keyed by the names in :mod:`litlab.lightning_modules.keys`: ``knn_acc``,
    ``precision``, ``recall``, ``f1`` (macro), ``precision_at_1``, ``map_at_r``, plus
    ``self_matches`` (queries that had a same-id gallery item excluded) and ``gallery_size``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int, k: int = 5, chunk_size: int = 256) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
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
        self.query_emb.append(embeddings.detach().float())
        self.query_labels.append(labels.detach().long())
        self.query_ids.append(_ids_or_placeholder(ids, embeddings, _QUERY_PLACEHOLDER))

    def update_gallery(
        self, embeddings: torch.Tensor, labels: torch.Tensor, ids: torch.Tensor | None = None
    ) -> None:
        """Add gallery items: ``(B, D)`` embeddings, ``(B,)`` labels, optional ``(B,)`` int64 ids."""
        self.gallery_emb.append(embeddings.detach().float())
        self.gallery_labels.append(labels.detach().long())
        self.gallery_ids.append(_ids_or_placeholder(ids, embeddings, _GALLERY_PLACEHOLDER))

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
            keys.KNN_ACC: multiclass_accuracy(preds, q_labels, nc, average="micro"),
            keys.PRECISION: multiclass_precision(preds, q_labels, nc, average="macro"),
            keys.RECALL: multiclass_recall(preds, q_labels, nc, average="macro"),
            keys.F1: multiclass_f1_score(preds, q_labels, nc, average="macro"),
            keys.PRECISION_AT_1: result.precision_at_1,
            keys.MAP_AT_R: result.map_at_r,
            "self_matches": (result.num_excluded > 0).sum().float(),
            "gallery_size": torch.tensor(float(len(gallery)), device=query.device),
        }


def _is_empty(state: list[torch.Tensor] | torch.Tensor) -> bool:
    if isinstance(state, torch.Tensor):
        return state.numel() == 0
    return len(state) == 0 or all(t.numel() == 0 for t in state)


# Placeholder ids for items fed without ids: negative (content ids are >= 0) and different for
# queries and gallery, so an id-less query never excludes anything.
_QUERY_PLACEHOLDER = -1
_GALLERY_PLACEHOLDER = -2


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
