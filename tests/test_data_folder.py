"""Image folders: loading, splits, errors, channel count from the files, and training batches that mix
every class although the files are sorted by class (issue 17)."""

import logging
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import larq_mobisearch  # noqa: E402,F401
import tensorflow as tf  # noqa: E402

from data_helpers import assert_same_batches, batches, images_of, labels_of, write_image_folder  # noqa: E402
from larq_mobisearch.config import ConfigError, DataConfig  # noqa: E402
from larq_mobisearch.data import DatasetNotAvailableError, load_dataset, resize_scale  # noqa: E402

CLASSES = tuple(f"class{i:02d}" for i in range(10))


def test_folder_loads(tmp_path):
    root = write_image_folder(tmp_path / "imgs")
    (root / "dog" / "notes.txt").write_text("not an image")
    cfg = DataConfig(name="folder", data_dir=str(root), image_size=8, batch_size=4)
    ds = load_dataset(cfg)
    assert ds.num_classes == 3 and ds.class_names == ("cat", "dog", "fish")
    assert ds.input_shape == (8, 8, 3)
    assert ds.train_size + ds.holdout_size + ds.test_size == 21
    assert min(ds.train_size, ds.holdout_size, ds.test_size) >= 1
    idx = ds.split_indices
    assert not set(idx["test"]) & set(idx["holdout"]) and not set(idx["test"]) & set(idx["train"])
    x, y = next(iter(ds.train))
    assert x.shape == (4, 8, 8, 3) and y.dtype == tf.int32
    xt = images_of(ds.test)
    assert xt.shape == (ds.test_size, 8, 8, 3) and xt.min() >= -1 and xt.max() <= 1
    # Fresh pipelines with the same seed give the same first epoch.
    steps = ds.steps_per_epoch
    assert_same_batches(batches(load_dataset(cfg).train, steps), batches(load_dataset(cfg).train, steps))


