"""Prepared TensorFlow Datasets (TFDS): ``data.name`` is a TFDS name (``cifar10``, ``imagenette``,
``imagenet2012``, ...) prepared in ``data.data_dir``. Nothing is downloaded: a dataset that is not prepared
raises `DatasetNotAvailableError` explaining how to prepare it on a machine with network access.

Splits: train / holdout are the head / tail of TFDS ``train`` (``train[:n]`` / ``train[n:]``, the holdout
being ``data.holdout_fraction`` of it); test is TFDS ``test``, else ``validation``.

Shuffling. TFDS files can only be read front to back, so a training epoch that is not held in memory (see
`Dataset`) is shuffled in three layers, all seeded from (``data.seed``, epoch): the shard files are read in a
per-epoch random order, `INTERLEAVE_FILES` of them at a time one record each (interleave), and the records are
shuffled within consecutive windows of ``data.shuffle_buffer`` serialized records. TFDS also shuffles
records across shards when it prepares a dataset (by a hash of each key), so the class order is already
mixed inside every file. What remains: two records more than a window apart in the interleaved order never
swap, and a single-shard dataset keeps its window boundaries from epoch to epoch.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import Dict, Tuple

import numpy as np
import tensorflow as tf

from ..choices import DATASETS
from ..config import DataConfig
from .errors import DatasetNotAvailableError, UnknownDatasetError
from .preprocessing import Preprocessing, kind_for
from .source import Source

#: Shard files read at the same time (one record from each in turn) in a streamed training epoch.
INTERLEAVE_FILES = 16
#: A streamed recalibration sample of n examples is drawn uniformly from whole shards holding >= this x n records.
SAMPLE_SHARD_FACTOR = 4


def _shuffle_key(key: tf.Tensor, purpose: int) -> tf.Tensor:
    return tf.random.experimental.stateless_fold_in(key, tf.constant(purpose, tf.int64))


class TfdsSource(Source):
    """Splits read from a prepared TFDS dataset; stream-only (no random access), see the module docstring."""

    def __init__(self, name, builder, split_specs: Dict[str, str], sizes, num_classes, class_names,
                 prep: Preprocessing, keys: Tuple[str, str], description=""):
        self.name = name
        self.builder = builder
        self.split_specs = split_specs
        self.sizes = sizes
        self.num_classes = num_classes
        self.class_names = tuple(class_names)
        self.prep = prep
        self.keys = keys
        self.description = description

    def stream(self, split):
        import tensorflow_datasets as tfds

        ds = self.builder.as_dataset(split=self.split_specs[split], shuffle_files=False,
                                     read_config=tfds.ReadConfig(try_autocache=False))
        image_key, label_key = self.keys
        prep = self.prep
        return ds.map(lambda ex: (prep.base(ex[image_key]), tf.cast(ex[label_key], tf.int32)),
                      num_parallel_calls=tf.data.AUTOTUNE)

    # ---- reading shard files directly (for shuffled epochs and samples) ----
    def _instructions(self, split):
        instructions = self.builder.info.splits[self.split_specs[split]].file_instructions
        paths = np.asarray([os.fspath(i.filename) for i in instructions], dtype=str)
        skips = np.asarray([i.skip for i in instructions], dtype=np.int64)
        takes = np.asarray([i.take for i in instructions], dtype=np.int64)
        return paths, skips, takes

    def _records(self, path, skip, take):
        from tensorflow_datasets.core import file_adapters

        fmt = self.builder.info.file_format or file_adapters.FileFormat.TFRECORD
        if fmt == file_adapters.FileFormat.TFRECORD:
            ds = tf.data.TFRecordDataset(path, buffer_size=8 << 20)
        else:  # other formats with tf.data support, as TFDS itself reads them
            ds = file_adapters.ADAPTER_FOR_FORMAT[fmt].make_tf_data(path)
        return ds.skip(skip).take(take)

    def _decode(self, serialized):
        example = self.builder.info.features.deserialize_example(serialized)
        image_key, label_key = self.keys
        return self.prep.base(example[image_key]), tf.cast(example[label_key], tf.int32)

    def _read(self, paths, skips, takes, order):
        """Records of the file instructions `order` (indices), one record from each open file in turn."""
        files = tf.data.Dataset.from_tensor_slices(order).map(
            lambda i: (tf.gather(paths, i), tf.gather(skips, i), tf.gather(takes, i)))
        return files.interleave(self._records, cycle_length=max(1, min(INTERLEAVE_FILES, len(skips))),
                                block_length=1, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def epoch_stream(self, split, key, window):
        paths, skips, takes = self._instructions(split)
        order = tf.random.experimental.stateless_shuffle(tf.range(len(paths), dtype=tf.int64),
                                                         seed=_shuffle_key(key, 0))
        records = self._read(tf.constant(paths), tf.constant(skips), tf.constant(takes), order)
        if window > 1:
            window_key = _shuffle_key(key, 1)

            def shuffle_window(w, batch):
                perm = tf.random.experimental.stateless_shuffle(
                    tf.range(tf.shape(batch, out_type=tf.int64)[0]),
                    seed=tf.random.experimental.stateless_fold_in(window_key, w))
                return tf.gather(batch, perm)

            records = records.batch(window).enumerate().map(shuffle_window).unbatch()
        return records.map(self._decode, num_parallel_calls=tf.data.AUTOTUNE)

    def sample_stream(self, split, n, seed):
        paths, skips, takes = self._instructions(split)
        rng = np.random.default_rng([int(seed), 0x5A3])
        chosen, total = [], 0
        for i in rng.permutation(len(paths)):  # whole shards in random order until they hold enough records
            chosen.append(int(i))
            total += int(takes[i])
            if total >= SAMPLE_SHARD_FACTOR * n:
                break
        n = min(n, total)
        keep = np.zeros(total, bool)
        keep[rng.choice(total, n, replace=False)] = True
        keep_t = tf.constant(keep)
        records = self._read(tf.constant(paths), tf.constant(skips), tf.constant(takes),
                             tf.constant(chosen, tf.int64))
        records = records.enumerate().filter(lambda k, r: tf.gather(keep_t, k)).map(lambda k, r: r)
        perm = tf.constant(rng.permutation(n), tf.int64)
        records = records.batch(max(n, 1)).map(lambda b: tf.gather(b, perm)).unbatch()
        return records.map(self._decode, num_parallel_calls=tf.data.AUTOTUNE)


_VERSION_RE = re.compile(r"^[\d*]+(\.[\d*]+){0,2}$")


def prepare_instructions(name: str, data_dir_arg: str, builder) -> str:
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


def tfds_source(cfg: DataConfig) -> "TfdsSource":
    """The `TfdsSource` of the prepared TFDS dataset ``cfg.name`` in ``cfg.data_dir`` (never downloads)."""
    name = cfg.name.strip()
    head = name.split("/")[0]
    if ":" in head and not _VERSION_RE.match(head.split(":", 1)[1]):
        raise UnknownDatasetError(
            f"data.name={name!r}: namespaced/community TFDS datasets ({head.split(':')[0]}:...) are not "
            f"supported (they need network access); use a built-in source ({', '.join(DATASETS)}) or a prepared "
            f"TFDS dataset"
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
            f"Unknown dataset data.name={name!r}: not a built-in source ({', '.join(DATASETS)}) nor a TFDS "
            f"dataset name (e.g. cifar10, imagenette, imagenet2012).{hint}"
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
            + prepare_instructions(name, root, builder)
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
    kind = kind_for(cfg.image_size)
    prep = Preprocessing(image_size=cfg.image_size, channels=int(shape[-1]), kind=kind, native_hw=native, flip=True)
    names = list(getattr(label_feature, "names", []) or [str(i) for i in range(num_classes)])
    return TfdsSource(
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
