"""Datasets as `tf.data` pipelines: digits (bundled, offline), TFDS datasets, and image folders.

`load_dataset(cfg)` returns a `Dataset` with three batched pipelines and their sizes:

- ``train``: shuffled with a seeded shuffle that reshuffles every epoch, augmented (deterministic given
  ``cfg.seed``: augmentation draws stateless random ops from a seeded stream), batched (the last partial
  batch is dropped when the split has at least one full batch), prefetched;
- ``holdout``: carved out of the training split, used only by the search (never the test split);
- ``test``: the dataset's test split (TFDS ``test``, else ``validation``), or a seeded stratified split of
  digits / image folders.

Every image is float32 in ``[-1, 1]`` (pixel / 127.5 - 1, roughly zero-mean), shape ``input_shape`` =
``(image_size, image_size, channels)``; labels are int32 class ids (sparse).

Preprocessing:

- digits (scikit-learn's 1,797 real 8x8 images, values 0..16): scaled to [0, 1], bilinearly resized to
  ``image_size`` once, one channel; training shifts the digit by up to ``image_size // 8`` pixels
  (zero-pad + random crop; no flips: digits are not mirror-symmetric).
- natural images with ``image_size >= 128`` (the paper's ImageNet pipeline): resize the shorter side to
  ``round(image_size * 256 / 224)``; training takes a random ``image_size`` crop and a random horizontal
  flip, evaluation the centre crop.
- small natural images (e.g. CIFAR at 32): resize to ``image_size`` if needed; training pads by
  ``image_size // 8`` (4 at 32), takes a random crop and a random horizontal flip.

Nothing here downloads data: a TFDS dataset that is not prepared in ``data_dir`` raises
`DatasetNotAvailableError` explaining how to prepare it on a machine with network access.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

if "tensorflow" not in sys.modules:  # loaded standalone (the package __init__ normally does this)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ..config import ConfigError, DataConfig, validate_data_config  # noqa: E402

AUTOTUNE = tf.data.AUTOTUNE

#: Input sizes at or above this use the paper's ImageNet preprocessing (shorter side 256/224 * size).
LARGE_IMAGE_SIZE = 128
#: "auto" caching keeps a split in memory when its estimated size is at most this many bytes.
AUTO_CACHE_BYTES = 1 << 30
#: File extensions read from image folders.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

SPLITS = ("train", "holdout", "test")


class DatasetNotAvailableError(RuntimeError):
    """The requested data is not on this machine (not prepared, missing folder, unusable contents)."""


class UnknownDatasetError(DatasetNotAvailableError, ValueError):
    """The dataset name is neither "digits", "folder" nor a known TFDS dataset."""


# ---------------------------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------------------------


def resize_scale(image_size: int) -> int:
    """Shorter-side size before cropping, for the paper's ImageNet pipeline (256 at 224)."""
    return int(round(image_size * 256 / 224))


