"""Seeded splits: stratified shares, subject-disjoint folds covering every image once, fractions."""

from __future__ import annotations

import numpy as np
import pytest
from litlab.datamodules.splits import (
    can_stratify,
    fold_parts,
    grouped_holdout,
    holdout_then_halve,
    split_by_fractions,
    stratified_grouped_holdout,
    stratified_holdout,
    stratified_train_val_test,
    subject_folds,
)


def test_random_split_is_stratified_and_seeded() -> None:
    labels = np.repeat(np.arange(7), [45, 18, 59, 25, 69, 28, 83])
    train, val, test = stratified_train_val_test(labels, 0.2, 0.0, seed=3)
    assert val is not None and np.array_equal(val, test)  # no third part: val is the test part
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(labels)
    share = np.bincount(labels[test], minlength=7) / np.bincount(labels)
    assert np.all(np.abs(share - 0.2) < 0.04)
    np.testing.assert_array_equal(test, stratified_train_val_test(labels, 0.2, 0.0, seed=3)[2])
    assert not np.array_equal(test, stratified_train_val_test(labels, 0.2, 0.0, seed=4)[2])
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_train_val_test(labels, 1.0, 0.0, seed=0)


def test_paper_split_is_a_seeded_stratified_70_30() -> None:
    labels = np.repeat([0, 1], 50)
    train, val, test = stratified_train_val_test(labels, 0.3, 0.1, seed=7)
    assert len(test) == 30 and len(train) + len(val) == 70
    assert not set(train) & set(test) and not set(val) & set(test) and not set(train) & set(val)
    assert labels[test].sum() == 15  # stratified
    again = stratified_train_val_test(labels, 0.3, 0.1, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    _, val0, test0 = stratified_train_val_test(labels, 0.3, 0.0, seed=7)
    assert np.array_equal(val0, test0)  # the paper's protocol: validation is the test part
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_train_val_test(labels, 0.3, 1.0, seed=7)


def test_subject_folds_cover_each_image_once_without_shared_subjects() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 6)
    labels = np.repeat(rng.integers(0, 4, 120), 3)  # one label per 3-frame sequence
    folds = subject_folds(labels, groups, n_folds=5, seed=0)
    everything = np.sort(np.concatenate(folds))
    np.testing.assert_array_equal(everything, np.arange(len(labels)))
    for i, a in enumerate(folds):
        for b in folds[i + 1 :]:
            assert not set(groups[a]) & set(groups[b])
    # Stratified: each fold's label mix is close to the whole set's.
    whole = np.bincount(labels, minlength=4) / len(labels)
    for fold in folds:
        assert np.abs(np.bincount(labels[fold], minlength=4) / len(fold) - whole).max() < 0.12
    with pytest.raises(ValueError, match="n_folds"):
        subject_folds(labels, groups, n_folds=61, seed=0)
    rest, test = fold_parts(folds, 2)
    np.testing.assert_array_equal(test, folds[2])
    np.testing.assert_array_equal(np.sort(np.concatenate([rest, test])), np.arange(len(labels)))


def test_validation_carved_by_subject_keeps_subjects_whole() -> None:
    groups = np.repeat(np.arange(40), 3)
    labels = np.repeat(np.arange(40) % 4, 3)
    indices = np.arange(20, 120)  # a training part: indices into the whole set
    kept, held = stratified_grouped_holdout(indices, labels[indices], groups[indices], 0.25, seed=1)
    assert not set(groups[kept]) & set(groups[held])
    np.testing.assert_array_equal(np.sort(np.concatenate([kept, held])), indices)
    assert 0.15 < len(held) / len(indices) < 0.35
    with pytest.raises(ValueError, match="too few for val_fraction"):
        stratified_grouped_holdout(indices[:3], labels[:3], groups[:3], 0.1, seed=1)


def test_grouped_holdout_keeps_groups_on_one_side() -> None:
    labels = np.repeat([0, 1], 18)
    groups = np.array([f"S{s:03d}" for _ in range(2) for s in range(6) for _ in range(3)])
    train, held = grouped_holdout(labels, groups, 0.34, seed=0)
    assert not set(groups[train]) & set(groups[held])
    assert len(train) + len(held) == len(labels)
    with pytest.raises(ValueError, match="val_fraction must lie in"):
        grouped_holdout(labels, groups, 1.5, seed=0, name="val_fraction")


def test_holdouts_keep_class_shares_when_they_can() -> None:
    labels = np.repeat(np.arange(4), [40, 40, 10, 10])
    train, val, test = holdout_then_halve(labels, 0.2, seed=0, stratify=True)
    assert (len(train), len(val), len(test)) == (80, 10, 10)
    assert np.bincount(labels[val], minlength=4).tolist() == [4, 4, 1, 1]
    kept, held = stratified_holdout(labels, 0.25, seed=0)
    counts = np.bincount(labels[held], minlength=4)
    assert counts[:2].tolist() == [10, 10] and sorted(counts[2:].tolist()) == [2, 3]
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == len(labels)
    assert can_stratify(labels, 10) and not can_stratify(labels, 11)
    assert not can_stratify(np.array([0, 0, 2, 2]), 1)  # class 1 is empty


def test_fractions_split_is_seeded_disjoint_and_complete() -> None:
    parts = split_by_fractions(10, (0.7, 0.2, 0.1), seed=0)
    assert [len(p) for p in parts] == [7, 2, 1]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(10))
    again = split_by_fractions(10, (0.7, 0.2, 0.1), seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    with pytest.raises(ValueError, match="sum to 1"):
        split_by_fractions(10, (0.5, 0.6), seed=0)
