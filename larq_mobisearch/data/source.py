"""The interface between a data source (arrays, IDX files, image folders, TFDS) and `Dataset`.

A source knows, for each split (``train``, ``holdout``, ``test``), its size and labels, and gives the
split's examples as ``(image after Preprocessing.base, int32 label)``:

- `stream(split)`: every example once, in a fixed order (evaluation, statistics);
- `fetcher(split)`: random access by index, a TensorFlow function ``index -> (image, label)``, for sources
  that can address an example by its index (in-memory arrays, file lists). `Dataset` builds every training
  epoch from a full seeded permutation of indices; None for sources that can only be read front to back;
- `epoch_stream` / `sample_stream`: the shuffled epoch and the uniform sample of a stream-only source.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from .preprocessing import Preprocessing

SPLITS = ("train", "holdout", "test")

#: ``index (int64 scalar tensor) -> (image after base, int32 label)``
Fetch = Callable[[tf.Tensor], Tuple[tf.Tensor, tf.Tensor]]


def check_split(split: str) -> str:
    """`split` if it is one of `SPLITS`, else a ValueError listing them."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, received {split!r}")
    return split


def array_fetcher(images: np.ndarray, labels: np.ndarray) -> Fetch:
    """Random access into in-memory arrays (captured once as constants of the input pipeline)."""
    x = tf.constant(images)
    y = tf.constant(np.asarray(labels, np.int32))

    def fetch(index):
        return tf.gather(x, index), tf.gather(y, index)

    return fetch


class Source:
    """Base class of the data sources; subclasses set the attributes and implement the methods.

    Attributes: `name`, `num_classes`, `class_names`, `prep` (`Preprocessing`), `sizes` (split -> count),
    `description` (one line for logs and reports), `indices` (split -> indices into the source's files or
    arrays, where that means something; else None), `in_memory` (the splits are numpy arrays already),
    `skipped` (``(file, reason)`` of the unreadable files left out, ``data.skip_unreadable``).
    """

    in_memory: bool = False

    name: str
    num_classes: int
    class_names: Tuple[str, ...]
    prep: Preprocessing
    sizes: Dict[str, int]
    description: str = ""
    indices: Optional[Dict[str, np.ndarray]] = None
    skipped: Tuple[Tuple[str, str], ...] = ()

    def stream(self, split: str) -> tf.data.Dataset:
        """Unbatched (image after `prep.base`, int32 label) of `split`, every example once, fixed order."""
        raise NotImplementedError

    def fetcher(self, split: str) -> Optional[Fetch]:
        """Random access to `split` by index, or None if the source can only be streamed."""
        return None

    def labels(self, split: str) -> Optional[np.ndarray]:
        """Labels of `split` in `stream` order if known without reading the images, else None."""
        return None

    def epoch_stream(self, split: str, key: tf.Tensor, window: int) -> tf.data.Dataset:
        """Stream-only sources: `split` once, shuffled as well as the source allows, a pure function of `key`."""
        raise NotImplementedError(f"{type(self).__name__} has random access; use fetcher()")

    def sample_stream(self, split: str, n: int, seed: int) -> tf.data.Dataset:
        """Stream-only sources: a fixed seeded sample of `n` examples of `split`, spread over the whole split."""
        raise NotImplementedError(f"{type(self).__name__} has random access; use fetcher()")
