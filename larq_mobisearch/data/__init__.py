"""Datasets as `tf.data` pipelines: scikit-learn digits (bundled, offline), IDX files (Fashion-MNIST, MNIST),
image folders and prepared TFDS datasets.

`load_dataset(cfg)` returns a `Dataset` with a seeded, fully shuffled training stream (`Dataset.train`,
`Dataset.train_from(epoch)`), a holdout split (only for the search) and a test split. Modules:

- `preprocessing`: resize, evaluation view, seeded augmentation (`Preprocessing`);
- `source`: what a source provides (`Source`); `splits`: seeded stratified splits;
- `arrays` (in-memory arrays, digits), `idx` (IDX files), `folder` (image folders), `tfds` (TFDS): the sources;
  `filecheck`: every image file decoded once before training (verdicts cached);
- `streams`: the epoch-seeded training stream and recalibration samples; `dataset`: `Dataset`;
  `load`: `load_dataset`.
"""

from __future__ import annotations

from .. import _keras

_keras.select_legacy_keras()  # idempotent: the package __init__ has selected Keras 2 (TF_USE_LEGACY_KERAS) already

from .dataset import Dataset  # noqa: E402
from .errors import CorruptDatasetError, DatasetNotAvailableError, UnknownDatasetError  # noqa: E402
from .idx import IDX_DATASETS, IDX_FILES, read_idx  # noqa: E402
from .load import load_dataset  # noqa: E402
from .preprocessing import AUTO_CACHE_BYTES, LARGE_IMAGE_SIZE, Preprocessing, resize_scale  # noqa: E402
from .source import SPLITS, Source  # noqa: E402
from .splits import stratified_split  # noqa: E402
from .folder import IMAGE_EXTENSIONS  # noqa: E402

__all__ = [
    "AUTO_CACHE_BYTES",
    "CorruptDatasetError",
    "Dataset",
    "DatasetNotAvailableError",
    "IDX_DATASETS",
    "IDX_FILES",
    "IMAGE_EXTENSIONS",
    "LARGE_IMAGE_SIZE",
    "Preprocessing",
    "SPLITS",
    "Source",
    "UnknownDatasetError",
    "load_dataset",
    "read_idx",
    "resize_scale",
    "stratified_split",
]
