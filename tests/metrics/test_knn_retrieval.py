"""kNN evaluation: hand-computed example, self-match exclusion, cross-check with pytorch-metric-learning."""

from __future__ import annotations

import pytest
import torch
from litlab.datamodules.identity import content_ids
from litlab.metrics import log_keys
from litlab.metrics.functional.knn_retrieval import knn_retrieval, knn_vote
from litlab.metrics.knn_retrieval import KNNRetrievalMetric
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN


def _line(xs: list[float]) -> torch.Tensor:
    """Points on the x axis of a 2-D space, so distances are |x_i - x_j|."""
    return torch.tensor([[x, 0.0] for x in xs])


# Gallery on a line:   0.0(a) 1.0(a) 2.0(b) 10.0(b) 11.0(b)   labels a=0, b=1
GALLERY = _line([0.0, 1.0, 2.0, 10.0, 11.0])
GALLERY_LABELS = torch.tensor([0, 0, 1, 1, 1])


def test_hand_computed_example() -> None:
    # q0 at 0.4 (label 0): order 0.0(a), 1.0(a), 2.0(b), 10(b), 11(b)
    #   k=3 vote a,a,b -> 0; p@1 = 1; R=2, hits at 1,2 -> AP@R = (1/1 + 2/2)/2 = 1
    # q1 at 1.7 (label 1): order 2.0(b) .3, 1.0(a) .7, 0.0(a) 1.7, 10(b), 11(b)
    #   vote b,a,a -> 0 (wrong); p@1 = 1; R=3, hits at rank 1 only -> AP@R = (1/1)/3 = 1/3
    # q2 at 9.0 (label 0): order 10(b) 1, 11(b) 2, 2.0(b) 7, 1.0(a), 0.0(a)
    #   vote b,b,b -> 1 (wrong); p@1 = 0; R=2, no hit in the first 2 -> AP@R = 0
    query = _line([0.4, 1.7, 9.0])
    labels = torch.tensor([0, 1, 0])
    res = knn_retrieval(query, labels, GALLERY, GALLERY_LABELS, k=3, num_classes=2)
    assert res.preds.tolist() == [0, 0, 1]
    assert res.neighbors.tolist() == [[0, 1, 2], [2, 1, 0], [3, 4, 2]]
    assert res.precision_at_1.item() == pytest.approx(2 / 3)
    assert res.map_at_r.item() == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert res.num_excluded.tolist() == [0, 0, 0]


def test_self_match_is_excluded_when_query_set_is_gallery() -> None:
    ids = torch.arange(len(GALLERY))
    res = knn_retrieval(GALLERY, GALLERY_LABELS, GALLERY, GALLERY_LABELS, 1, 2, ids, ids)
    # without exclusion every item would be its own nearest neighbour at distance 0
    assert (res.neighbors[:, 0] != ids).all()
    assert res.neighbors[:, 0].tolist() == [1, 0, 1, 4, 3]
    assert res.num_excluded.tolist() == [1] * 5
    # leave-one-out: 2.0(b)'s nearest other is 1.0(a) -> wrong; the rest are right
    assert res.precision_at_1.item() == pytest.approx(4 / 5)


def test_exact_duplicates_with_equal_content_ids_are_excluded() -> None:
    images = torch.randint(0, 255, (4, 1, 8, 8), dtype=torch.uint8)
    images[3] = images[0]
    ids = content_ids(images)
    assert ids[0] == ids[3] and len(set(ids.tolist())) == 3
    assert (ids >= 0).all()
    emb = images.flatten(1).float()
    res = knn_retrieval(emb[:1], torch.tensor([0]), emb[1:], torch.tensor([0, 1, 1]), 1, 2,
                        ids[:1], ids[1:])  # fmt: skip
    assert res.neighbors[0, 0].item() != 2  # gallery index 2 is the duplicate of the query
    assert res.num_excluded.tolist() == [1]


def test_too_few_gallery_items_after_exclusion_is_a_clear_error() -> None:
    ids = torch.arange(3)
    with pytest.raises(ValueError, match="lower knn_k"):
        knn_retrieval(
            GALLERY[:3], GALLERY_LABELS[:3], GALLERY[:3], GALLERY_LABELS[:3], 3, 2, ids, ids
        )


def test_vote_tie_goes_to_nearest_class() -> None:
    votes = torch.tensor([[1, 0, 0, 1], [2, 2, 0, 0], [0, 1, 2, 2]])
    assert knn_vote(votes, 3).tolist() == [1, 2, 2]


@pytest.mark.parametrize("leave_one_out", [False, True])
def test_matches_pytorch_metric_learning(leave_one_out: bool) -> None:
    g = torch.Generator().manual_seed(0)
    gallery = torch.randn(60, 8, generator=g)
    gallery_labels = torch.randint(0, 4, (60,), generator=g)
    if leave_one_out:
        query, query_labels = gallery, gallery_labels
        ids = torch.arange(60)
        res = knn_retrieval(query, query_labels, gallery, gallery_labels, 1, 4, ids, ids, 7)
    else:
        query = torch.randn(25, 8, generator=g)
        query_labels = torch.randint(0, 4, (25,), generator=g)
        res = knn_retrieval(query, query_labels, gallery, gallery_labels, 1, 4, chunk_size=7)
    calc = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"),
        k="max_bin_count",
        device=torch.device("cpu"),
        knn_func=CustomKNN(LpDistance(normalize_embeddings=False)),
    )
    if leave_one_out:
        ref = calc.get_accuracy(query, query_labels)
    else:
        ref = calc.get_accuracy(query, query_labels, gallery, gallery_labels)
    assert res.precision_at_1.item() == pytest.approx(ref["precision_at_1"], abs=1e-6)
    assert res.map_at_r.item() == pytest.approx(ref["mean_average_precision_at_r"], abs=1e-6)


def test_metric_wrapper_with_gallery_and_leave_one_out() -> None:
    metric = KNNRetrievalMetric(num_classes=2, k=1)
    metric.update_gallery(GALLERY[:3], GALLERY_LABELS[:3])
    metric.update_gallery(GALLERY[3:], GALLERY_LABELS[3:])
    metric.update(_line([0.4, 1.7]), torch.tensor([0, 1]))
    metric.update(_line([9.0]), torch.tensor([0]))
    out = metric.compute()
    # k=1: q0 -> 0.0(a) right, q1 -> 2.0(b) right, q2 -> 10(b) wrong
    assert out[log_keys.KNN_ACC].item() == pytest.approx(2 / 3)
    assert out["self_matches"].item() == 0
    assert out["gallery_size"].item() == 5

    loo = KNNRetrievalMetric(num_classes=2, k=1)
    loo.update(GALLERY, GALLERY_LABELS)
    out = loo.compute()
    assert out[log_keys.KNN_ACC].item() == pytest.approx(4 / 5)
    assert out["self_matches"].item() == 5
    assert set(out) >= {log_keys.PRECISION, log_keys.RECALL, log_keys.F1, log_keys.MAP_AT_R}
