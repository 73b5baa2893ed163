"""Numerical verification of an exported flatbuffer: LCE's interpreter vs Keras on the same images.

`verify_tflite(model, flatbuffer, images, labels)` runs both and reports max / mean |logit difference|, top-1
agreement, accuracies, and *near ties*: binary networks have genuine ties, a sign input within float rounding
(~1e-6) of 0 can flip between LCE and Keras and change the logits by O(1), so samples where some binary-conv
input lies within `tie_margin` of 0 (`sign_margins`) are counted separately; a mismatch on any other sample
is an export bug.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import tensorflow as tf

from .flatbuffer import check_flatbuffer
from .lowering import binary_convs

DEFAULT_TIE_MARGIN = 1e-5


def sign_margins(model: tf.keras.Model, images, *, batch_size: int = 64) -> Optional[np.ndarray]:
    """Per sample, the smallest |input| of any binary conv of `model` (the value its sign is taken of).

    Binary networks have genuine near ties: with ~1e5 sign inputs per image, values within ~1e-6 of 0
    occur, and LCE's and Keras's float rounding (~1e-6) can flip their sign, changing the logits by O(1).
    Returns None if the inputs of the binary convs cannot be probed (e.g. nested models).
    """
    top_level = {layer.name: layer for layer in model.layers}
    layers = [top_level.get(c.name) for c in binary_convs(model)]
    if not layers or any(layer is None for layer in layers):
        return None
    try:
        probe = tf.keras.Model(model.inputs, [layer.input for layer in layers], name=f"{model.name}_sign_probe")
    except Exception:  # noqa: BLE001 - shared or nested layers: no single input tensor
        return None
    images = np.asarray(images, np.float32)
    margins = []
    for start in range(0, len(images), batch_size):
        outs = probe(images[start : start + batch_size], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        per_layer = [tf.reduce_min(tf.abs(tf.reshape(o, [tf.shape(o)[0], -1])), axis=1) for o in outs]
        margins.append(tf.reduce_min(tf.stack(per_layer, axis=1), axis=1).numpy())
    return np.concatenate(margins)


@dataclass
class VerifyReport:
    """LCE interpreter vs Keras on the same inputs."""

    num_samples: int
    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    #: Samples whose logits differ by more than 1e-3 (a sign flipped somewhere in the network).
    num_mismatched: int
    tflite_accuracy: Optional[float] = None
    keras_accuracy: Optional[float] = None
    #: A sample is a near tie if some binary conv input (before its sign) is within `tie_margin` of 0 in
    #: Keras: float rounding differs between LCE and Keras by ~1e-6, so its sign may legitimately flip.
    tie_margin: float = DEFAULT_TIE_MARGIN
    num_near_tie: Optional[int] = None
    #: Max |logit difference| and mismatched samples among the samples that are not near ties (a mismatch
    #: there is a real export bug); None if the margins could not be computed.
    max_abs_diff_clear: Optional[float] = None
    num_mismatched_clear: Optional[int] = None
    keras_seconds: float = 0.0
    tflite_seconds: float = 0.0
    num_threads: int = 1

    def to_json(self) -> dict:
        return asdict(self)


def _to_numpy(images, labels):
    if isinstance(images, tf.data.Dataset):
        xs, ys = [], []
        for batch in images.as_numpy_iterator():
            if isinstance(batch, (tuple, list)):
                xs.append(batch[0])
                if len(batch) > 1:
                    ys.append(batch[1])
            else:
                xs.append(batch)
        if not xs:
            raise ValueError("verify_tflite received an empty dataset")
        images = np.concatenate(xs)
        if labels is None and ys:
            labels = np.concatenate(ys)
    images = np.asarray(images)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim == 2:  # one-hot
            labels = labels.argmax(-1)
        labels = labels.reshape(-1)
        if len(labels) != len(images):
            raise ValueError(f"verify_tflite: {len(images)} images but {len(labels)} labels")
    return images, labels


def lce_interpreter(flatbuffer: bytes, num_threads: int = 1):
    """LCE's interpreter for `flatbuffer`, with the indirect BGEMM kernels (needed by grouped LceBconv2d)."""
    import larq_compute_engine as lce

    return lce.testing.Interpreter(check_flatbuffer(flatbuffer), num_threads=int(num_threads),
                                   use_indirect_bgemm=True)


