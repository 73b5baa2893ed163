"""The `Dataset` object: a source's three splits as batched `tf.data` pipelines, plus what the model and the
search need to know about them (sizes, input shape, classes).

- ``train`` / ``train_from(epoch)``: the training stream (see `streams`): every epoch a full seeded
  permutation of the training split (streamed TFDS splits: shuffled files, interleave and a shuffle window),
  seeded augmentation, one epoch = ``steps_per_epoch`` batches; epoch k is a pure function of
  (``data.seed``, k); infinite, so Keras needs ``steps_per_epoch``;
- ``holdout``: used only by the search (never the test split); ``test``: the test split; both evaluation
  preprocessing, fixed order, cached in memory when small.

Sources without their own memory copy (image folders, TFDS) are read into memory for training once, at the
first use of the training stream, when their base-resized training split is fixed-size and ``data.cache``
allows it (``auto``: up to 1 GiB); otherwise every epoch decodes the files again.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from ..config import DataConfig
from .errors import DatasetNotAvailableError
from .preprocessing import should_cache
from .source import SPLITS, Fetch, Source, array_fetcher, check_split
from .streams import materialize, recalibration_examples, training_stream

AUTOTUNE = tf.data.AUTOTUNE


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, received {value!r}")
    return int(value)


def _nonnegative_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, received {value!r}")
    return int(value)


class Dataset:
    """Batched `train` / `holdout` / `test` pipelines of one data source, built by `load_dataset`.

    Attributes: `name`, `num_classes`, `input_shape` (H, W, C), `train_size`, `holdout_size`, `test_size`,
    `batch_size`, `class_names`, `config` (the `DataConfig`), `description`, `normalization`, `split_indices`
    (each split's indices into the source's arrays / file list / official training file; None for TFDS),
    `skipped_files` (``(file, reason)`` of unreadable files left out of an image folder),
    `holdout`, `test` (batches of (float32 [B, H, W, C], int32 [B])), `source`.

    Methods: `train_from(epoch)` (and `train` = `train_from(0)`), `examples(split)` (unbatched, unshuffled),
    `eval_batches(split)`, `numpy_samples(split, n)`, `recalibration_batches(num_batches)`, `size(split)`,
    `steps_per_epoch`, `summary()`.
    """

    normalization = "pixel / 127.5 - 1 (float32 in [-1, 1])"

    def __init__(self, source: Source, cfg: DataConfig):
        sizes = source.sizes
        for split in SPLITS:
            if sizes.get(split, 0) < 1:
                raise DatasetNotAvailableError(
                    f"Dataset {source.name!r}: the {split} split is empty (sizes: {sizes}); "
                    f"use more data or change data.holdout_fraction / data.test_fraction"
                )
        self.source = source
        self.config = cfg
        self.name = source.name
        self.num_classes = int(source.num_classes)
        self.class_names = tuple(source.class_names)
        self.input_shape: Tuple[int, int, int] = (cfg.image_size, cfg.image_size, source.prep.channels)
        self.train_size, self.holdout_size, self.test_size = (int(sizes[s]) for s in SPLITS)
        self.batch_size = int(cfg.batch_size)
        self.description = source.description
        self.split_indices: Optional[Dict[str, np.ndarray]] = source.indices
        self.skipped_files: Tuple[Tuple[str, str], ...] = tuple(source.skipped)
        self.holdout = self._evaluation("holdout")
        self.test = self._evaluation("test")
        self._train: Optional[tf.data.Dataset] = None
        self._fetch: Optional[Fetch] = None
        self._fetch_resolved = False

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, input_shape={self.input_shape}, num_classes={self.num_classes}, "
                f"train/holdout/test={self.train_size}/{self.holdout_size}/{self.test_size}, "
                f"batch_size={self.batch_size})")

    # ---- sizes ----
    def size(self, split: str) -> int:
        return {"train": self.train_size, "holdout": self.holdout_size, "test": self.test_size}[check_split(split)]

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch of the training stream (the last partial batch is dropped if there is a full one)."""
        b = self.batch_size
        return self.train_size // b if self.train_size >= b else 1

    # ---- training ----
    def _train_fetch(self) -> Optional[Fetch]:
        """Random access to the training split (read into memory first where that is allowed), or None."""
        if not self._fetch_resolved:
            src, cfg = self.source, self.config
            fetch = None
            if not src.in_memory and src.prep.static_base_shape is not None and \
                    should_cache(cfg.cache, src.prep.base_bytes(self.train_size)):
                fetch = array_fetcher(*materialize(src, "train"))
            self._fetch = fetch or src.fetcher("train")
            self._fetch_resolved = True
        return self._fetch

    def train_from(self, epoch: int) -> tf.data.Dataset:
        """The training stream from epoch `epoch` on: epochs ``epoch, epoch + 1, ...`` (infinite).

        Each epoch is ``steps_per_epoch`` batches of (float32 [B, H, W, C], int32 [B]), a pure function of
        (``data.seed``, epoch): ``train_from(k)`` yields what `train` yields after k epochs.

        # Arguments
            epoch: first epoch (>= 0), e.g. the epoch a resumed `training.fit` starts at.

        # Returns
            An infinite `tf.data.Dataset`; iterate it with ``.take(steps)`` or give Keras ``steps_per_epoch``.
        """
        epoch = _nonnegative_int(epoch, "epoch")
        cfg = self.config
        return training_stream(self.source, self._train_fetch(), n=self.train_size, batch_size=self.batch_size,
                               seed=cfg.seed, augment=cfg.augment, window=cfg.shuffle_buffer, start_epoch=epoch)

    @property
    def train(self) -> tf.data.Dataset:
        """`train_from(0)`: the whole training stream from its first epoch (infinite)."""
        if self._train is None:
            self._train = self.train_from(0)
        return self._train

    # ---- other views of the splits ----
    def examples(self, split: str = "test") -> tf.data.Dataset:
        """Unbatched, unshuffled, unaugmented (evaluation-preprocessed) examples of `split`, fixed order.

        ``examples("train")`` is the unshuffled training split (e.g. for BatchNorm statistics).
        """
        prep = self.source.prep
        return self.source.stream(check_split(split)).map(lambda x, y: (prep.evaluate(x), y),
                                                           num_parallel_calls=AUTOTUNE)

    def _evaluation(self, split: str) -> tf.data.Dataset:
        ds = self.examples(split)
        if not self.source.in_memory and \
                should_cache(self.config.cache, self.source.prep.eval_bytes(self.size(split))):
            ds = ds.cache()
        return ds.batch(self.batch_size).prefetch(AUTOTUNE)

    def eval_batches(self, split: str = "test", batch_size: Optional[int] = None) -> tf.data.Dataset:
        """`examples(split)` batched (``train`` here is unshuffled and unaugmented)."""
        bs = _positive_int(batch_size or self.batch_size, "batch_size")
        return self.examples(split).batch(bs).prefetch(AUTOTUNE)

    def numpy_samples(self, split: str = "test", n: Optional[int] = 256) -> Tuple[np.ndarray, np.ndarray]:
        """The first `n` examples of `split` (fixed order, evaluation preprocessing) as numpy arrays.

        # Returns
            ``(images float32 [n, H, W, C], labels int32 [n])``; fewer if the split is smaller; ``n=None``
            returns the whole split.
        """
        split = check_split(split)
        size = self.size(split)
        n = size if n is None else min(_nonnegative_int(n, "n"), size)
        if n == 0:
            return np.zeros((0,) + tuple(self.input_shape), np.float32), np.zeros((0,), np.int32)
        images, labels = [], []
        for x, y in self.examples(split).take(n).batch(min(n, 1024)):
            images.append(x.numpy())
            labels.append(y.numpy())
        return np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.int32)

    def recalibration_batches(self, num_batches: int, batch_size: Optional[int] = None, seed: Optional[int] = None,
                              augment: bool = False) -> tf.data.Dataset:
        """A fixed, seeded set of `num_batches` training batches, e.g. to recompute BatchNorm statistics.

        The examples are a seeded uniform sample of the whole training split (distinct indices; streamed
        TFDS splits: uniform over whole shard files chosen at random, see `tfds`), in a seeded order. Every
        iteration of the returned dataset yields the same batches.

        # Arguments
            num_batches: batches (fewer if the training split is too small).
            batch_size: default ``data.batch_size``.
            seed: default ``data.seed``.
            augment: a fixed seeded augmentation instead of the evaluation preprocessing.
        """
        num_batches = _positive_int(num_batches, "num_batches")
        bs = _positive_int(batch_size or self.batch_size, "batch_size")
        seed = self.config.seed if seed is None else int(seed)
        n = min(num_batches * bs, self.train_size)
        ds = recalibration_examples(self.source, self._train_fetch(), n_split=self.train_size, n=n, seed=seed,
                                    augment=augment).batch(bs)
        if should_cache(self.config.cache, self.source.prep.eval_bytes(n)):
            ds = ds.cache()
        return ds.prefetch(AUTOTUNE)

    def summary(self) -> Dict[str, Any]:
        """Plain-dict description for logs and reports."""
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "train_size": self.train_size,
            "holdout_size": self.holdout_size,
            "test_size": self.test_size,
            "batch_size": self.batch_size,
            "normalization": self.normalization,
            "description": self.description,
        }
