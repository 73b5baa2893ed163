"""IDX data sets (issue 13): the IDX reader on files written here (plain and gzipped, damaged), the
`idx` / `mnist` / `fashion_mnist` sources and their errors, and the real Fashion-MNIST of Debian's
dataset-fashion-mnist package."""

import gzip
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import larq_mobisearch  # noqa: E402,F401

from data_helpers import assert_same_batches, batches, labels_of, no_network, write_idx  # noqa: E402,F401
from larq_mobisearch.config import ConfigError, DataConfig  # noqa: E402
from larq_mobisearch.data import (  # noqa: E402
    IDX_FILES,
    CorruptDatasetError,
    DatasetNotAvailableError,
    load_dataset,
    read_idx,
)

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def _write_set(directory, n_train=200, n_test=50, size=10, classes=4, gz=("train",), seed=0):
    """The four IDX files of a small random data set; `gz`: the splits whose files are gzipped."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        labels = (np.arange(n) % classes).astype(np.uint8)
        suffix = ".gz" if ("train" if split == "train" else "test") in gz else ""
        write_idx(directory / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(directory / f"{split}-labels-idx1-ubyte{suffix}", labels)
        arrays[split] = (images, labels)
    return arrays


def test_read_idx_plain_and_gzip(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    plain = read_idx(write_idx(tmp_path / "a-idx3-ubyte", images), 0x00000803)
    packed = read_idx(write_idx(tmp_path / "a-idx3-ubyte.gz", images), 0x00000803)
    np.testing.assert_array_equal(plain, images)
    np.testing.assert_array_equal(packed, images)
    assert plain.dtype == np.uint8 and plain.shape == (7, 5, 3)
    labels = np.arange(9, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l", labels), 0x00000801), labels)
    # gzip is recognised by content, not by name
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "l2", labels, compress=True)), labels)


def test_read_idx_errors(tmp_path):
    images = np.zeros((4, 3, 3), np.uint8)
    path = write_idx(tmp_path / "images", images)
    with pytest.raises(CorruptDatasetError, match=r"wrong magic number 0x00000803; expected 0x00000801 "
                                                  r"\(IDX labels: unsigned bytes, 1 dimension\)"):
        read_idx(path, 0x00000801)
    data = open(path, "rb").read()
    (tmp_path / "truncated").write_bytes(data[:-5])
    with pytest.raises(CorruptDatasetError, match=r"truncated: its header declares dimensions \(4, 3, 3\) "
                                                  r"\(36 bytes of data\) but 31 bytes follow the header"):
        read_idx(str(tmp_path / "truncated"), 0x00000803)
    (tmp_path / "long").write_bytes(data + b"\0")
    with pytest.raises(CorruptDatasetError, match="trailing bytes"):
        read_idx(str(tmp_path / "long"))
    (tmp_path / "header").write_bytes(data[:9])
    with pytest.raises(CorruptDatasetError, match=r"truncated inside its header \(9 of 16 bytes\)"):
        read_idx(str(tmp_path / "header"))
    (tmp_path / "text").write_bytes(b"<html>not found</html>")
    with pytest.raises(CorruptDatasetError, match="0x3c68746d is not an IDX magic number"):
        read_idx(str(tmp_path / "text"))
    packed = gzip.compress(data)
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(CorruptDatasetError, match="damaged gzip file"):
        read_idx(str(tmp_path / "cut.gz"))
    broken = bytearray(packed)
    broken[-6] ^= 0xFF  # CRC / length trailer
    (tmp_path / "crc.gz").write_bytes(bytes(broken))
    with pytest.raises(CorruptDatasetError, match="damaged gzip file"):
        read_idx(str(tmp_path / "crc.gz"))


def test_idx_directory_loads_with_official_test_split(tmp_path):
    arrays = _write_set(tmp_path / "set", gz=("train",))  # train gzipped, test plain
    cfg = DataConfig(name="idx", data_dir=str(tmp_path / "set"), image_size=10, batch_size=16)
    ds = load_dataset(cfg)
    assert (ds.name, ds.num_classes, ds.input_shape) == ("idx", 4, (10, 10, 1))
    assert (ds.train_size, ds.holdout_size, ds.test_size) == (170, 30, 50)  # holdout = round(0.15 * 200)
    # The holdout is a stratified part of the training file; the test split is the test file as is.
    holdout = labels_of(ds.holdout)
    np.testing.assert_array_equal(holdout, arrays["train"][1][ds.split_indices["holdout"]])
    assert np.abs(np.bincount(holdout) - 7.5).max() <= 1  # 30 of 4 classes x 50
    x, y = ds.numpy_samples("test", None)
    np.testing.assert_array_equal(y, arrays["t10k"][1])
    np.testing.assert_allclose(x[..., 0], arrays["t10k"][0] / 127.5 - 1.0, atol=1e-6)
    x, y = ds.numpy_samples("train", 5)
    np.testing.assert_allclose(x[..., 0], arrays["train"][0][ds.split_indices["train"][:5]] / 127.5 - 1, atol=1e-6)
    # Training stream: seeded, epoch k reproducible on its own, augmented (pad + crop; no flips for "idx").
    x, y = next(iter(ds.train))
    assert x.shape == (16, 10, 10, 1) and x.numpy().min() >= -1 and x.numpy().max() <= 1
    steps = ds.steps_per_epoch
    assert_same_batches(batches(ds.train_from(1), steps), batches(ds.train, 2 * steps)[steps:])
    assert not ds.source.prep.flip
    plain = load_dataset(DataConfig(name="idx", data_dir=str(tmp_path / "set"), image_size=10, batch_size=16,
                                    augment=False))
    xp, yp = next(iter(plain.train))
    np.testing.assert_array_equal(yp, y)  # same order, only the augmentation differs
    assert not np.allclose(xp, x)
    # Another image size resizes once, in memory.
    small = load_dataset(DataConfig(name="idx", data_dir=str(tmp_path / "set"), image_size=8, batch_size=16))
    assert small.input_shape == (8, 8, 1) and next(iter(small.train))[0].shape == (16, 8, 8, 1)
    assert "resized to 8x8x1" in small.description


def test_idx_inconsistent_files(tmp_path):
    _write_set(tmp_path / "count")
    write_idx(tmp_path / "count" / "t10k-labels-idx1-ubyte", np.zeros(49, np.uint8))
    with pytest.raises(CorruptDatasetError, match=r"test split: .*t10k-images-idx3-ubyte holds 50 images but "
                                                  r".*t10k-labels-idx1-ubyte holds 49 labels"):
        load_dataset(DataConfig(name="idx", data_dir=str(tmp_path / "count")))
    _write_set(tmp_path / "swapped")
    os.replace(tmp_path / "swapped" / "t10k-labels-idx1-ubyte", tmp_path / "swapped" / "labels")
    os.replace(tmp_path / "swapped" / "t10k-images-idx3-ubyte", tmp_path / "swapped" / "t10k-labels-idx1-ubyte")
    os.replace(tmp_path / "swapped" / "labels", tmp_path / "swapped" / "t10k-images-idx3-ubyte")
    with pytest.raises(CorruptDatasetError, match="wrong magic number 0x00000801; expected 0x00000803"):
        load_dataset(DataConfig(name="idx", data_dir=str(tmp_path / "swapped")))
    _write_set(tmp_path / "cut")
    path = tmp_path / "cut" / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    with pytest.raises(CorruptDatasetError, match=r"train-images-idx3-ubyte.gz is truncated"):
        load_dataset(DataConfig(name="idx", data_dir=str(tmp_path / "cut")))


def test_missing_idx_files_say_where_and_how(tmp_path):
    with pytest.raises(DatasetNotAvailableError) as info:
        load_dataset(DataConfig(name="fashion_mnist", data_dir=str(tmp_path)))
    msg = str(info.value)
    assert str(tmp_path) in msg and "train-images-idx3-ubyte[.gz]" in msg
    assert "apt-get install -y dataset-fashion-mnist" in msg
    assert "https://github.com/zalandoresearch/fashion-mnist" in msg
    _write_set(tmp_path / "partial")
    os.remove(tmp_path / "partial" / "t10k-labels-idx1-ubyte")
    with pytest.raises(DatasetNotAvailableError, match=r"missing: t10k-labels-idx1-ubyte\[.gz\]\. .*yann.lecun"):
        load_dataset(DataConfig(name="mnist", data_dir=str(tmp_path / "partial")))
    with pytest.raises(DatasetNotAvailableError, match=r"no such directory.*Debian has no MNIST package"):
        load_dataset(DataConfig(name="mnist", data_dir=str(tmp_path / "absent")))
    with pytest.raises(ConfigError, match=r"data.data_dir: received None; data.name='mnist' needs .*yann.lecun"):
        load_dataset(DataConfig(name="mnist"))
    with pytest.raises(ConfigError, match=r"data.data_dir: received None; data.name='idx'"):
        load_dataset(DataConfig(name="idx"))


def test_prepared_tfds_copy_is_still_read_through_tfds(tmp_path, no_network):
    (tmp_path / "mnist").mkdir()  # a TFDS data_dir layout, without the prepared files
    with pytest.raises(DatasetNotAvailableError, match="tfds build mnist"):
        load_dataset(DataConfig(name="mnist", data_dir=str(tmp_path)))


def test_real_fashion_mnist_from_debian():
    if not all(os.path.exists(os.path.join(FASHION_DIR, f"{name}.gz")) for name in IDX_FILES.values()):
        if os.environ.get("CI"):
            pytest.fail(f"CI: Fashion-MNIST is not in {FASHION_DIR} (apt-get install -y dataset-fashion-mnist)")
        pytest.skip(f"Fashion-MNIST is not installed in {FASHION_DIR} (apt-get install -y dataset-fashion-mnist)")
    ds = load_dataset(DataConfig(name="fashion_mnist", image_size=28, batch_size=500))  # default data_dir
    assert ds.description.startswith(f"Fashion-MNIST IDX files in {FASHION_DIR}")
    assert (ds.train_size, ds.holdout_size, ds.test_size) == (51000, 9000, 10000)
    assert ds.input_shape == (28, 28, 1) and ds.num_classes == 10
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    test_labels = ds.source.labels("test")
    np.testing.assert_array_equal(np.bincount(test_labels, minlength=10), [1000] * 10)
    np.testing.assert_array_equal(np.bincount(labels_of(ds.holdout), minlength=10), [900] * 10)  # stratified
    np.testing.assert_array_equal(np.bincount(ds.source.labels("train"), minlength=10), [5100] * 10)
    x, y = ds.numpy_samples("test", 1000)
    np.testing.assert_array_equal(y, test_labels[:1000])
    assert x.shape == (1000, 28, 28, 1) and x.min() == -1.0 and x.max() == 1.0
    assert -0.7 < x.mean() < -0.3  # mostly dark background (mean pixel of Fashion-MNIST ~ 73/255)
    xb, yb = next(iter(ds.train))
    assert xb.shape == (500, 28, 28, 1) and len(np.unique(yb.numpy())) == 10