def run_tflite(flatbuffer_or_interpreter, images, *, num_threads: int = 1) -> np.ndarray:
    """Outputs of a single-output flatbuffer (or an `lce_interpreter`) on `images` (N, ...), as one array.

    The flatbuffer's batch dimension is fixed (1 for LCE exports): samples are fed one at a time, or in
    zero-padded chunks of the fixed batch size.
    """
    if isinstance(flatbuffer_or_interpreter, (bytes, bytearray, memoryview)):
        interpreter = lce_interpreter(flatbuffer_or_interpreter, num_threads)
    else:
        interpreter = flatbuffer_or_interpreter
    images = np.asarray(images, np.dtype(interpreter.input_types[0]))
    batch = interpreter.input_shapes[0][0]
    if batch in (1, -1, None):  # LCE's predict() feeds one sample at a time
        out = interpreter.predict(images)
        return np.asarray(out[0] if isinstance(out, list) else out)
    # A flatbuffer with a fixed batch > 1: feed padded chunks through the low-level wrapper.
    outs = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n,) + chunk.shape[1:], chunk.dtype)])
        outs.append(np.asarray(interpreter.interpreter.predict([chunk])[0])[:n])
    return np.concatenate(outs)


def verify_tflite(
    model: tf.keras.Model,
    flatbuffer: bytes,
    images,
    labels=None,
    *,
    num_threads: int = 1,
    batch_size: int = 64,
    tie_margin: float = DEFAULT_TIE_MARGIN,
) -> VerifyReport:
    """Run `flatbuffer` in LCE's interpreter and `model` in Keras (inference mode) on `images` and compare.

    # Arguments
        model: the Keras model `flatbuffer` was converted from (single input, logits output).
        flatbuffer: the LCE flatbuffer.
        images: array (N, H, W, C) in the model's input shape, or a `tf.data.Dataset` of images or
            (images, labels) batches.
        labels: optional class ids (N,) or one-hot (N, classes); gives both accuracies.
        num_threads: interpreter threads.
        batch_size: Keras batch size (the interpreter runs one sample at a time: batch dimension 1).
        tie_margin: samples with a binary conv input within this distance of 0 count as near ties
            (see `sign_margins`); the `*_clear` fields exclude them.

    # Returns
        A `VerifyReport`. Raises ValueError if the images do not match the model's or the flatbuffer's
        input shape (naming both shapes).
    """
    flatbuffer = check_flatbuffer(flatbuffer)
    images, labels = _to_numpy(images, labels)
    if len(model.inputs) != 1:
        raise ValueError(f"verify_tflite supports single-input models; {model.name!r} has {len(model.inputs)}")
    expected = tuple(model.inputs[0].shape[1:])
    if images.ndim != len(expected) + 1 or any(
        e is not None and e != s for e, s in zip(expected, images.shape[1:])
    ):
        raise ValueError(
            f"Images of shape {tuple(images.shape)} (per sample {tuple(images.shape[1:])}) do not match the "
            f"input shape of model {model.name!r}: {expected} per sample (batch, {', '.join(map(str, expected))})"
        )
    if len(images) == 0:
        raise ValueError("verify_tflite needs at least one image")
    interpreter = lce_interpreter(flatbuffer, num_threads)
    tfl_shape = tuple(interpreter.input_shapes[0][1:])
    if tfl_shape != tuple(images.shape[1:]):
        raise ValueError(
            f"Images of shape {tuple(images.shape)} do not match the flatbuffer's input shape "
            f"{tuple(interpreter.input_shapes[0])}"
        )
    in_type = np.dtype(interpreter.input_types[0])
    if in_type != np.float32:
        raise ValueError(f"verify_tflite supports float32 model inputs; the flatbuffer takes {in_type}")
    images = images.astype(np.float32, copy=False)

    start = time.perf_counter()
    keras_out = np.concatenate(
        [np.asarray(model(images[i : i + batch_size], training=False)) for i in range(0, len(images), batch_size)]
    )
    keras_seconds = time.perf_counter() - start
    start = time.perf_counter()
    tfl_out = run_tflite(interpreter, images)
    tflite_seconds = time.perf_counter() - start
    if tfl_out.shape != keras_out.shape:
        raise ValueError(f"Output shapes differ: flatbuffer {tfl_out.shape}, Keras {keras_out.shape}")

    diff = np.abs(tfl_out.astype(np.float64) - keras_out.astype(np.float64)).reshape(len(images), -1)
    tfl_top, keras_top = tfl_out.reshape(len(images), -1).argmax(-1), keras_out.reshape(len(images), -1).argmax(-1)
    report = VerifyReport(
        num_samples=int(len(images)),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        top1_agreement=float(np.mean(tfl_top == keras_top)),
        num_mismatched=int(np.sum(diff.max(-1) > 1e-3)),
        keras_seconds=keras_seconds,
        tflite_seconds=tflite_seconds,
        num_threads=int(num_threads),
        tie_margin=float(tie_margin),
    )
    margins = sign_margins(model, images, batch_size=batch_size)
    if margins is not None:
        clear = margins >= tie_margin
        report.num_near_tie = int(np.sum(~clear))
        report.max_abs_diff_clear = float(diff[clear].max()) if clear.any() else None
        report.num_mismatched_clear = int(np.sum(diff[clear].max(-1) > 1e-3)) if clear.any() else 0
    if labels is not None:
        report.tflite_accuracy = float(np.mean(tfl_top == labels))
        report.keras_accuracy = float(np.mean(keras_top == labels))
    return report