def _to_unit(image: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; float inputs are assumed to be in [0, 1] already."""
    if image.dtype == tf.uint8:
        return tf.cast(image, tf.float32) / 255.0
    return tf.cast(image, tf.float32)


def _normalize(image01: tf.Tensor) -> tf.Tensor:
    return image01 * 2.0 - 1.0


def _resize_shorter_side(image: tf.Tensor, size: int) -> tf.Tensor:
    shape = tf.shape(image)
    h = tf.cast(shape[0], tf.float32)
    w = tf.cast(shape[1], tf.float32)
    scale = tf.cast(size, tf.float32) / tf.minimum(h, w)
    new_h = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), size)
    new_w = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), size)
    return tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear", antialias=True)


def _to_uint8(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)


@dataclass(frozen=True)
class _Preprocessing:
    """Deterministic `base` (before caching), then `evaluate` or `augment` (after the cache)."""

    image_size: int
    channels: int
    kind: str  # "digits" | "small" | "large"
    native_hw: Optional[Tuple[int, int]] = None  # static source size if known
    flip: bool = True

    @property
    def pad(self) -> int:
        return max(1, self.image_size // 8)

    def base(self, image: tf.Tensor) -> tf.Tensor:
        """Resize (uint8 stays uint8) to the size that is cached: SxS, or shorter side = scale (large)."""
        s = self.image_size
        if self.kind == "digits":
            return image
        if self.kind == "large":
            image = _resize_shorter_side(tf.cast(image, tf.float32), resize_scale(s))
            return _to_uint8(image)
        if self.native_hw == (s, s):
            return image
        image = tf.image.resize(tf.cast(image, tf.float32), (s, s), method="bilinear", antialias=True)
        return _to_uint8(image)

    def evaluate(self, image: tf.Tensor) -> tf.Tensor:
        s = self.image_size
        if self.kind == "large":
            image = tf.image.resize_with_crop_or_pad(image, s, s)  # centre crop
        image = _normalize(_to_unit(image))
        return tf.ensure_shape(image, (s, s, self.channels))

    def augment(self, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        s = self.image_size
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
        image = _to_unit(image)
        if self.kind in ("digits", "small"):
            p = self.pad
            image = tf.pad(image, [[p, p], [p, p], [0, 0]])  # zero = background for digits, black otherwise
        image = tf.image.stateless_random_crop(image, (s, s, self.channels), seed=seeds[0])
        if self.flip and self.kind != "digits":
            image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
        return tf.ensure_shape(_normalize(image), (s, s, self.channels))

    def base_bytes(self, n: int) -> int:
        """Estimated bytes of `n` images after `base` (for auto caching)."""
        s = self.image_size
        if self.kind == "digits":
            return n * s * s * self.channels * 4
        if self.kind == "large":
            t = resize_scale(s)
            return int(n * t * t * 4 / 3 * self.channels)
        return n * s * s * self.channels

    def eval_bytes(self, n: int) -> int:
        return n * self.image_size * self.image_size * self.channels * 4


# ---------------------------------------------------------------------------------------------------------
# Sources: unbatched (image, label) streams of each split in a fixed order
# ---------------------------------------------------------------------------------------------------------


class _Source:
    name: str
    num_classes: int
    class_names: Tuple[str, ...]
    prep: _Preprocessing
    sizes: Dict[str, int]
    description: str = ""
    indices: Optional[Dict[str, np.ndarray]] = None

    def stream(self, split: str, shuffle_files_seed: Optional[int] = None, reshuffle: bool = False) -> tf.data.Dataset:
        """(image after `prep.base`, int32 label), unbatched; files read in a seeded order if a seed is given."""
        raise NotImplementedError


class _ArraySource(_Source):
    """Splits held in memory as numpy arrays (digits)."""

    def __init__(
        self, name, arrays: Dict[str, Tuple[np.ndarray, np.ndarray]], num_classes, class_names, prep, description=""
    ):
        self.name = name
        self.arrays = arrays
        self.num_classes = num_classes
        self.class_names = tuple(class_names)
        self.prep = prep
        self.sizes = {k: int(len(v[1])) for k, v in arrays.items()}
        self.description = description

    def stream(self, split, shuffle_files_seed=None, reshuffle=False):
        x, y = self.arrays[split]
        return tf.data.Dataset.from_tensor_slices((x, y))


class _FileSource(_Source):
    """Splits given as lists of image files (image folders)."""

    def __init__(
        self, name, files: Dict[str, Tuple[List[str], np.ndarray]], num_classes, class_names, prep, description=""
    ):
        self.name = name
        self.files = files
        self.num_classes = num_classes
        self.class_names = tuple(class_names)
        self.prep = prep
        self.sizes = {k: int(len(v[1])) for k, v in files.items()}
        self.description = description

    def stream(self, split, shuffle_files_seed=None, reshuffle=False):
        paths, labels = self.files[split]
        ds = tf.data.Dataset.from_tensor_slices((np.asarray(paths, dtype=object).astype(str), labels))
        channels = self.prep.channels
        prep = self.prep

        def load(path, label):
            image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
            image = tf.ensure_shape(image, (None, None, channels))
            return prep.base(image), label

        return ds.map(load, num_parallel_calls=AUTOTUNE)


class _TfdsSource(_Source):
    """Splits read from a prepared TFDS dataset (train / holdout sliced from TFDS ``train``)."""

    def __init__(
        self, name, builder, split_specs: Dict[str, str], sizes, num_classes, class_names, prep, keys, description=""
    ):
        self.name = name
        self.builder = builder
        self.split_specs = split_specs
        self.sizes = sizes
        self.num_classes = num_classes
        self.class_names = tuple(class_names)
        self.prep = prep
        self.keys = keys
        self.description = description

    def stream(self, split, shuffle_files_seed=None, reshuffle=False):
        import tensorflow_datasets as tfds

        read_config = tfds.ReadConfig(
            try_autocache=False,
            shuffle_seed=shuffle_files_seed,
            shuffle_reshuffle_each_iteration=reshuffle if shuffle_files_seed is not None else None,
        )
        ds = self.builder.as_dataset(
            split=self.split_specs[split],
            shuffle_files=shuffle_files_seed is not None,
            read_config=read_config,
        )
        image_key, label_key = self.keys
        prep = self.prep

        def select(example):
            return prep.base(example[image_key]), tf.cast(example[label_key], tf.int32)

        return ds.map(select, num_parallel_calls=AUTOTUNE)


# ---------------------------------------------------------------------------------------------------------
# The Dataset object
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """Batched `train` / `holdout` / `test` pipelines plus what the model and the search need to know.

    Fields: `name`, `num_classes`, `input_shape` (H, W, C), `train_size`, `holdout_size`, `test_size`,
    `batch_size`, `class_names`, `config`, `description`, `normalization`, `split_indices` (digits /
    folder: each split's indices into the full dataset; None for TFDS), and the pipelines:

    - `train`: batches of (float32 [B, H, W, C], int32 [B]); a seeded shuffle reshuffled on every pass,
      seeded augmentation. The k-th pass over `train` is the same in every run with the same config
      (each new iterator, including a partial one such as ``next(iter(ds.train))``, counts as a pass).
    - `holdout`, `test`: evaluation preprocessing, fixed order, cached in memory when small.

    Methods: `examples(split)` (unbatched, unshuffled), `eval_batches(split)`, `numpy_samples(split, n)`,
    `recalibration_batches(num_batches)`, `size(split)`, `steps_per_epoch`, `summary()`.
    """

    name: str
    num_classes: int
    input_shape: Tuple[int, int, int]
    train_size: int
    holdout_size: int
    test_size: int
    batch_size: int
    class_names: Tuple[str, ...]
    config: DataConfig
    train: tf.data.Dataset = field(repr=False)
    holdout: tf.data.Dataset = field(repr=False)
    test: tf.data.Dataset = field(repr=False)
    description: str = ""
    normalization: str = "pixel / 127.5 - 1 (float32 in [-1, 1])"
    #: digits / folder: indices of each split into the full dataset (sklearn order / sorted file list).
    split_indices: Optional[Dict[str, np.ndarray]] = field(default=None, repr=False)
    _source: _Source = field(default=None, repr=False)

    # ---- sizes ----
    def size(self, split: str) -> int:
        return {"train": self.train_size, "holdout": self.holdout_size, "test": self.test_size}[_check_split(split)]

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch of `train` (the last partial batch is dropped when there is a full batch)."""
        b = self.batch_size
        return self.train_size // b if self.train_size >= b else 1

    # ---- other views of the splits ----
    def examples(self, split: str = "test") -> tf.data.Dataset:
        """Unbatched, unshuffled, unaugmented (evaluation-preprocessed) examples of `split`, fixed order.

        ``examples("train")`` is the unshuffled training split (e.g. for BatchNorm statistics).
        """
        split = _check_split(split)
        return self._source.stream(split).map(
            lambda x, y: (self._source.prep.evaluate(x), y), num_parallel_calls=AUTOTUNE
        )

    def eval_batches(self, split: str = "test", batch_size: Optional[int] = None) -> tf.data.Dataset:
        """`examples(split)` batched (``train`` here is unshuffled and unaugmented)."""
        bs = _positive_int(batch_size or self.batch_size, "batch_size")
        return self.examples(split).batch(bs).prefetch(AUTOTUNE)

    def numpy_samples(self, split: str = "test", n: Optional[int] = 256) -> Tuple[np.ndarray, np.ndarray]:
        """The first `n` examples of `split` (fixed order, evaluation preprocessing) as numpy arrays.

        Returns ``(images float32 [n, H, W, C], labels int32 [n])``; fewer if the split is smaller;
        ``n=None`` returns the whole split.
        """
        split = _check_split(split)
        size = self.size(split)
        n = size if n is None else min(_nonnegative_int(n, "n"), size)
        if n == 0:
            return np.zeros((0,) + tuple(self.input_shape), np.float32), np.zeros((0,), np.int32)
        images, labels = [], []
        for x, y in self.examples(split).take(n).batch(min(n, 1024)):
            images.append(x.numpy())
            labels.append(y.numpy())
        return np.concatenate(images).astype(np.float32), np.concatenate(labels).astype(np.int32)

    def recalibration_batches(
        self, num_batches: int, batch_size: Optional[int] = None, seed: Optional[int] = None, augment: bool = False
    ) -> tf.data.Dataset:
        """A fixed, seeded set of `num_batches` training batches, e.g. to recompute BatchNorm statistics.

        Every iteration of the returned dataset yields the same batches (same images, same order): a seeded
        shuffle of the training split (no reshuffling), evaluation preprocessing unless `augment` (then a
        fixed seeded augmentation). Fewer batches if the training split is too small. Kept in memory when
        small.
        """
        num_batches = _positive_int(num_batches, "num_batches")
        bs = _positive_int(batch_size or self.batch_size, "batch_size")
        seed = self.config.seed if seed is None else int(seed)
        src = self._source
        n = min(num_batches * bs, self.train_size)
        ds = src.stream("train", shuffle_files_seed=seed, reshuffle=False)
        buffer = min(self.train_size, max(self.config.shuffle_buffer, bs))
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)
        ds = ds.take(n)
        if augment:
            rnd = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=False).batch(2)
            ds = tf.data.Dataset.zip((ds, rnd)).map(
                lambda xy, s: (src.prep.augment(xy[0], s), xy[1]), num_parallel_calls=AUTOTUNE
            )
        else:
            ds = ds.map(lambda x, y: (src.prep.evaluate(x), y), num_parallel_calls=AUTOTUNE)
        ds = ds.batch(bs)
        if _should_cache(self.config.cache, src.prep.eval_bytes(n)):
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


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, received {split!r}")
    return split


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, received {value!r}")
    return int(value)


