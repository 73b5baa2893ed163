"""Numerical verification of an exported flatbuffer: LCE's interpreter vs Keras on the same images.

`verify_tflite(model, flatbuffer, images, labels)` runs both and reports max / mean |logit difference|, top-1
agreement, accuracies, and *near ties*: binary networks have genuine ties, a sign input within float rounding
(~1e-6) of 0 can flip between LCE and Keras and change the logits by O(1), so samples where some binary-conv
input lies within `tie_margin` of 0 (`sign_margins`) are counted separately; a mismatch on any other sample
is an export bug.

`check_numerics(report, max_abs_diff)` is the gate `mobisearch export` applies: it fails when a sample that is
not a near tie differs by more than ``max_abs_diff x logit scale`` (the *logit scale* is
``max(1, max |Keras logit| over the verified samples)``, so the tolerance is relative to the model's logits
and never below ``max_abs_diff`` in absolute terms), or when top-1 agreement on those samples is below 100%.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence

import numpy as np
import tensorflow as tf

from .converter import quiet_native_stderr
from .flatbuffer import check_flatbuffer
from .lowering import binary_convs

DEFAULT_TIE_MARGIN = 1e-5
#: Default numerics tolerance of `check_numerics`, relative to the logit scale (`export.max_abs_diff`).
DEFAULT_MAX_ABS_DIFF = 1e-4


class NumericsError(ValueError):
    """The exported flatbuffer's outputs disagree with Keras on samples that are not near ties."""

    def __init__(self, message: str, failures: Sequence[str]):
        super().__init__(message)
        self.failures = list(failures)


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
    #: max(1, max |Keras logit| over the samples): the scale numerics tolerances are relative to.
    logit_scale: float = 1.0
    #: Samples that are not near ties (all samples when the margins could not be computed).
    num_clear: Optional[int] = None
    #: Top-1 agreement and the worst sample's max |logit difference| over those samples.
    top1_agreement_clear: Optional[float] = None
    #: Samples tested for near ties (False: margins could not be computed, every sample counts as clear).
    margins_known: bool = True

    def to_json(self) -> dict:
        return asdict(self)


def logit_tolerance(report: VerifyReport, max_abs_diff: float = DEFAULT_MAX_ABS_DIFF) -> float:
    """The absolute tolerance on |logit difference|: ``max_abs_diff x report.logit_scale``."""
    return float(max_abs_diff) * float(report.logit_scale)


def numerics_failures(report: VerifyReport, max_abs_diff: float = DEFAULT_MAX_ABS_DIFF) -> List[str]:
    """Why `report` fails the numerics gate (see the module docstring); [] if it passes."""
    if report.num_samples == 0:
        return []
    tol = logit_tolerance(report, max_abs_diff)
    clear = report.num_clear if report.num_clear is not None else report.num_samples
    what = "samples that are not near ties" if report.margins_known else "samples (near ties unknown)"
    if clear == 0:
        return [f"all {report.num_samples} samples are near ties (a binary-conv input within "
                f"{report.tie_margin:g} of 0): nothing to verify on; verify on more samples"]
    failures = []
    worst = report.max_abs_diff_clear if report.max_abs_diff_clear is not None else report.max_abs_diff
    if worst > tol:
        failures.append(
            f"max |logit difference| {worst:.3g} on {what} exceeds the tolerance {tol:.3g} "
            f"(= {max_abs_diff:g} x logit scale {report.logit_scale:.3g}; {report.num_mismatched_clear} of "
            f"{clear} such samples differ by more than 1e-3)")
    agreement = report.top1_agreement_clear if report.top1_agreement_clear is not None else report.top1_agreement
    if agreement < 1.0:
        failures.append(f"top-1 agreement on {what} is {100 * agreement:.2f}% ({clear} samples), not 100%")
    return failures


def check_numerics(report: VerifyReport, max_abs_diff: float = DEFAULT_MAX_ABS_DIFF, *, what: str = "export") -> None:
    """Raise `NumericsError` (with the numbers) if `report` fails the numerics gate.

    # Arguments
        report: from `verify_tflite`.
        max_abs_diff: tolerance relative to the logit scale (`logit_tolerance`).
        what: what is refused, for the message.
    """
    failures = numerics_failures(report, max_abs_diff)
    if failures:
        raise NumericsError(
            f"Refusing the {what}: LCE's interpreter disagrees with Keras on {report.num_samples} verification "
            f"samples ({report.num_near_tie if report.num_near_tie is not None else 'unknown'} near ties excluded):\n"
            + "\n".join(f"  {f}" for f in failures)
            + "\nIf this is expected (e.g. a deliberately approximate model), pass --allow-mismatch "
              "(export.allow_mismatch=true) to write the file anyway; the report marks it.",
            failures,
        )


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
    with quiet_native_stderr("TensorFlow (Keras reference; XLA compiles grouped convs)"):
        keras_out = np.concatenate([np.asarray(model(images[i : i + batch_size], training=False))
                                    for i in range(0, len(images), batch_size)])
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
    report.logit_scale = float(max(1.0, np.abs(keras_out).max()))
    with quiet_native_stderr("TensorFlow (sign margins)"):
        margins = sign_margins(model, images, batch_size=batch_size)
    if margins is not None:
        clear = margins >= tie_margin
        report.num_near_tie = int(np.sum(~clear))
    else:  # cannot tell near ties apart: every sample must match
        clear = np.ones(len(images), bool)
        report.margins_known = False
    report.num_clear = int(clear.sum())
    report.max_abs_diff_clear = float(diff[clear].max()) if clear.any() else None
    report.num_mismatched_clear = int(np.sum(diff[clear].max(-1) > 1e-3)) if clear.any() else 0
    report.top1_agreement_clear = float(np.mean(tfl_top[clear] == keras_top[clear])) if clear.any() else None
    if labels is not None:
        report.tflite_accuracy = float(np.mean(tfl_top == labels))
        report.keras_accuracy = float(np.mean(keras_top == labels))
    return report
