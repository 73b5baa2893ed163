"""Image folders: ``data.data_dir`` holds one sub-folder of images per class (``.png``, ``.jpg``, ``.jpeg``,
``.bmp``, ``.gif``; sub-folders of a class folder count too).

Files are listed in sorted order and split into train / holdout / test by a seeded stratified split
(``data.test_fraction``, ``data.holdout_fraction``, ``data.split_seed``). The channel count follows the
files: every file's header is read (Pillow, no pixel decoding; a seeded sample of `CHANNEL_PROBE_LIMIT`
files in larger folders) and the images are read as grayscale (1 channel) when grayscale files are the
majority, else as colour (3 channels). A mixed folder is converted to the majority, which the dataset
description and a logged warning say.

Every file is decoded once when the folder is listed, as the input pipeline decodes it (`filecheck`; the
verdicts are cached by path, size and modification time). Unreadable files (truncated, not an image) are
refused before anything trains, naming them; ``data.skip_unreadable=true`` drops them with a warning, and
the source's `skipped` (and so the run report) lists them.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf

from ..config import ConfigError, DataConfig
from .errors import CorruptDatasetError, DatasetNotAvailableError
from .filecheck import decode_image_file, unreadable_files
from .preprocessing import Preprocessing, kind_for
from .source import Source
from .splits import three_way_split

log = logging.getLogger(__name__)

#: File extensions read from image folders.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
#: At most this many file headers are read to decide the channel count (a seeded uniform sample beyond).
CHANNEL_PROBE_LIMIT = 20000
#: Unreadable files named in the error (the rest are counted).
NAMED_UNREADABLE = 5
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def file_is_grayscale(path: str) -> bool:
    """Whether the image file at `path` is grayscale, from its header (Pillow mode; palette entries for
    palette images). Unreadable files count as colour (TensorFlow reports them when they are decoded)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode in _GRAY_MODES:
                return True
            if image.mode == "P":
                palette = np.asarray(image.getpalette() or [0, 0, 0]).reshape(-1, 3)
                return bool(np.all(palette[:, 0] == palette[:, 1]) and np.all(palette[:, 1] == palette[:, 2]))
            return False
    except Exception:  # noqa: BLE001 - decided by the decoder later
        return False


def count_grayscale(paths: Sequence[str], seed: int) -> Tuple[int, int]:
    """``(grayscale, inspected)`` over `paths` (all, or a seeded sample of `CHANNEL_PROBE_LIMIT`)."""
    if len(paths) > CHANNEL_PROBE_LIMIT:
        picks = np.random.default_rng(seed).choice(len(paths), CHANNEL_PROBE_LIMIT, replace=False)
        paths = [paths[i] for i in np.sort(picks)]
    return sum(file_is_grayscale(p) for p in paths), len(paths)


def decode_with_channels(contents: tf.Tensor, channels: int) -> tf.Tensor:
    """Decode an image file to uint8 [H, W, `channels`] whatever its own channel count (1, 2, 3 or 4):
    colour -> grayscale by luminance, grayscale -> colour by repetition, alpha dropped."""
    image = decode_image_file(contents)
    own = tf.shape(image)[-1]
    if channels == 1:
        image = tf.cond(
            own >= 3,
            lambda: tf.image.convert_image_dtype(
                tf.image.rgb_to_grayscale(tf.image.convert_image_dtype(image[..., :3], tf.float32)), tf.uint8,
                saturate=True),
            lambda: image[..., :1],
        )
    else:
        image = tf.cond(own >= 3, lambda: image[..., :3], lambda: tf.tile(image[..., :1], [1, 1, 3]))
    return tf.ensure_shape(image, (None, None, channels))


class FileSource(Source):
    """Splits given as lists of image files (image folders); random access by index into each list."""

    def __init__(self, name, files: Dict[str, Tuple[List[str], np.ndarray]], num_classes, class_names,
                 prep: Preprocessing, description: str = "", skipped: Mapping[str, str] = ()):
        self.name = name
        self.files = {k: (list(p), np.asarray(y, np.int32)) for k, (p, y) in files.items()}
        self.num_classes = int(num_classes)
        self.class_names = tuple(class_names)
        self.prep = prep
        self.sizes = {k: int(len(y)) for k, (_, y) in self.files.items()}
        self.description = description
        self.skipped = tuple(dict(skipped).items())

    def _load(self, path, label):
        image = decode_with_channels(tf.io.read_file(path), self.prep.channels)
        return self.prep.base(image), label

    def stream(self, split):
        paths, labels = self.files[split]
        ds = tf.data.Dataset.from_tensor_slices((np.asarray(paths, dtype=str), labels))
        return ds.map(self._load, num_parallel_calls=tf.data.AUTOTUNE)

    def fetcher(self, split):
        paths, labels = self.files[split]
        paths_t = tf.constant(np.asarray(paths, dtype=str))
        labels_t = tf.constant(labels)
        return lambda i: self._load(tf.gather(paths_t, i), tf.gather(labels_t, i))

    def labels(self, split):
        return self.files[split][1]


