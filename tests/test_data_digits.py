"""Data pipelines on the bundled digits (in-memory arrays): metadata, stratified splits, seeded training
epochs, evaluation views, recalibration batches, config errors."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import larq_mobisearch  # noqa: E402,F401  (selects Keras 2 before TensorFlow)
import tensorflow as tf  # noqa: E402

from data_helpers import batches, epochs, images_of, labels_of  # noqa: E402
from larq_mobisearch.config import ConfigError, DataConfig  # noqa: E402
from larq_mobisearch.data import load_dataset  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits", image_size=16, batch_size=32))


def test_digits_metadata(digits):
    assert digits.name == "digits"
    assert digits.num_classes == 10
    assert digits.input_shape == (16, 16, 1)
    assert digits.train_size + digits.holdout_size + digits.test_size == 1797
    assert digits.test_size == round(0.2 * 1797)
    assert digits.holdout_size == round(0.15 * (1797 - digits.test_size))
    assert digits.steps_per_epoch == digits.train_size // 32
    assert digits.summary()["input_shape"] == [16, 16, 1]


def test_digits_splits_disjoint_and_complete(digits):
    idx = digits.split_indices
    train, holdout, test = (set(idx[k].tolist()) for k in ("train", "holdout", "test"))
    assert not train & holdout and not train & test and not holdout & test
    assert train | holdout | test == set(range(1797))
    assert (len(train), len(holdout), len(test)) == (digits.train_size, digits.holdout_size, digits.test_size)


def test_digits_splits_stratified(digits):
    from sklearn.datasets import load_digits

    y = load_digits().target
    overall = np.bincount(y, minlength=10) / len(y)
    for split in ("train", "holdout", "test"):
        counts = np.bincount(y[digits.split_indices[split]], minlength=10)
        frac = counts / counts.sum()
        # Each class within one example of its proportional share.
        assert np.all(np.abs(counts - overall * counts.sum()) <= 1.0 + 1e-9), (split, counts)
        assert np.all(np.abs(frac - overall) < 0.02)
    # The labels delivered by the pipelines are those of the split indices.
    np.testing.assert_array_equal(labels_of(digits.test), y[digits.split_indices["test"]])
    np.testing.assert_array_equal(labels_of(digits.holdout), y[digits.split_indices["holdout"]])


def test_digits_splits_deterministic_and_seeded():
    a = load_dataset(DataConfig(image_size=8, split_seed=3))
    b = load_dataset(DataConfig(image_size=8, split_seed=3, seed=7))  # `seed` does not move the split
    c = load_dataset(DataConfig(image_size=8, split_seed=4))
    for k in ("train", "holdout", "test"):
        np.testing.assert_array_equal(a.split_indices[k], b.split_indices[k])
    assert not np.array_equal(a.split_indices["test"], c.split_indices["test"])


def test_digits_shapes_dtypes_ranges(digits):
    x, y = next(iter(digits.train))
    assert x.shape == (32, 16, 16, 1) and x.dtype == tf.float32
    assert y.shape == (32,) and y.dtype == tf.int32
    xt = images_of(digits.test)
    assert xt.shape == (digits.test_size, 16, 16, 1)
    assert xt.min() >= -1.0 and xt.max() <= 1.0
    assert xt.min() == pytest.approx(-1.0) and xt.max() > 0.9  # background -1, strokes near +1
    assert -1.0 < xt.mean() < 0.0
    yt = labels_of(digits.test)
    assert yt.dtype == np.int32 and yt.min() >= 0 and yt.max() <= 9


def test_digits_train_is_seeded_reshuffled_and_augmented(digits):
    cfg = DataConfig(name="digits", image_size=16, batch_size=32)
    # Same seed, fresh pipelines: identical first and second epochs (order and augmentation).
    e1, e2 = epochs(load_dataset(cfg), 2)
    f1, f2 = epochs(load_dataset(cfg), 2)
    for a, b in ((e1, f1), (e2, f2)):
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[0], b[0])
    # Reshuffled each epoch.
    assert not np.array_equal(e1[1], e2[1])
    # Every epoch is a sample without repetition of the training split; drop_remainder drops < one batch.
    assert len(e1[1]) == digits.steps_per_epoch * 32 > digits.train_size - 32
    train_counts = np.bincount(labels_of(digits.eval_batches("train")), minlength=10)
    assert np.all(np.bincount(e1[1], minlength=10) <= train_counts)
    # Another seed gives another order.
    (g1,) = epochs(load_dataset(DataConfig(name="digits", image_size=16, batch_size=32, seed=1)), 1)
    assert not np.array_equal(e1[1], g1[1])
    # Augmented images stay in range and differ from the un-augmented evaluation view.
    assert e1[0].min() >= -1.0 and e1[0].max() <= 1.0
    plain = load_dataset(DataConfig(name="digits", image_size=16, batch_size=32, augment=False))
    (p1,) = epochs(plain, 1)
    np.testing.assert_array_equal(p1[1], e1[1])  # same shuffle (same seed), only the images differ
    assert not np.allclose(p1[0], e1[0])


def test_digits_train_does_not_depend_on_the_global_seed():
    cfg = DataConfig(image_size=8, batch_size=64)
    tf.keras.utils.set_random_seed(1)
    a = batches(load_dataset(cfg).train, 3)
    tf.keras.utils.set_random_seed(2)
    b = batches(load_dataset(cfg).train, 3)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)


def test_digits_no_augment_train_matches_eval_images():
    ds = load_dataset(DataConfig(image_size=8, batch_size=16, augment=False))
    (train_imgs, _), = epochs(ds, 1)
    eval_imgs = images_of(ds.eval_batches("train"))
    # The same images (only the order differs; one epoch drops less than one batch).
    key = lambda a: np.sort(a.reshape(len(a), -1).sum(axis=1))  # noqa: E731
    assert np.all(np.isin(key(train_imgs), key(eval_imgs)))


def test_numpy_samples_and_recalibration(digits):
    x, y = digits.numpy_samples("test", 10)
    assert x.shape == (10, 16, 16, 1) and x.dtype == np.float32 and y.dtype == np.int32
    xt = images_of(digits.test)[:10]
    np.testing.assert_allclose(x, xt)
    x_all, y_all = digits.numpy_samples("holdout", None)
    assert len(x_all) == digits.holdout_size
    assert len(digits.numpy_samples("holdout", 10**6)[0]) == digits.holdout_size

    recal = digits.recalibration_batches(3, batch_size=16)
    first = [(x.numpy(), y.numpy()) for x, y in recal]
    again = [(x.numpy(), y.numpy()) for x, y in recal]
    fresh = [(x.numpy(), y.numpy()) for x, y in digits.recalibration_batches(3, batch_size=16)]
    assert [b[0].shape for b in first] == [(16, 16, 16, 1)] * 3
    for a, b, c in zip(first, again, fresh):
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[1], c[1])
        np.testing.assert_allclose(a[0], c[0])
    other = [y.numpy() for _, y in digits.recalibration_batches(3, batch_size=16, seed=5)]
    assert not all(np.array_equal(a[1], b) for a, b in zip(first, other))

    ex = list(digits.examples("train").take(2))
    assert ex[0][0].shape == (16, 16, 1)
    with pytest.raises(ValueError, match="split"):
        digits.examples("validation")
    with pytest.raises(ValueError, match="num_batches"):
        digits.recalibration_batches(0)
    with pytest.raises(ValueError, match="epoch must be an integer >= 0, received -1"):
        digits.train_from(-1)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(image_size=4), "data.image_size"),
        (dict(batch_size=0), "data.batch_size"),
        (dict(holdout_fraction=0.0), "data.holdout_fraction"),
        (dict(holdout_fraction=0.6), "data.holdout_fraction"),
        (dict(test_fraction=1.0), "data.test_fraction"),
        (dict(cache="disk"), "data.cache"),
    ],
)
def test_bad_data_config(kwargs, key):
    with pytest.raises(ValueError) as info:
        load_dataset(DataConfig(**kwargs))
    assert key in str(info.value)
    assert repr(list(kwargs.values())[0]) in str(info.value)
    assert isinstance(info.value, ConfigError)
