"""Training streams and recalibration samples: seeded, shuffled across the whole training split, and a
pure function of (``data.seed``, epoch).

Epoch ``k`` of the training stream:

- order: for sources with random access (arrays, IDX files, image-folder file lists, and TFDS splits held
  in memory) a full permutation of the split's indices, ``stateless_shuffle(range(n), seed=f(seed, k))``,
  computed on indices (the images are looked up afterwards); for streamed TFDS splits the source's own
  shuffled epoch (`Source.epoch_stream`, seeded the same way);
- augmentation: the example at position ``p`` of epoch ``k`` is augmented with stateless random ops seeded
  from (seed, k, p);
- batching: every epoch is batched on its own (the last partial batch dropped when the split holds a full
  batch), so epoch ``k`` is exactly ``steps_per_epoch`` batches whatever came before it.

`training_stream(..., start_epoch=k)` is the infinite concatenation of epochs k, k+1, ...: a run resumed at
epoch k reads the same batches as an uninterrupted run does from its k-th epoch on. No op depends on
TensorFlow's global seed.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from .source import Fetch, Source

AUTOTUNE = tf.data.AUTOTUNE

# Purposes folded into the data seed, so that the streams drawn from one seed are independent.
ORDER, AUGMENT, RECALIBRATION_AUGMENT = 1, 2, 3


def seed_key(seed: int, purpose: int) -> tf.Tensor:
    """The stateless seed (``[2]`` int64) of one purpose under ``data.seed`` = `seed`."""
    return tf.constant([int(seed), int(purpose)], tf.int64)


def fold(key: tf.Tensor, value) -> tf.Tensor:
    """A new stateless seed derived from `key` and an integer (tensor) `value`."""
    return tf.random.experimental.stateless_fold_in(key, tf.cast(value, tf.int64))


def epoch_order(n: int, seed: int, epoch) -> tf.Tensor:
    """The permutation of ``range(n)`` (int64) that orders epoch `epoch` (int or scalar tensor)."""
    key = fold(seed_key(seed, ORDER), epoch)
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=key)


def _prepare(examples: tf.data.Dataset, source: Source, augment: bool, key: tf.Tensor) -> tf.data.Dataset:
    """(base image, label) -> (model input, label); augmentation seeded by (key, position)."""
    prep = source.prep
    if augment:
        return examples.enumerate().map(lambda p, xy: (prep.augment(xy[0], fold(key, p)), xy[1]),
                                        num_parallel_calls=AUTOTUNE)
    return examples.map(lambda x, y: (prep.evaluate(x), y), num_parallel_calls=AUTOTUNE)


def training_stream(source: Source, fetch: Optional[Fetch], *, n: int, batch_size: int, seed: int, augment: bool,
                    window: int, start_epoch: int = 0) -> tf.data.Dataset:
    """Batches of epochs ``start_epoch, start_epoch + 1, ...`` (infinite), see the module docstring.

    # Arguments
        source: the data source; `fetch` its random access to the training split, or None to stream it.
        n: size of the training split; batch_size: examples per batch.
        seed: ``data.seed``; augment: training augmentation (else evaluation preprocessing).
        window: shuffle window of streamed sources (``data.shuffle_buffer``).
        start_epoch: first epoch of the stream.

    # Returns
        An infinite `tf.data.Dataset` of (float32 [B, H, W, C], int32 [B]); pass ``steps_per_epoch`` to Keras.
    """
    drop = n >= batch_size
    augment_key = seed_key(seed, AUGMENT)

    def one_epoch(epoch):
        if fetch is not None:
            examples = tf.data.Dataset.from_tensor_slices(epoch_order(n, seed, epoch)).map(
                fetch, num_parallel_calls=AUTOTUNE)
        else:
            examples = source.epoch_stream("train", fold(seed_key(seed, ORDER), epoch), window)
        return _prepare(examples, source, augment, fold(augment_key, epoch)).batch(batch_size, drop_remainder=drop)

    stream = tf.data.Dataset.counter(int(start_epoch)).flat_map(one_epoch)
    stream = stream.apply(tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))
    # Multi-worker training (tf.distribute) shards the global batches by element: every worker builds the same
    # seeded stream and keeps its share of each global batch.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return stream.prefetch(AUTOTUNE).with_options(options)


def recalibration_indices(n_split: int, n: int, seed: int) -> np.ndarray:
    """`n` distinct indices drawn uniformly from ``range(n_split)`` (seeded), in random order."""
    return np.random.default_rng([int(seed), 0x2EC]).choice(n_split, size=min(n, n_split), replace=False)


def recalibration_examples(source: Source, fetch: Optional[Fetch], *, n_split: int, n: int, seed: int,
                           augment: bool) -> tf.data.Dataset:
    """Unbatched, a fixed seeded sample of `n` training examples spread over the whole split, same every time."""
    if fetch is not None:
        examples = tf.data.Dataset.from_tensor_slices(recalibration_indices(n_split, n, seed)).map(
            fetch, num_parallel_calls=AUTOTUNE)
    else:
        examples = source.sample_stream("train", n, seed)
    return _prepare(examples, source, augment, seed_key(seed, RECALIBRATION_AUGMENT))


def materialize(source: Source, split: str, batch_size: int = 1024) -> Tuple[np.ndarray, np.ndarray]:
    """All of `split` after `prep.base`, as numpy ``(images, labels)`` in `stream` order (fixed-size images)."""
    images, labels = [], []
    for x, y in source.stream(split).batch(batch_size).prefetch(AUTOTUNE):
        images.append(x.numpy())
        labels.append(y.numpy())
    return np.concatenate(images), np.concatenate(labels).astype(np.int32)
