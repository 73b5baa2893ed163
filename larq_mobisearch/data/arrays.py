"""Sources held in memory as numpy arrays: the generic `ArraySource` and scikit-learn's bundled digits."""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np
import tensorflow as tf

from ..config import DataConfig
from .preprocessing import Preprocessing
from .source import Source, array_fetcher
from .splits import three_way_split


class ArraySource(Source):
    """Splits held in memory as ``(images, labels)`` numpy arrays, images already through `prep.base`.

    # Arguments
        name: dataset name for reports.
        arrays: split -> (images [N, H, W, C] uint8 or float32 in [0, 1], labels [N] int).
        num_classes, class_names: the label set.
        prep: the `Preprocessing` the images are prepared for.
        description: one line for logs and reports.
    """

    in_memory = True

    def __init__(
        self,
        name: str,
        arrays: Dict[str, Tuple[np.ndarray, np.ndarray]],
        num_classes: int,
        class_names: Sequence[str],
        prep: Preprocessing,
        description: str = "",
    ):
        self.name = name
        self.arrays = {k: (x, np.asarray(y, np.int32)) for k, (x, y) in arrays.items()}
        self.num_classes = int(num_classes)
        self.class_names = tuple(class_names)
        self.prep = prep
        self.sizes = {k: int(len(y)) for k, (_, y) in self.arrays.items()}
        self.description = description
        self._fetchers = {}

    def stream(self, split):
        x, y = self.arrays[split]
        return tf.data.Dataset.from_tensor_slices((x, y))

    def fetcher(self, split):
        if split not in self._fetchers:
            self._fetchers[split] = array_fetcher(*self.arrays[split])
        return self._fetchers[split]

    def labels(self, split):
        return self.arrays[split][1]


def digits_source(cfg: DataConfig) -> ArraySource:
    """scikit-learn's 1,797 real 8x8 digits (values 0..16) in [0, 1], resized to ``cfg.image_size`` once,
    split into train / holdout / test by `three_way_split` (``cfg.test_fraction``, ``cfg.holdout_fraction``)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[..., None]  # (1797, 8, 8, 1) in [0, 1]
    labels = bunch.target.astype(np.int32)
    s = cfg.image_size
    resized = tf.image.resize(images, (s, s), method="bilinear").numpy()
    resized = np.clip(resized, 0.0, 1.0).astype(np.float32)
    parts = three_way_split(labels, cfg)
    prep = Preprocessing(image_size=s, channels=1, kind="digits", native_hw=(s, s), flip=False)
    source = ArraySource(
        "digits",
        {k: (resized[idx], labels[idx]) for k, idx in parts.items()},
        num_classes=10,
        class_names=[str(i) for i in range(10)],
        prep=prep,
        description=f"scikit-learn digits: 1,797 8x8 images resized to {s}x{s}x1",
    )
    source.indices = parts
    return source
