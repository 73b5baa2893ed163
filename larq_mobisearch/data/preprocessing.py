"""Image preprocessing shared by every source: the deterministic resize that may be cached (`base`), the
evaluation view (`evaluate`) and the seeded training augmentation (`augment`).

Every image leaves here as float32 in ``[-1, 1]`` (pixel / 127.5 - 1, roughly zero-mean) with shape
``(image_size, image_size, channels)``. Three kinds:

- ``digits`` (arrays already in [0, 1] at the target size): training shifts the image by up to
  ``image_size // 8`` pixels (zero-pad + random crop), never flips;
- ``small`` (e.g. CIFAR at 32, Fashion-MNIST at 28): resize to ``image_size`` if needed; training pads by
  ``image_size // 8``, takes a random crop and (if `flip`) a random horizontal flip;
- ``large`` (``image_size >= 128``, the paper's ImageNet pipeline): resize the shorter side to
  ``round(image_size * 256 / 224)``; training takes a random ``image_size`` crop and a random horizontal flip,
  evaluation the centre crop.

Augmentation draws only stateless random ops from the seed it is given, so an augmented image is a pure
function of (image, seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import tensorflow as tf

#: Input sizes at or above this use the paper's ImageNet preprocessing (shorter side 256/224 * size).
LARGE_IMAGE_SIZE = 128
#: "auto" caching keeps a split in memory when its estimated size is at most this many bytes.
AUTO_CACHE_BYTES = 1 << 30

KINDS = ("digits", "small", "large")


def resize_scale(image_size: int) -> int:
    """Shorter-side size before cropping, for the paper's ImageNet pipeline (256 at 224)."""
    return int(round(image_size * 256 / 224))


def kind_for(image_size: int) -> str:
    """``"large"`` (ImageNet pipeline) at ``image_size >= LARGE_IMAGE_SIZE``, else ``"small"``."""
    return "large" if image_size >= LARGE_IMAGE_SIZE else "small"


def to_unit(image: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; float inputs are assumed to be in [0, 1] already."""
    if image.dtype == tf.uint8:
        return tf.cast(image, tf.float32) / 255.0
    return tf.cast(image, tf.float32)


def normalize(image01: tf.Tensor) -> tf.Tensor:
    """[0, 1] -> [-1, 1]."""
    return image01 * 2.0 - 1.0


def to_uint8(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)


def resize_shorter_side(image: tf.Tensor, size: int) -> tf.Tensor:
    shape = tf.shape(image)
    h = tf.cast(shape[0], tf.float32)
    w = tf.cast(shape[1], tf.float32)
    scale = tf.cast(size, tf.float32) / tf.minimum(h, w)
    new_h = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), size)
    new_w = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), size)
    return tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear", antialias=True)


def should_cache(mode: str, nbytes: int) -> bool:
    """Whether `data.cache` = `mode` keeps `nbytes` in memory ("auto": up to `AUTO_CACHE_BYTES`)."""
    if mode == "memory":
        return True
    if mode == "none":
        return False
    return nbytes <= AUTO_CACHE_BYTES


@dataclass(frozen=True)
class Preprocessing:
    """Deterministic `base` (before caching), then `evaluate` or `augment` (after the cache).

    # Arguments
        image_size: side of the square model input.
        channels: 1 (grayscale) or 3 (colour).
        kind: ``"digits"``, ``"small"`` or ``"large"`` (see the module docstring).
        native_hw: static (height, width) of the source images if known (``base`` skips a no-op resize).
        flip: random horizontal flips in training (not for digits or other non-mirror-symmetric images).
    """

    image_size: int
    channels: int
    kind: str
    native_hw: Optional[Tuple[int, int]] = None
    flip: bool = True

    @property
    def pad(self) -> int:
        return max(1, self.image_size // 8)

    @property
    def static_base_shape(self) -> Optional[Tuple[int, int, int]]:
        """Shape of every image after `base` when it is the same for all (not for ``large``)."""
        if self.kind == "large":
            return None
        return (self.image_size, self.image_size, self.channels)

    def base(self, image: tf.Tensor) -> tf.Tensor:
        """Resize (uint8 stays uint8) to the size that is cached: SxS, or shorter side = scale (large)."""
        s = self.image_size
        if self.kind == "digits":
            return image
        if self.kind == "large":
            return to_uint8(resize_shorter_side(tf.cast(image, tf.float32), resize_scale(s)))
        if self.native_hw == (s, s):
            return image
        image = tf.image.resize(tf.cast(image, tf.float32), (s, s), method="bilinear", antialias=True)
        return to_uint8(image)

    def evaluate(self, image: tf.Tensor) -> tf.Tensor:
        s = self.image_size
        if self.kind == "large":
            image = tf.image.resize_with_crop_or_pad(image, s, s)  # centre crop
        image = normalize(to_unit(image))
        return tf.ensure_shape(image, (s, s, self.channels))

    def augment(self, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Random crop (after padding for digits / small) and flip, drawn from the stateless `seed` ([2] ints)."""
        s = self.image_size
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
        image = to_unit(image)
        if self.kind in ("digits", "small"):
            p = self.pad
            image = tf.pad(image, [[p, p], [p, p], [0, 0]])  # zero = background for digits, black otherwise
        image = tf.image.stateless_random_crop(image, (s, s, self.channels), seed=seeds[0])
        if self.flip and self.kind != "digits":
            image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
        return tf.ensure_shape(normalize(image), (s, s, self.channels))

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
