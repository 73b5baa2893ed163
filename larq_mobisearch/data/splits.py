"""Seeded stratified splits of a labelled set into train / holdout / test indices (scikit-learn's
`StratifiedShuffleSplit`), for sources without an official split of their own."""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

from ..config import DataConfig
from .errors import DatasetNotAvailableError


def split_size(n: int, fraction: float) -> int:
    """``round(fraction * n)``, at least 1 and at most ``n - 1``."""
    return min(max(1, int(round(fraction * n))), n - 1)


def stratified_split(labels: Sequence[int], fraction: float, seed: int, *, what: str = "fraction"
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split of ``range(len(labels))`` into ``(rest, taken)``.

    # Arguments
        labels: class of every example.
        fraction: share of the examples to take; ``round(fraction * n)`` are taken (at least 1, at most n-1).
        seed: integer in [0, 2**32 - 1]; the same (labels, fraction, seed) always gives the same split.
        what: how errors name `fraction` (e.g. ``"data.test_fraction"``).

    # Returns
        ``(rest, taken)``: sorted int64 index arrays, disjoint, together ``range(n)``. Each class contributes
        in proportion to its size (scikit-learn's `StratifiedShuffleSplit`: within one example of its share).

    # Raises
        DatasetNotAvailableError: fewer than 2 examples, a class with a single example, or fewer examples
            on either side than there are classes (a stratified split is impossible).
    """
    from sklearn.model_selection import StratifiedShuffleSplit

    labels = np.asarray(labels)
    n = len(labels)
    if n < 2:
        raise DatasetNotAvailableError(f"Cannot split {n} example(s): need at least 2")
    n_take = split_size(n, fraction)
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        single = [c.item() for c in classes[counts < 2]][:10]
        raise DatasetNotAvailableError(
            f"Cannot make a stratified split of {n} examples: class(es) {single} have a single example; "
            f"every class needs at least 2"
        )
    if min(n_take, n - n_take) < len(classes):
        raise DatasetNotAvailableError(
            f"Cannot make a stratified split of {n} examples in {len(classes)} classes with {what}={fraction}: "
            f"it takes {n_take} and leaves {n - n_take}, and each side needs at least one example per class "
            f"({len(classes)}); use more data or another fraction"
        )
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_take, random_state=int(seed) % 2**32)
    rest, taken = next(splitter.split(np.zeros((n, 1)), labels))
    return np.sort(rest).astype(np.int64), np.sort(taken).astype(np.int64)


def three_way_split(labels: np.ndarray, cfg: DataConfig) -> Dict[str, np.ndarray]:
    """test = ``cfg.test_fraction`` of all; holdout = ``cfg.holdout_fraction`` of the rest; train = the rest.

    Seeded by ``cfg.split_seed`` (not ``cfg.seed``): the split stays put when the training seed changes.
    """
    labels = np.asarray(labels)
    rest, test = stratified_split(labels, cfg.test_fraction, cfg.split_seed, what="data.test_fraction")
    train_rel, holdout_rel = stratified_split(labels[rest], cfg.holdout_fraction, cfg.split_seed + 1,
                                              what="data.holdout_fraction")
    return {"train": rest[train_rel], "holdout": rest[holdout_rel], "test": test}


def holdout_split(labels: np.ndarray, cfg: DataConfig) -> Dict[str, np.ndarray]:
    """train / holdout indices of an official training split (``cfg.holdout_fraction``, stratified)."""
    train, holdout = stratified_split(labels, cfg.holdout_fraction, cfg.split_seed + 1, what="data.holdout_fraction")
    return {"train": train, "holdout": holdout}
