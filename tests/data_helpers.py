"""Helpers shared by the data tests (test_data_*.py): pipeline readers and data writers."""

import gzip
import socket
import struct

import numpy as np
import pytest
import tensorflow as tf


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def labels_of(ds):
    return np.concatenate([y.numpy() for _, y in ds])


def images_of(ds):
    return np.concatenate([x.numpy() for x, _ in ds])


def batches(stream, n):
    """The first `n` batches of a (possibly infinite) stream, as numpy (images, labels) pairs."""
    return [(x.numpy(), y.numpy()) for x, y in stream.take(n)]


def epochs(ds, n):
    """The first `n` epochs of ``ds.train``, each as (images, labels) concatenated over its batches."""
    steps = ds.steps_per_epoch
    flat = batches(ds.train, n * steps)
    return [(np.concatenate([b[0] for b in flat[e * steps:(e + 1) * steps]]),
             np.concatenate([b[1] for b in flat[e * steps:(e + 1) * steps]])) for e in range(n)]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)


def write_idx(path, array, magic=None, compress=None):
    """Write `array` (uint8) as an IDX file (gzipped if the name ends in .gz or `compress`)."""
    array = np.asarray(array, np.uint8)
    magic = 0x00000800 + array.ndim if magic is None else magic
    data = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if compress or (compress is None and str(path).endswith(".gz")):
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)
    return path


def write_image_folder(root, classes=("cat", "dog", "fish"), per_class=7, size=(12, 10), channels=3, seed=0,
                       pattern=None):
    """One sub-folder per class of random PNGs; `channels` may be a per-class list. Files sort by class."""
    rng = np.random.default_rng(seed)
    for k, c in enumerate(classes):
        d = root / c
        d.mkdir(parents=True)
        ch = channels[k] if isinstance(channels, (list, tuple)) else channels
        for i in range(per_class):
            img = rng.integers(0, 256, size + (ch,), dtype=np.uint8)
            (d / f"{i:04d}.png").write_bytes(tf.io.encode_png(img).numpy())
    return root
