"""Seeded splits of a dataset's indices: stratified, grouped by subject, by patient, by fractions.

Every DataModule draws its train / validation / test parts here, so a protocol is written once:

* :func:`stratified_train_val_test` — the papers' stratified test part with a stratified
  validation part carved from the rest (CK+ 80/20, autism 70:30);
* :func:`holdout_then_halve` — FER2013's random 80/10/10; :func:`stratified_holdout` — one
  held-out part keeping each class's share;
* :func:`grouped_holdout` — whole groups (subjects) on one side, sized by a fraction of groups;
* :func:`subject_folds` and :func:`stratified_grouped_holdout` — subject-disjoint,
  label-stratified folds (CK+'s honest protocol) and one such fold carved off for validation;
* :func:`split_by_fractions` — disjoint seeded parts of ``range(n)`` (the liver patients).

All return sorted index arrays. The same seed gives the same split on every machine.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold, train_test_split

from litlab.errors import BadInputError


def seeded_permutation(n: int, seed: int) -> np.ndarray:
    """A permutation of ``range(n)`` drawn from a seeded ``torch.Generator``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g).numpy()


def split_by_fractions(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split ``range(n)`` into seeded, disjoint index arrays of the given fractions.

    The fractions must sum to 1; rounding error goes to the last part.
    """
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {list(fractions)}")
    perm = seeded_permutation(n, seed)
    bounds = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    return [np.sort(p) for p in np.split(perm, bounds)]


def can_stratify(labels: np.ndarray, min_per_class: int) -> bool:
    """Whether every class index up to the largest holds at least ``min_per_class`` items.

    A class index below the largest that has no items counts as a class of size 0.
    """
    return bool(np.bincount(np.asarray(labels)).min() >= min_per_class)


def _check_fraction(fraction: float, name: str, low_inclusive: bool = False) -> None:
    ok = (0 <= fraction < 1) if low_inclusive else (0 < fraction < 1)
    if not ok:
        bounds = "[0, 1)" if low_inclusive else "(0, 1)"
        raise ValueError(f"{name} must lie in {bounds}, got {fraction}")


def check_stratifiable(
    labels: np.ndarray, fraction: float, names: Sequence[str] | None = None
) -> None:
    """Raise unless a stratified hold-out of ``fraction`` can keep every class on both sides.

    scikit-learn needs at least 2 items of each class, and each side at least one item per
    class; this says so naming the class (``names[label]`` when given) and its count.

    Raises:
        BadInputError: A class has a single item, or a side would be smaller than the classes.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    present = np.flatnonzero(counts)
    single = [int(c) for c in present if counts[c] < 2]
    if single:
        shown = ", ".join(repr(names[c]) if names else str(c) for c in single)
        raise BadInputError(
            f"class {shown} has a single image; a stratified split needs at least 2 of each "
            "class (one for each side): add images, or leave the class out"
        )
    n, k = len(labels), len(present)
    n_held = math.ceil(fraction * n)
    if n_held < k or n - n_held < k:
        raise BadInputError(
            f"{n} images of {k} classes are too few for a stratified {fraction:.0%} hold-out: "
            f"each side needs one image of every class, so at least "
            f"{math.ceil(k / min(fraction, 1 - fraction))} are needed; add images"
        )


def stratified_holdout(
    labels: np.ndarray, fraction: float, seed: int, stratify: bool = True, name: str = "fraction"
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out a seeded ``fraction`` of the images, keeping each class's share.

    Args:
        labels: ``(N,)`` class of each image.
        fraction: Share held out, in ``(0, 1)``.
        seed: Seed of the draw.
        stratify: ``False`` draws at random (see :func:`can_stratify`).
        name: The option ``fraction`` came from, for the error message.

    Returns:
        Sorted ``(kept, held_out)`` indices into ``labels``.
    """
    _check_fraction(fraction, name)
    kept, held = train_test_split(
        np.arange(len(labels)), test_size=fraction, random_state=seed,
        stratify=labels if stratify else None,
    )  # fmt: skip
    return np.sort(kept), np.sort(held)


def stratified_train_val_test(
    labels: np.ndarray,
    test_fraction: float,
    val_fraction: float,
    seed: int,
    names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stratified test part, then a stratified validation part carved from the rest.

    The papers' protocol (CK+ 80/20, autism 70:30): both draws keep each class's share.

    Args:
        labels: ``(N,)`` class of each image.
        test_fraction: Share of all images tested, in ``(0, 1)``.
        val_fraction: Share of the remaining images held out for validation, in ``[0, 1)``; 0
            validates on the test part, as the papers (which had only two parts) did.
        seed: Seed of both draws.
        names: Class names, for the error about a class too small to stratify.

    Returns:
        Sorted ``(train, val, test)`` indices; ``val`` equals ``test`` when ``val_fraction`` is 0.

    Raises:
        BadInputError: Too few images (of a class) to stratify (:func:`check_stratifiable`).
    """
    _check_fraction(test_fraction, "test_fraction")
    _check_fraction(val_fraction, "val_fraction", low_inclusive=True)
    check_stratifiable(labels, test_fraction, names)
    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=labels)
    if val_fraction == 0:
        return np.sort(train), np.sort(test), np.sort(test)
    check_stratifiable(labels[train], val_fraction, names)
    train, val = train_test_split(
        train, test_size=val_fraction, random_state=seed, stratify=labels[train]
    )
    return np.sort(train), np.sort(val), np.sort(test)


def holdout_then_halve(
    labels: np.ndarray, held_fraction: float, seed: int, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hold out ``held_fraction`` of the images, then split that part in half: validation and test.

    FER2013's random resplit (80/10/10 with ``held_fraction=0.2``).

    Returns:
        Sorted ``(train, val, test)`` indices into ``labels``.

    Raises:
        BadInputError: Too few items for every part to hold at least one.
    """
    _check_fraction(held_fraction, "held_fraction")
    n_held = math.ceil(held_fraction * len(labels))
    if n_held < 2 or n_held >= len(labels):
        raise BadInputError(
            f"{len(labels)} item(s) are too few to hold out {held_fraction:.0%} and halve it into "
            f"validation and test; at least {math.ceil(2 / held_fraction)} are needed"
        )
    strat = labels if stratify else None
    idx = np.arange(len(labels))
    train, rest = train_test_split(idx, test_size=held_fraction, random_state=seed, stratify=strat)
    strat_rest = labels[rest] if stratify else None
    val, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=strat_rest)
    return np.sort(train), np.sort(val), np.sort(test)


def grouped_holdout(
    labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int, name: str = "fraction"
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out whole groups, about ``fraction`` of them (``GroupShuffleSplit``), at random.

    Returns:
        Sorted ``(kept, held_out)`` indices into ``labels``; no group is on both sides.
    """
    _check_fraction(fraction, name)
    idx = np.arange(len(labels))
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    kept, held = next(splitter.split(idx, labels, groups))
    return np.sort(kept), np.sort(held)


def subject_folds(
    labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int
) -> list[np.ndarray]:
    """Test indices of each of ``n_folds`` subject-disjoint, label-stratified folds.

    Every index is in exactly one fold; every group (subject) is in exactly one fold.
    """
    n_groups = len(np.unique(groups))
    if not 2 <= n_folds <= n_groups:
        raise ValueError(
            f"n_folds must lie in [2, {n_groups}] (the number of subjects), got {n_folds}"
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [np.sort(test) for _, test in splitter.split(np.zeros(len(labels)), labels, groups)]


def fold_parts(folds: list[np.ndarray], fold: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rest, test)``: fold ``fold`` of :func:`subject_folds` is the test part."""
    rest = np.sort(np.concatenate([f for k, f in enumerate(folds) if k != fold]))
    return rest, folds[fold]


def stratified_grouped_holdout(
    indices: np.ndarray, labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out whole groups of ``indices`` with the label mix kept: one fold of
    ``StratifiedGroupKFold`` with ``round(1 / fraction)`` folds (at least 2).

    Args:
        indices: ``(N,)`` the indices to split.
        labels: ``(N,)`` class of each of ``indices``.
        groups: ``(N,)`` group (subject) of each of ``indices``.
        fraction: About the share held out.
        seed: Seed of the fold assignment.

    Returns:
        Sorted ``(kept, held_out)`` subsets of ``indices``.
    """
    indices = np.asarray(indices)
    n_splits = max(2, round(1 / fraction))
    n_groups = len(np.unique(groups))
    if n_groups < n_splits:
        raise ValueError(
            f"only {n_groups} training subjects, too few for val_fraction={fraction}; "
            "raise val_fraction or lower n_folds"
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # A rare class (CK+ contempt) may have fewer subjects than n_splits; only one split is
        # taken, so sklearn's warning about it says nothing useful here.
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        keep, held = next(splitter.split(np.zeros(len(indices)), labels, groups))
    return np.sort(indices[keep]), np.sort(indices[held])
