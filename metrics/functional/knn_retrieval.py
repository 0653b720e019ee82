"""kNN classification and retrieval metrics of embeddings, as functions (the core of the metric).

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

from dataclasses import dataclass

import torch

from litlab.checks import check_at_least


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
    check_at_least("k", k, 1)
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