def _nonnegative_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, received {value!r}")
    return int(value)


def _should_cache(mode: str, nbytes: int) -> bool:
    if mode == "memory":
        return True
    if mode == "none":
        return False
    return nbytes <= AUTO_CACHE_BYTES


def _build(source: _Source, cfg: DataConfig) -> Dataset:
    prep = source.prep
    bs = cfg.batch_size
    sizes = source.sizes
    for split in SPLITS:
        if sizes[split] < 1:
            raise DatasetNotAvailableError(
                f"Dataset {source.name!r}: the {split} split is empty (sizes: {sizes}); "
                f"use more data or change data.holdout_fraction / data.test_fraction"
            )

    # Training: cache after the deterministic base resize, then seeded shuffle (reshuffled every epoch),
    # seeded stateless augmentation, batch, prefetch.
    n_train = sizes["train"]
    train = source.stream("train", shuffle_files_seed=cfg.seed, reshuffle=True)
    if not isinstance(source, _ArraySource) and _should_cache(cfg.cache, prep.base_bytes(n_train)):
        train = train.cache()
    train = train.shuffle(min(n_train, cfg.shuffle_buffer), seed=cfg.seed, reshuffle_each_iteration=True)
    if cfg.augment:
        rnd = tf.data.Dataset.random(seed=cfg.seed, rerandomize_each_iteration=True).batch(2)
        train = tf.data.Dataset.zip((train, rnd)).map(
            lambda xy, s: (prep.augment(xy[0], s), xy[1]), num_parallel_calls=AUTOTUNE
        )
    else:
        train = train.map(lambda x, y: (prep.evaluate(x), y), num_parallel_calls=AUTOTUNE)
    train = train.batch(bs, drop_remainder=n_train >= bs).prefetch(AUTOTUNE)
    if isinstance(source, _ArraySource):
        # Multi-worker training (tf.distribute) shards the global batches by element: every worker builds the
        # same seeded pipeline and keeps its share. (TFDS: AUTO shards by file; image folders: by element.)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train = train.with_options(options)

    def evaluation(split: str) -> tf.data.Dataset:
        ds = source.stream(split).map(lambda x, y: (prep.evaluate(x), y), num_parallel_calls=AUTOTUNE)
        if not isinstance(source, _ArraySource) and _should_cache(cfg.cache, prep.eval_bytes(sizes[split])):
            ds = ds.cache()
        return ds.batch(bs).prefetch(AUTOTUNE)

    return Dataset(
        name=source.name,
        num_classes=int(source.num_classes),
        input_shape=(cfg.image_size, cfg.image_size, prep.channels),
        train_size=sizes["train"],
        holdout_size=sizes["holdout"],
        test_size=sizes["test"],
        batch_size=bs,
        class_names=tuple(source.class_names),
        config=cfg,
        train=train,
        holdout=evaluation("holdout"),
        test=evaluation("test"),
        description=source.description,
        split_indices=source.indices,
        _source=source,
    )


