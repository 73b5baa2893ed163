"""Seeded stratified splits (scikit-learn's StratifiedShuffleSplit behind `stratified_split`)."""

import numpy as np
import pytest

from larq_mobisearch.data import DatasetNotAvailableError, stratified_split


def test_stratified_split_small_classes():
    labels = np.array([0] * 5 + [1] * 5 + [2] * 2)
    rest, taken = stratified_split(labels, 0.25, seed=0)
    assert len(taken) == 3 and len(rest) == 9
    assert set(np.unique(labels[rest])) == {0, 1, 2}  # every class keeps an example
    rest2, taken2 = stratified_split(labels, 0.25, seed=0)
    np.testing.assert_array_equal(taken, taken2)


def test_stratified_split_sizes_proportions_and_seed():
    rng = np.random.default_rng(0)
    labels = rng.choice(7, size=1001, p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.06, 0.04])
    counts = np.bincount(labels)
    for fraction in (0.1, 0.15, 0.2, 0.5):
        rest, taken = stratified_split(labels, fraction, seed=3)
        assert len(taken) == round(fraction * 1001) and len(rest) == 1001 - len(taken)
        assert np.all(np.diff(rest) > 0) and np.all(np.diff(taken) > 0)  # sorted, distinct
        np.testing.assert_array_equal(np.sort(np.concatenate([rest, taken])), np.arange(1001))
        share = np.bincount(labels[taken], minlength=7)
        assert np.all(np.abs(share - counts * len(taken) / 1001) <= 1.0 + 1e-9), (fraction, share)
    a = stratified_split(labels, 0.2, seed=3)[1]
    assert np.array_equal(a, stratified_split(labels, 0.2, seed=3)[1])
    assert not np.array_equal(a, stratified_split(labels, 0.2, seed=4)[1])
    assert len(stratified_split(labels, 0.2, seed=2**32 - 1)[1]) == 200  # the largest allowed seed


@pytest.mark.parametrize("labels, fraction, message", [
    ([0], 0.5, r"Cannot split 1 example\(s\): need at least 2"),
    ([0, 0, 1, 1, 2], 0.4, r"class\(es\) \[2\] have a single example; every class needs at least 2"),
    ([0, 0, 0, 1, 1, 1], 0.1, r"6 examples in 2 classes with fraction=0.1: it takes 1 and leaves 5"),
])
def test_stratified_split_refuses_too_small_data(labels, fraction, message):
    with pytest.raises(DatasetNotAvailableError, match=message):
        stratified_split(np.asarray(labels), fraction, seed=0)