def list_image_folder(root: str) -> Tuple[List[str], List[str], np.ndarray]:
    """``(class names, files, labels)`` of an image folder, classes and files in sorted order.

    # Raises
        DatasetNotAvailableError: missing folder, no images, a class folder without images, < 2 classes.
    """
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
            found.extend(os.path.join(dirpath, f) for f in sorted(filenames)
                         if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
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
    if len(files) < 3:
        raise DatasetNotAvailableError(f"Image folder {root!r} has {len(files)} images; need at least 3")
    return class_dirs, files, np.asarray(labels, dtype=np.int32)


def drop_unreadable(root: str, class_names: Sequence[str], files: List[str], labels: np.ndarray,
                    skip: bool) -> Tuple[List[str], np.ndarray, Dict[str, str]]:
    """Check every file (`filecheck.unreadable_files`); refuse unreadable ones, or drop them if `skip`.

    # Returns
        ``(files, labels, {unreadable file: reason})``, the files and labels without the unreadable ones.

    # Raises
        CorruptDatasetError: unreadable files and not `skip` (names the first `NAMED_UNREADABLE` and the count).
        DatasetNotAvailableError: `skip` leaves a class without images or fewer than 3 images.
    """
    bad = unreadable_files(root, files)
    if not bad:
        return files, labels, {}
    named = "\n  ".join(f"{os.path.relpath(p, root)}: {reason}" for p, reason in list(bad.items())[:NAMED_UNREADABLE])
    more = f"\n  ... and {len(bad) - NAMED_UNREADABLE} more" if len(bad) > NAMED_UNREADABLE else ""
    what = f"Image folder {root!r}: {len(bad)} of {len(files)} files cannot be decoded as images:\n  {named}{more}"
    if not skip:
        raise CorruptDatasetError(f"{what}\nRepair or remove them, or set data.skip_unreadable=true to train "
                                  f"without them (the run report then lists them).")
    log.warning("%s\nSkipped (data.skip_unreadable=true).", what)
    keep = np.asarray([f not in bad for f in files])
    files, labels = [f for f, k in zip(files, keep) if k], labels[keep]
    empty = [class_names[c] for c in range(len(class_names)) if not np.any(labels == c)]
    if empty:
        raise DatasetNotAvailableError(f"{what}\nWithout them these classes have no images: {empty}")
    if len(files) < 3:
        raise DatasetNotAvailableError(f"{what}\nWithout them {len(files)} images are left; need at least 3")
    return files, labels, bad


def folder_source(cfg: DataConfig) -> FileSource:
    """The `FileSource` of the image folder ``cfg.data_dir`` (see the module docstring)."""
    if not cfg.data_dir:
        raise ConfigError(
            "data.data_dir: received None; data.name='folder' needs data.data_dir set to a directory with one "
            "sub-folder of images per class"
        )
    root = os.path.expanduser(str(cfg.data_dir))
    class_dirs, files, labels = list_image_folder(root)
    files, labels, skipped = drop_unreadable(root, class_dirs, files, labels, cfg.skip_unreadable)
    parts = three_way_split(labels, cfg)
    gray, inspected = count_grayscale(files, cfg.split_seed)
    colour = inspected - gray
    channels = 1 if gray > colour else 3
    sampled = f" (a sample of {inspected})" if inspected < len(files) else ""
    if gray and colour:
        kept = "grayscale" if channels == 1 else "colour"
        mixed = (f"; mixed folder: {gray} grayscale and {colour} colour files{sampled}, all read as {kept} "
                 f"({channels} channel{'s' if channels > 1 else ''}, the majority)")
        log.warning("Image folder %s%s", root, mixed)
    else:
        mixed = ""
    prep = Preprocessing(image_size=cfg.image_size, channels=channels, kind=kind_for(cfg.image_size), flip=True)
    source = FileSource(
        "folder",
        {k: ([files[i] for i in idx], labels[idx]) for k, idx in parts.items()},
        num_classes=len(class_dirs),
        class_names=class_dirs,
        prep=prep,
        description=(f"image folder {root} ({len(files)} images, {len(class_dirs)} classes, "
                     f"{'grayscale' if channels == 1 else 'colour'}){mixed}"
                     + (f"; {len(skipped)} unreadable files skipped" if skipped else "")),
        skipped=skipped,
    )
    source.indices = parts
    return source