# ---------------------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------------------


def stratified_split(labels: Sequence[int], fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split of indices into (rest, taken) with ``round(fraction * n)`` taken (>= 1).

    Each class contributes in proportion to its size (largest-remainder rounding); every class keeps at
    least one example in `rest` when it can. Both index arrays are sorted.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if n < 2:
        raise DatasetNotAvailableError(f"Cannot split {n} example(s): need at least 2")
    n_take = min(max(1, int(round(fraction * n))), n - 1)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    ideal = counts * n_take / n
    alloc = np.floor(ideal).astype(int)
    # Largest remainders get the leftover picks; ties broken by a seeded permutation.
    order = sorted(range(len(classes)), key=lambda i: (-(ideal[i] - alloc[i]), rng.random()))
    leftover = n_take - int(alloc.sum())
    # Keep one example per class in `rest` when possible; only then empty tiny classes.
    for keep in (1, 0):
        for i in order:
            if leftover <= 0:
                break
            extra = min(int(counts[i] - keep - alloc[i]), leftover, 1 if keep else leftover)
            if extra > 0:
                alloc[i] += extra
                leftover -= extra
        while keep and leftover > 0 and any(alloc[i] < counts[i] - 1 for i in order):
            for i in order:
                if leftover > 0 and alloc[i] < counts[i] - 1:
                    alloc[i] += 1
                    leftover -= 1
    taken = []
    for c, k in zip(classes, alloc):
        idx = np.flatnonzero(labels == c)
        taken.extend(rng.permutation(idx)[:k].tolist())
    taken = np.sort(np.asarray(taken, dtype=np.int64))
    rest = np.setdiff1d(np.arange(n, dtype=np.int64), taken)
    return rest, taken


def _three_way_split(labels: np.ndarray, cfg: DataConfig) -> Dict[str, np.ndarray]:
    """test = test_fraction of all; holdout = holdout_fraction of the rest; train = the remainder."""
    rest, test = stratified_split(labels, cfg.test_fraction, cfg.split_seed)
    train_rel, holdout_rel = stratified_split(labels[rest], cfg.holdout_fraction, cfg.split_seed + 1)
    return {"train": rest[train_rel], "holdout": rest[holdout_rel], "test": test}


# ---------------------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------------------


def _digits_source(cfg: DataConfig) -> _Source:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[..., None]  # (1797, 8, 8, 1) in [0, 1]
    labels = bunch.target.astype(np.int32)
    s = cfg.image_size
    resized = tf.image.resize(images, (s, s), method="bilinear").numpy()
    resized = np.clip(resized, 0.0, 1.0).astype(np.float32)
    parts = _three_way_split(labels, cfg)
    arrays = {k: (resized[idx], labels[idx]) for k, idx in parts.items()}
    prep = _Preprocessing(image_size=s, channels=1, kind="digits", native_hw=(s, s), flip=False)
    source = _ArraySource(
        "digits",
        arrays,
        num_classes=10,
        class_names=[str(i) for i in range(10)],
        prep=prep,
        description=f"scikit-learn digits: 1,797 8x8 images resized to {s}x{s}x1",
    )
    source.indices = parts
    return source


# ---------------------------------------------------------------------------------------------------------
# image folder
# ---------------------------------------------------------------------------------------------------------


def _folder_source(cfg: DataConfig) -> _Source:
    root = cfg.data_dir
    if not root:
        raise ConfigError(
            "data.data_dir: received None; data.name='folder' needs data.data_dir set to a directory with one "
            "sub-folder of images per class"
        )
    root = os.path.expanduser(str(root))
    if not os.path.isdir(root):
        raise DatasetNotAvailableError(
            f"Image folder data.data_dir={root!r} does not exist or is not a directory "
            f"(expected one sub-folder of images per class)"
        )
    class_dirs = sorted(d for d in os.listdir(root) if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))
    files: List[str] = []
    labels: List[int] = []
    empty = []
    for label, d in enumerate(class_dirs):
        found = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, d)):
            dirnames[:] = sorted(x for x in dirnames if not x.startswith("."))
            for f in sorted(filenames):
                if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."):
                    found.append(os.path.join(dirpath, f))
        if not found:
            empty.append(d)
        files.extend(found)
        labels.extend([label] * len(found))
    if not class_dirs or not files:
        raise DatasetNotAvailableError(
            f"Image folder {root!r} has no images: expected one sub-folder per class containing "
            f"{'/'.join(IMAGE_EXTENSIONS)} files"
        )
    if empty:
        raise DatasetNotAvailableError(f"Image folder {root!r}: class sub-folders without images: {empty}")
    if len(class_dirs) < 2:
        raise DatasetNotAvailableError(
            f"Image folder {root!r} has {len(class_dirs)} class sub-folder ({class_dirs}); need at least 2 classes"
        )
    labels_arr = np.asarray(labels, dtype=np.int32)
    if len(files) < 3:
        raise DatasetNotAvailableError(f"Image folder {root!r} has {len(files)} images; need at least 3")
    parts = _three_way_split(labels_arr, cfg)
    split_files = {k: ([files[i] for i in idx], labels_arr[idx]) for k, idx in parts.items()}
    kind = "large" if cfg.image_size >= LARGE_IMAGE_SIZE else "small"
    prep = _Preprocessing(image_size=cfg.image_size, channels=3, kind=kind, native_hw=None, flip=True)
    source = _FileSource(
        "folder",
        split_files,
        num_classes=len(class_dirs),
        class_names=class_dirs,
        prep=prep,
        description=f"image folder {root} ({len(files)} images, {len(class_dirs)} classes)",
    )
    source.indices = parts
    return source