def test_folder_large_images(tmp_path):
    root = write_image_folder(tmp_path / "imgs", classes=("a", "b"), per_class=6, size=(40, 60))
    ds = load_dataset(DataConfig(name="folder", data_dir=str(root), image_size=128, batch_size=2,
                                 holdout_fraction=0.2, test_fraction=0.25))
    assert resize_scale(224) == 256 and resize_scale(128) == 146
    assert next(iter(ds.train))[0].shape == (2, 128, 128, 3)
    assert next(iter(ds.test))[0].shape[1:] == (128, 128, 3)


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetNotAvailableError, match="does not exist"):
        load_dataset(DataConfig(name="folder", data_dir=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotAvailableError, match="no images"):
        load_dataset(DataConfig(name="folder", data_dir=str(tmp_path / "empty")))
    one = write_image_folder(tmp_path / "one", classes=("only",), per_class=5)
    with pytest.raises(DatasetNotAvailableError, match="at least 2 classes"):
        load_dataset(DataConfig(name="folder", data_dir=str(one)))
    with pytest.raises(ConfigError, match="data.data_dir"):
        load_dataset(DataConfig(name="folder", data_dir=None))
    tiny = write_image_folder(tmp_path / "tiny", classes=("a", "b", "c"), per_class=2)
    with pytest.raises(DatasetNotAvailableError, match="data.test_fraction=0.2: it takes 1 and leaves 5, and each side"):
        load_dataset(DataConfig(name="folder", data_dir=str(tiny)))


@pytest.fixture(scope="module")
def sorted_folder(tmp_path_factory):
    """10 classes x 30 grayscale images, files (and so the split's indices) sorted by class."""
    return write_image_folder(tmp_path_factory.mktemp("sorted") / "imgs", classes=CLASSES, per_class=30,
                              size=(8, 8), channels=1)


@pytest.mark.parametrize("cache", ["auto", "none"])  # read into memory once / decoded at every access
def test_training_batches_mix_all_classes(sorted_folder, cache):
    ds = load_dataset(DataConfig(name="folder", data_dir=str(sorted_folder), image_size=8, batch_size=32,
                                 shuffle_buffer=64, cache=cache))
    assert ds.train_size > 3 * ds.config.shuffle_buffer
    assert np.all(np.diff(labels_of(ds.eval_batches("train"))) >= 0)  # the split itself is sorted by class
    first = batches(ds.train, 3)
    for _, y in first:
        assert len(np.unique(y)) >= 8, np.bincount(y, minlength=10)  # a random batch of 32: ~9.7 classes
    # A whole epoch is a permutation: every training example once (less the dropped partial batch).
    epoch = np.concatenate([y for _, y in batches(ds.train, ds.steps_per_epoch)])
    assert len(epoch) == ds.steps_per_epoch * 32 > ds.train_size - 32
    assert np.all(np.bincount(epoch, minlength=10) <= np.bincount(labels_of(ds.eval_batches("train")), minlength=10))
    # Recalibration: a seeded uniform sample of the whole split, every class, the same at every iteration.
    recal = ds.recalibration_batches(2)
    labels = np.concatenate([y for _, y in batches(recal, 2)])
    assert len(labels) == 64 and set(labels.tolist()) == set(range(10))
    assert np.bincount(labels, minlength=10).max() <= 15
    assert_same_batches(batches(recal, 2), batches(ds.recalibration_batches(2), 2))
    # Epoch k from train_from(k) is the k-th epoch of the uninterrupted stream.
    steps = ds.steps_per_epoch
    assert_same_batches(batches(ds.train_from(2), steps), batches(ds.train, 3 * steps)[2 * steps:])


def test_memory_and_file_reads_give_the_same_stream(sorted_folder):
    cfg = DataConfig(name="folder", data_dir=str(sorted_folder), image_size=8, batch_size=32)
    memory = load_dataset(cfg)
    files = load_dataset(DataConfig(**{**cfg.__dict__, "cache": "none"}))
    assert_same_batches(batches(memory.train_from(1), 5), batches(files.train_from(1), 5))
    assert_same_batches(batches(memory.recalibration_batches(2), 2), batches(files.recalibration_batches(2), 2))


def test_channels_follow_the_files(tmp_path, caplog):
    gray = write_image_folder(tmp_path / "gray", classes=("a", "b"), per_class=6, channels=1)
    colour = write_image_folder(tmp_path / "colour", classes=("a", "b"), per_class=6, channels=3)
    ds = load_dataset(DataConfig(name="folder", data_dir=str(gray), image_size=8, batch_size=4))
    assert ds.input_shape == (8, 8, 1) and "grayscale" in ds.description and "mixed" not in ds.description
    assert next(iter(ds.train))[0].shape == (4, 8, 8, 1)
    assert images_of(ds.test).shape[-1] == 1
    ds = load_dataset(DataConfig(name="folder", data_dir=str(colour), image_size=8, batch_size=4))
    assert ds.input_shape == (8, 8, 3) and "colour" in ds.description
    # Mixed: 16 grayscale + 8 colour files (RGBA among them) are all read as grayscale, and it is said so.
    mixed = write_image_folder(tmp_path / "mixed", classes=("a", "b", "c"), per_class=8, channels=[1, 4, 1])
    with caplog.at_level(logging.WARNING, logger="larq_mobisearch.data.folder"):
        ds = load_dataset(DataConfig(name="folder", data_dir=str(mixed), image_size=8, batch_size=4))
    assert ds.input_shape == (8, 8, 1)
    assert "mixed folder: 16 grayscale and 8 colour files, all read as grayscale" in ds.description
    assert any("mixed folder" in r.getMessage() for r in caplog.records)
    x = images_of(ds.eval_batches("train"))
    assert x.shape[-1] == 1 and x.min() >= -1 and x.max() <= 1
    # Majority colour: the grayscale files are read as 3 equal channels.
    mostly_colour = write_image_folder(tmp_path / "mc", classes=("a", "b", "c"), per_class=8, channels=[3, 1, 3])
    ds = load_dataset(DataConfig(name="folder", data_dir=str(mostly_colour), image_size=8, batch_size=4))
    assert ds.input_shape == (8, 8, 3) and "all read as colour" in ds.description
    gray_part = [x for x, y in ds.examples("train") if int(y) == 1]
    assert gray_part and all(np.array_equal(g[..., 0], g[..., 2]) for g in gray_part)
