"""IDX data sets (the MNIST file format): Fashion-MNIST, MNIST, and any directory with the four standard files.

``data.name`` selects the data set, ``data.data_dir`` the directory that holds
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte`` (each plain or gzipped, ``.gz``):

- ``fashion_mnist``: Zalando's Fashion-MNIST; default directory ``/usr/share/datasets/fashion-mnist``, where
  Debian's ``dataset-fashion-mnist`` package installs it;
- ``mnist``: LeCun's MNIST digits; Debian ships no MNIST package, so ``data.data_dir`` is required;
- ``idx``: any data set in this layout (unsigned-byte images and labels); ``data.data_dir`` is required.

The holdout split is a seeded stratified share (``data.holdout_fraction``, seeded by ``data.split_seed``) of
the official training file; the test split is the official test file. Images keep their single channel
and are resized once, in memory, only if ``data.image_size`` differs from the native size (28 for both
MNISTs); training augmentation is the ``small`` pipeline (pad + random crop, plus random horizontal flips
for Fashion-MNIST only: digits and unknown IDX data are not mirror-symmetric).

A prepared TFDS copy (``data_dir/<name>/<version>/``, from ``tfds build mnist``) is still read through TFDS
when ``data.data_dir`` holds no IDX files.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from ..config import ConfigError, DataConfig
from .arrays import ArraySource
from .errors import CorruptDatasetError, DatasetNotAvailableError
from .preprocessing import Preprocessing
from .splits import holdout_split

LABELS_MAGIC = 0x00000801  #: unsigned bytes, 1 dimension (count)
IMAGES_MAGIC = 0x00000803  #: unsigned bytes, 3 dimensions (count, rows, columns)
#: role -> standard file name (also read with a ``.gz`` suffix)
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class IdxCatalogEntry:
    """What is known about a named IDX data set: where it lives by default and how to get it."""

    title: str
    default_dir: Optional[str]
    publisher_url: Optional[str]
    debian_package: Optional[str] = None
    class_names: Optional[Tuple[str, ...]] = None
    flip: bool = False


IDX_DATASETS: Dict[str, IdxCatalogEntry] = {
    "fashion_mnist": IdxCatalogEntry(
        "Fashion-MNIST", "/usr/share/datasets/fashion-mnist", "https://github.com/zalandoresearch/fashion-mnist",
        debian_package="dataset-fashion-mnist",
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                     "Ankle boot"),
        flip=True,
    ),
    "mnist": IdxCatalogEntry("MNIST", None, "http://yann.lecun.com/exdb/mnist/",
                             class_names=tuple(str(i) for i in range(10))),
    "idx": IdxCatalogEntry("IDX", None, None),
}


def read_idx(path: str, expected_magic: Optional[int] = None) -> np.ndarray:
    """Read one IDX file (plain or gzip-compressed, detected from its content) into a numpy array.

    # Arguments
        path: the file.
        expected_magic: e.g. `IMAGES_MAGIC` or `LABELS_MAGIC`; None accepts any valid IDX header.

    # Returns
        The array with the header's dimensions (read-only view of the file's bytes).

    # Raises
        CorruptDatasetError: gzip damage, wrong magic number (value read and value expected), or a data size
            that does not match the header's dimensions (truncated or trailing bytes).
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise DatasetNotAvailableError(f"Cannot read IDX file {path}: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise CorruptDatasetError(f"IDX file {path} is a damaged gzip file ({exc}); download it again") from None
    if len(raw) < 4:
        raise CorruptDatasetError(f"IDX file {path} holds {len(raw)} bytes: too short for an IDX header (4+ bytes)")
    magic = int.from_bytes(raw[:4], "big")
    dtype = _DTYPES.get(raw[2])
    if expected_magic is not None and magic != expected_magic:
        raise CorruptDatasetError(
            f"IDX file {path}: wrong magic number 0x{magic:08x}; expected 0x{expected_magic:08x} "
            f"({_describe_magic(expected_magic)}). Is it the right file?"
        )
    if raw[:2] != b"\x00\x00" or dtype is None or raw[3] < 1:
        raise CorruptDatasetError(f"IDX file {path}: 0x{magic:08x} is not an IDX magic number")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptDatasetError(f"IDX file {path} is truncated inside its header ({len(raw)} of {header} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    itemsize = np.dtype(dtype).itemsize
    expected = int(np.prod(dims, dtype=np.int64)) * itemsize
    actual = len(raw) - header
    if actual != expected:
        problem = "truncated" if actual < expected else "has trailing bytes"
        raise CorruptDatasetError(
            f"IDX file {path} is {problem}: its header declares dimensions {dims} ({expected} bytes of data) but "
            f"{actual} bytes follow the header"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def _describe_magic(magic: int) -> str:
    return {LABELS_MAGIC: "IDX labels: unsigned bytes, 1 dimension",
            IMAGES_MAGIC: "IDX images: unsigned bytes, 3 dimensions"}.get(magic, "IDX")


def find_idx_files(directory: str) -> Tuple[Dict[str, str], list]:
    """``(found role -> path, missing file names)`` of the four standard files in `directory`."""
    found, missing = {}, []
    for role, base in IDX_FILES.items():
        for candidate in (base, base + ".gz"):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                found[role] = path
                break
        else:
            missing.append(base + "[.gz]")
    return found, missing


def idx_directory(cfg: DataConfig) -> str:
    """The directory `cfg` reads IDX files from: ``cfg.data_dir``, else the data set's default location."""
    key = cfg.name.strip().lower()
    entry = IDX_DATASETS[key]
    if cfg.data_dir:
        return os.path.expanduser(str(cfg.data_dir))
    if entry.default_dir:
        return entry.default_dir
    how = f" {_how_to_get(entry)}" if entry.publisher_url else ""
    raise ConfigError(
        f"data.data_dir: received None; data.name={key!r} needs data.data_dir set to a directory holding the four "
        f"IDX files ({', '.join(IDX_FILES.values())}, each optionally .gz), and has no default location.{how}"
    )


def holds_prepared_tfds(cfg: DataConfig) -> bool:
    """True when ``cfg.data_dir`` has no IDX files but a TFDS directory of this name (read through TFDS)."""
    key = cfg.name.strip().lower()
    if key not in ("fashion_mnist", "mnist") or not cfg.data_dir:
        return False
    root = os.path.expanduser(str(cfg.data_dir))
    return not find_idx_files(root)[0] and os.path.isdir(os.path.join(root, key))


def _how_to_get(entry: IdxCatalogEntry, directory: Optional[str] = None) -> str:
    names = ", ".join(f"{n}.gz" for n in IDX_FILES.values())
    target = "a directory and set data.data_dir to it" if directory is None else f"{directory} (data.data_dir)"
    download = f"download the four files {names} from {entry.publisher_url} into {target}"
    if entry.debian_package:
        return (f"Get them either with `apt-get install -y {entry.debian_package}` (Debian/Ubuntu: installs them "
                f"in {entry.default_dir}, the default when data.data_dir is unset), or {download}.")
    if entry.title == "MNIST":
        return f"Debian has no MNIST package: {download}."
    return ""


def idx_source(cfg: DataConfig) -> ArraySource:
    """The `ArraySource` of the IDX data set ``cfg.name`` (``fashion_mnist``, ``mnist`` or ``idx``).

    # Raises
        ConfigError: ``mnist`` / ``idx`` without ``cfg.data_dir``.
        DatasetNotAvailableError: files missing (names the directory and how to get them).
        CorruptDatasetError: unreadable, truncated or inconsistent files.
    """
    key = cfg.name.strip().lower()
    entry = IDX_DATASETS[key]
    directory = idx_directory(cfg)
    found, missing = find_idx_files(directory) if os.path.isdir(directory) else ({}, list(IDX_FILES.values()))
    if missing:
        where = directory if os.path.isdir(directory) else f"{directory} (no such directory)"
        how = _how_to_get(entry, None if directory == entry.default_dir else directory)
        raise DatasetNotAvailableError(
            f"{entry.title} data set (data.name={key!r}) not found: looked in {where} for "
            f"{', '.join(f for f in IDX_FILES.values())} (each plain or .gz); missing: {', '.join(missing)}. "
            f"{how}".rstrip()
        )
    arrays = {}
    for split in ("train", "test"):
        images = read_idx(found[f"{split}_images"], IMAGES_MAGIC)
        labels = read_idx(found[f"{split}_labels"], LABELS_MAGIC)
        if len(images) != len(labels):
            raise CorruptDatasetError(
                f"{entry.title} {split} split: {found[f'{split}_images']} holds {len(images)} images but "
                f"{found[f'{split}_labels']} holds {len(labels)} labels"
            )
        arrays[split] = (images, labels.astype(np.int32))
    native = arrays["train"][0].shape[1:]
    if arrays["test"][0].shape[1:] != native:
        raise CorruptDatasetError(
            f"{entry.title}: training images are {native[0]}x{native[1]} but test images "
            f"{arrays['test'][0].shape[1]}x{arrays['test'][0].shape[2]} ({directory})"
        )
    num_classes = int(max(arrays["train"][1].max(), arrays["test"][1].max())) + 1
    names = entry.class_names or tuple(str(i) for i in range(num_classes))
    if num_classes > len(names) or num_classes < 2:
        raise CorruptDatasetError(
            f"{entry.title} ({directory}): labels span 0..{num_classes - 1}; expected {len(names)} classes "
            f"(at least 2)"
        )
    num_classes = len(names)
    s = cfg.image_size
    prep = Preprocessing(image_size=s, channels=1, kind="small", native_hw=(s, s), flip=entry.flip)
    train_labels = arrays["train"][1]
    parts = holdout_split(train_labels, cfg)
    train_images = _resize(arrays["train"][0], s)
    splits = {k: (train_images[idx], train_labels[idx]) for k, idx in parts.items()}
    splits["test"] = (_resize(arrays["test"][0], s), arrays["test"][1])
    source = ArraySource(
        key, splits, num_classes=num_classes, class_names=names, prep=prep,
        description=(
            f"{entry.title} IDX files in {directory}: {len(train_labels)} training images "
            f"(train/holdout: stratified {1 - cfg.holdout_fraction:g}/{cfg.holdout_fraction:g}) and "
            f"{len(arrays['test'][1])} test images, {native[0]}x{native[1]}x1"
            + (f" resized to {s}x{s}x1" if native != (s, s) else "")
        ),
    )
    source.indices = {**parts, "test": np.arange(len(arrays["test"][1]), dtype=np.int64)}
    return source


def _resize(images: np.ndarray, size: int, chunk: int = 4096) -> np.ndarray:
    """[N, H, W] uint8 -> [N, size, size, 1] uint8 (bilinear, antialiased; unchanged if already that size)."""
    images = images[..., None]
    if images.shape[1:3] == (size, size):
        return np.ascontiguousarray(images)
    out = np.empty((len(images), size, size, 1), np.uint8)
    for start in range(0, len(images), chunk):
        part = tf.image.resize(tf.cast(images[start:start + chunk], tf.float32), (size, size), method="bilinear",
                               antialias=True)
        out[start:start + chunk] = tf.cast(tf.round(tf.clip_by_value(part, 0.0, 255.0)), tf.uint8).numpy()
    return out