# ---------------------------------------------------------------------------------------------------------
# TFDS
# ---------------------------------------------------------------------------------------------------------

_VERSION_RE = re.compile(r"^[\d*]+(\.[\d*]+){0,2}$")


def _prepare_instructions(name: str, data_dir_arg: str, builder) -> str:
    base = name.split(":")[0].split("/")[0]
    manual = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
    if manual:
        manual_dir = os.path.join(data_dir_arg, "downloads", "manual")
        detail = " ".join(str(manual).split())
        extra = ""
        if base == "imagenet2012":
            extra = " (ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from https://image-net.org)"
        return (
            f"{base} needs a manual download: put the source files{extra} into {manual_dir}/ "
            f"({detail}), then run `tfds build {name} --data_dir {data_dir_arg} "
            f"--manual_dir {manual_dir}`"
        )
    return (
        f"prepare it on a machine with network access with `tfds build {name} --data_dir {data_dir_arg}` "
        f"(or `python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}', "
        f"data_dir='{data_dir_arg}').download_and_prepare()\"`), then copy the resulting {base}/ directory "
        f"to {os.path.join(data_dir_arg, base)} on this machine"
    )


def _tfds_source(cfg: DataConfig) -> _Source:
    name = cfg.name.strip()
    head = name.split("/")[0]
    if ":" in head and not _VERSION_RE.match(head.split(":", 1)[1]):
        raise UnknownDatasetError(
            f"data.name={name!r}: namespaced/community TFDS datasets ({head.split(':')[0]}:...) are not "
            f"supported (they need network access); use 'digits', 'folder' or a prepared TFDS dataset"
        )
    try:
        import tensorflow_datasets as tfds
        from tensorflow_datasets.core import registered
    except Exception as exc:  # pragma: no cover - environment problem
        raise DatasetNotAvailableError(
            f"data.name={name!r} needs tensorflow_datasets, which cannot be imported here: "
            f"{type(exc).__name__}: {exc}"
        ) from None

    data_dir_arg = os.path.expanduser(cfg.data_dir) if cfg.data_dir else None
    try:
        builder = tfds.builder(name, data_dir=data_dir_arg)  # never downloads; try_gcs defaults to False
    except registered.DatasetNotFoundError:
        try:
            known = tfds.list_builders(with_community_datasets=False)
        except Exception:  # pragma: no cover
            known = []
        close = difflib.get_close_matches(head.split(":")[0].lower(), known, n=5, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownDatasetError(
            f"Unknown dataset data.name={name!r}: not 'digits', 'folder' or a TFDS dataset name "
            f"(e.g. cifar10, imagenette, imagenet2012).{hint}"
        ) from None
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        first = " ".join(lines[:3])[:400] if lines else type(exc).__name__
        raise DatasetNotAvailableError(f"Cannot open TFDS dataset data.name={name!r}: {first}") from None

    root = data_dir_arg or os.path.dirname(os.path.dirname(os.path.dirname(str(builder.data_dir))))
    try:
        root = str(getattr(builder, "_data_dir_root", root))
    except Exception:  # pragma: no cover
        pass
    info_file = os.path.join(str(builder.data_dir), "dataset_info.json")
    if not (tf.io.gfile.exists(info_file) and builder.is_prepared()):
        base = head.split(":")[0]
        present = []
        dataset_dir = os.path.join(root, base)
        if tf.io.gfile.isdir(dataset_dir):
            present = sorted(tf.io.gfile.listdir(dataset_dir))
        have = f" (found only {present} under {dataset_dir})" if present else ""
        raise DatasetNotAvailableError(
            f"TFDS dataset {name!r} (version {builder.version}) is not prepared in data_dir {root!r}: "
            f"looked for {builder.data_dir}{have}. Datasets are never downloaded here; "
            + _prepare_instructions(name, root, builder)
            + ", then set data.data_dir to that data_dir."
        )

    info = builder.info
    keys = info.supervised_keys
    if not keys or len(keys) != 2 or not all(isinstance(k, str) for k in keys):
        raise DatasetNotAvailableError(
            f"TFDS dataset {name!r} has no (image, label) supervised keys (supervised_keys={keys!r}); "
            f"only image classification datasets are supported"
        )
    image_key, label_key = keys
    image_feature = info.features[image_key]
    label_feature = info.features[label_key]
    shape = tuple(getattr(image_feature, "shape", ()) or ())
    if len(shape) != 3 or shape[-1] not in (1, 3):
        raise DatasetNotAvailableError(
            f"TFDS dataset {name!r}: feature {image_key!r} has shape {shape}; expected images (H, W, 1 or 3)"
        )
    num_classes = getattr(label_feature, "num_classes", None)
    if not num_classes or num_classes < 2:
        raise DatasetNotAvailableError(
            f"TFDS dataset {name!r}: label feature {label_key!r} is not a class label with >= 2 classes"
        )
    splits = info.splits
    if "train" not in splits:
        raise DatasetNotAvailableError(f"TFDS dataset {name!r} has no 'train' split (splits: {list(splits.keys())})")
    test_split = "test" if "test" in splits else "validation" if "validation" in splits else None
    if test_split is None:
        raise DatasetNotAvailableError(
            f"TFDS dataset {name!r} has neither a 'test' nor a 'validation' split (splits: {list(splits.keys())})"
        )
    n_train_all = int(splits["train"].num_examples)
    if n_train_all < 2:
        raise DatasetNotAvailableError(f"TFDS dataset {name!r}: the train split has {n_train_all} examples")
    n_holdout = min(max(1, int(round(cfg.holdout_fraction * n_train_all))), n_train_all - 1)
    n_train = n_train_all - n_holdout
    specs = {"train": f"train[:{n_train}]", "holdout": f"train[{n_train}:]", "test": test_split}
    sizes = {"train": n_train, "holdout": n_holdout, "test": int(splits[test_split].num_examples)}
    native = shape[:2] if all(isinstance(d, int) for d in shape[:2]) else None
    kind = "large" if cfg.image_size >= LARGE_IMAGE_SIZE else "small"
    prep = _Preprocessing(image_size=cfg.image_size, channels=int(shape[-1]), kind=kind, native_hw=native, flip=True)
    names = list(getattr(label_feature, "names", []) or [str(i) for i in range(num_classes)])
    return _TfdsSource(
        name,
        builder,
        specs,
        sizes,
        num_classes=int(num_classes),
        class_names=names,
        prep=prep,
        keys=(image_key, label_key),
        description=(
            f"TFDS {name} {builder.version} from {root}: train/holdout = {specs['train']}/{specs['holdout']}, "
            f"test = {test_split}"
        ),
    )


# ---------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------


def load_dataset(cfg) -> Dataset:
    """Build the `Dataset` described by `cfg` (a `DataConfig`, or a `RunConfig` whose ``data`` is used).

    ``cfg.name``: ``"digits"`` (bundled, offline), ``"folder"`` (``cfg.data_dir`` holds one sub-folder per
    class), or a TFDS name (``"cifar10"``, ``"imagenette"``, ``"imagenet2012"``, ...) prepared in
    ``cfg.data_dir``.

    # Raises
        ConfigError (ValueError): bad config values (names the key and the received value).
        DatasetNotAvailableError: data not on this machine (TFDS not prepared, folder missing/empty, < 2
            classes); `UnknownDatasetError` for unknown names. Nothing is ever downloaded.
    """
    if not isinstance(cfg, DataConfig) and isinstance(getattr(cfg, "data", None), DataConfig):
        cfg = cfg.data
    if not isinstance(cfg, DataConfig):
        raise TypeError(f"load_dataset expects a DataConfig (or RunConfig), received {type(cfg).__name__}")
    validate_data_config(cfg)
    key = cfg.name.strip().lower()
    if key == "digits":
        source = _digits_source(cfg)
    elif key == "folder":
        source = _folder_source(cfg)
    else:
        source = _tfds_source(cfg)
    return _build(source, cfg)
