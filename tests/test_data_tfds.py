"""Prepared TFDS datasets: availability errors (nothing is downloaded), a tiny prepared dataset, and the
training stream of a streamed (not in-memory) multi-shard split: every example once per epoch, epoch k
reproducible on its own, uniform recalibration sample."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import larq_mobisearch  # noqa: E402,F401
import tensorflow as tf  # noqa: E402

from data_helpers import assert_same_batches, batches, images_of, labels_of, no_network  # noqa: E402,F401
from larq_mobisearch.config import DataConfig  # noqa: E402
from larq_mobisearch.data import DatasetNotAvailableError, UnknownDatasetError, load_dataset  # noqa: E402


def test_tfds_not_prepared_raises_helpful_error(tmp_path, no_network):
    with pytest.raises(DatasetNotAvailableError) as info:
        load_dataset(DataConfig(name="cifar10", data_dir=str(tmp_path)))
    msg = str(info.value)
    assert str(tmp_path) in msg and "not prepared" in msg
    assert "tfds build cifar10" in msg
    assert "Traceback" not in msg
    assert list(tmp_path.iterdir()) == []  # nothing created, nothing downloaded


def test_tfds_imagenet_manual_download_hint(tmp_path, no_network):
    with pytest.raises(DatasetNotAvailableError) as info:
        load_dataset(DataConfig(name="imagenet2012", data_dir=str(tmp_path), image_size=224))
    msg = str(info.value)
    assert os.path.join(str(tmp_path), "downloads", "manual") in msg
    assert "ILSVRC2012_img_train.tar" in msg and "tfds build imagenet2012" in msg


def test_unknown_dataset_name(tmp_path, no_network):
    with pytest.raises(UnknownDatasetError) as info:
        load_dataset(DataConfig(name="cifar1O", data_dir=str(tmp_path)))
    msg = str(info.value)
    assert "cifar1O" in msg and "cifar10" in msg and "fashion_mnist" in msg
    assert len(msg) < 400  # not the whole TFDS catalogue
    with pytest.raises(DatasetNotAvailableError, match="namespaced"):
        load_dataset(DataConfig(name="huggingface:mnist", data_dir=str(tmp_path)))


_BUILDERS = {}


def _tiny_builder(class_name, n_train, n_test, size=16):
    """A registered TFDS builder of random (size, size, 3) images, labels ``i % 3`` (classes a, b, c)."""
    import tensorflow_datasets as tfds

    if class_name in _BUILDERS:
        return _BUILDERS[class_name]

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3)),
                "label": tfds.features.ClassLabel(names=["a", "b", "c"]),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(n_train, 0), "test": self._generate_examples(n_test, 1)}

    def _generate_examples(self, n, seed):
        rng = np.random.default_rng(seed)
        for i in range(n):
            image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            image[0, 0, 0] = i % 256  # distinct images (for counting them)
            image[0, 0, 1] = i // 256
            yield i, {"image": image, "label": i % 3}

    cls = type(class_name, (tfds.core.GeneratorBasedBuilder,), {
        "VERSION": tfds.core.Version("1.0.0"), "_info": _info, "_split_generators": _split_generators,
        "_generate_examples": _generate_examples, "__module__": __name__,
    })
    _BUILDERS[class_name] = cls
    return cls


def _prepare(cls, data_dir, num_shards=None):
    import tensorflow_datasets as tfds

    cls(data_dir=str(data_dir)).download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False, num_shards=num_shards))


def test_tfds_prepared_dataset_loads(tmp_path, no_network):
    _prepare(_tiny_builder("MobisearchTestTiny", 40, 12), tmp_path)
    ds = load_dataset(DataConfig(name="mobisearch_test_tiny", data_dir=str(tmp_path), image_size=16, batch_size=8,
                                 holdout_fraction=0.25))
    assert (ds.num_classes, ds.input_shape, ds.class_names) == (3, (16, 16, 3), ("a", "b", "c"))
    assert (ds.train_size, ds.holdout_size, ds.test_size) == (30, 10, 12)
    x, y = next(iter(ds.train))
    assert x.shape == (8, 16, 16, 3) and x.dtype == tf.float32 and y.dtype == tf.int32
    assert float(tf.reduce_min(x)) >= -1.0 and float(tf.reduce_max(x)) <= 1.0
    assert len(labels_of(ds.holdout)) == 10 and len(labels_of(ds.test)) == 12
    xs, ys = ds.numpy_samples("test", 5)
    assert xs.shape == (5, 16, 16, 3)
    # ImageNet-style preprocessing at >= 128: random crop for training, centre crop for evaluation.
    big = load_dataset(DataConfig(name="mobisearch_test_tiny", data_dir=str(tmp_path), image_size=128, batch_size=4))
    assert big.input_shape == (128, 128, 3)
    assert next(iter(big.train))[0].shape == (4, 128, 128, 3)
    assert next(iter(big.test))[0].shape == (4, 128, 128, 3)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    _prepare(_tiny_builder("MobisearchTestSharded", 240, 30), data_dir, num_shards=4)
    return data_dir


def _ids(images):
    """The example number written into pixel (0, 0) (evaluation view: pixel / 127.5 - 1)."""
    pixels = np.round((images[:, 0, 0, :2] + 1.0) * 127.5).astype(int)
    return pixels[:, 0] + 256 * pixels[:, 1]


@pytest.mark.parametrize("cache", ["none", "auto"])  # streamed from the shard files / read into memory once
def test_tfds_training_epochs(sharded, cache, no_network):
    cfg = DataConfig(name="mobisearch_test_sharded", data_dir=str(sharded), image_size=16, batch_size=16,
                     shuffle_buffer=32, augment=False, cache=cache)
    ds = load_dataset(cfg)
    assert (ds.train_size, ds.holdout_size) == (204, 36)
    if cache == "none":
        assert ds.source.builder.info.splits["train"].num_shards == 4
    steps = ds.steps_per_epoch
    # position of every training example in the shard files read one after the other (TFDS shuffled the
    # examples when preparing them)
    import tensorflow_datasets as tfds

    files = ds.source.builder.as_dataset(split="train[:204]", read_config=tfds.ReadConfig(interleave_cycle_length=1))
    position = {i: p for p, i in enumerate(_ids(np.stack([ex["image"].numpy() / 127.5 - 1 for ex in files])))}
    assert len(position) == 204 and not set(position) & set(_ids(images_of(ds.holdout)))
    stream = batches(ds.train, 3 * steps)
    seen = []
    for e in range(3):
        ids = _ids(np.concatenate([x for x, _ in stream[e * steps:(e + 1) * steps]]))
        assert len(ids) == len(set(ids)) == steps * 16  # each example at most once per epoch
        assert set(ids) <= set(position)  # from train[:204] only, never the holdout
        seen.append(np.array([position[i] for i in ids]))
    assert not np.array_equal(seen[0], seen[1])  # reshuffled every epoch
    assert not np.all(np.diff(seen[0][:32]) > 0)  # not in file order
    assert seen[0][:32].max() - seen[0][:32].min() > 100  # the first batches come from all over the split
    # Epoch k on its own equals the k-th epoch of the uninterrupted stream; a fresh pipeline repeats it.
    assert_same_batches(batches(ds.train_from(2), steps), stream[2 * steps:])
    assert_same_batches(batches(load_dataset(cfg).train, steps), stream[:steps])
    # Recalibration: distinct training examples, spread over the split, the same at every iteration.
    recal = ds.recalibration_batches(3)
    ids = _ids(np.concatenate([x for x, _ in batches(recal, 3)]))
    assert len(ids) == len(set(ids)) == 48 and set(ids) <= set(position)
    spread = np.array([position[i] for i in ids])
    assert spread.max() - spread.min() > 100
    assert_same_batches(batches(recal, 3), batches(ds.recalibration_batches(3), 3))
