"""Checking image files once, before anything trains: every file of an image folder is decoded by the same
op the input pipeline uses (`decode_image_file`), so a file that passes cannot fail later in training.

Verdicts are cached by (path, size, modification time), so a folder is decoded in full only the first time
it is listed, and a changed file is checked again. The cache is one small JSON file per folder, written
atomically, in ``$MOBISEARCH_CACHE_DIR`` (environment variable), else ``$XDG_CACHE_HOME/larq_mobisearch``
(default ``~/.cache/larq_mobisearch``), under ``image_checks/``. A missing, damaged or foreign cache file (or
one from another TensorFlow version, whose decoder may differ) is ignored; deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence

import tensorflow as tf

from ..fileio import atomic_write_json

log = logging.getLogger(__name__)

#: Environment variable naming the cache directory.
CACHE_DIR_ENV = "MOBISEARCH_CACHE_DIR"
CACHE_VERSION = 1
#: Folders with more files than this log the progress of their first check.
PROGRESS_EVERY = 10000


def decode_image_file(contents: tf.Tensor) -> tf.Tensor:
    """The input pipeline's decoder: uint8 [H, W, C] of an encoded image (PNG, JPEG, BMP, GIF's first frame)."""
    return tf.io.decode_image(contents, channels=0, expand_animations=False)


def cache_dir() -> str:
    """Where verdicts are cached (see the module docstring)."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return os.path.expanduser(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "larq_mobisearch")


def cache_path(root: str) -> str:
    """The cache file of the folder `root`."""
    key = hashlib.sha256(os.path.abspath(root).encode("utf-8")).hexdigest()[:24]
    return os.path.join(cache_dir(), "image_checks", f"{key}.json")


def check_image_file(path: str) -> Optional[str]:
    """None if `path` decodes to a non-empty image as the input pipeline decodes it, else why not."""
    try:
        image = decode_image_file(tf.io.read_file(path))
    except (tf.errors.OpError, OSError) as exc:
        text = re.sub(r"\{\{.*?\}\}|\s*\[Op:\w+\].*$", "", getattr(exc, "message", None) or str(exc)).strip()
        return text.splitlines()[0] if text else type(exc).__name__  # TensorFlow's words, without the op's name
    shape = tuple(image.shape)
    if len(shape) != 3 or 0 in shape:
        return f"decodes to an empty image (shape {list(shape)})"
    return None


def _read_cache(path: str, root: str) -> Dict[str, list]:
    try:
        with open(path, "r", encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or data.get("root") != root or \
            data.get("decoder") != tf.__version__ or not isinstance(data.get("files"), dict):
        return {}
    return {k: v for k, v in data["files"].items()
            if isinstance(v, list) and len(v) == 3 and all(isinstance(x, int) for x in v[:2])
            and (v[2] is None or isinstance(v[2], str))}


def _stamp(path: str) -> List[int]:
    st = os.stat(path)
    return [int(st.st_size), int(st.st_mtime_ns)]


def unreadable_files(root: str, paths: Sequence[str], workers: Optional[int] = None) -> Dict[str, str]:
    """The files of `paths` (inside the folder `root`) that cannot be decoded, with the reason.

    # Arguments
        root: the image folder (the cache is kept per folder; paths are cached relative to it).
        paths: the image files.
        workers: decoding threads (default: the CPU count, at most 16).

    # Returns
        ``{path: reason}``, in the order of `paths`; empty when every file decodes.
    """
    root = os.path.abspath(root)
    where = cache_path(root)
    cached = _read_cache(where, root)
    verdicts: Dict[str, list] = {}
    todo = []
    for path in paths:
        rel = os.path.relpath(os.path.abspath(path), root)
        try:
            stamp = _stamp(path)
        except OSError as exc:
            verdicts[rel] = [-1, -1, f"cannot be read ({exc.strerror or exc})"]
            continue
        entry = cached.get(rel)
        if entry is not None and entry[:2] == stamp:
            verdicts[rel] = entry
        else:
            todo.append((rel, path, stamp))
    if todo:
        if len(todo) > PROGRESS_EVERY:
            log.warning("Checking %d image files of %s once (verdicts cached in %s)", len(todo), root, where)
        workers = workers or min(16, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for (rel, _, stamp), reason in zip(todo, pool.map(check_image_file, [p for _, p, _ in todo])):
                verdicts[rel] = stamp + [reason]
        keep = {k: v for k, v in verdicts.items() if v[0] >= 0}  # unstat-able files are checked every time
        try:
            atomic_write_json(where, {"version": CACHE_VERSION, "root": root, "decoder": tf.__version__,
                                      "files": keep}, indent=None)
        except OSError as exc:  # a read-only cache directory only costs the next listing a full check
            log.warning("Cannot write the image check cache %s: %s", where, exc)
    bad = {}
    for path in paths:
        reason = verdicts[os.path.relpath(os.path.abspath(path), root)][2]
        if reason is not None:
            bad[path] = reason
    return bad
