"""Export a fixed binary MobileNet to a TFLite flatbuffer with LCE, checked, and describe the result.

- `export_tflite(model)`: convert (`converter.convert`) and make sure every binary convolution became an
  ``LceBconv2d`` op; refuses a model with an `ExportError` naming each layer and why (before converting, from
  the layers; after converting, from the flatbuffer), unless ``allow_float_fallback=True``.
- `export_report(model)`: op census, sizes (and the size of the same architecture as a float TFLite model),
  optionally the verification (`verify.verify_tflite`), as an `ExportReport` with `to_json()`.
- `write_tflite(data, path)`: atomic write.

Only fixed models (real ``groups=g`` layers) export. A weight-sharing supernet's masked block-diagonal kernel
is ternary (0 outside the active groups) and never lowers: materialise it first with
`larq_mobisearch.nn.supernet.extract_subnet(supernet, genotype)`, or pass that as the `materialize` hook, e.g.
``export_tflite(supernet, materialize=lambda m: extract_subnet(m, genotype))``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Union

import tensorflow as tf

from ..choices import EXPORT_METHODS, EXPORT_TARGETS, check_choice
from ..fileio import atomic_write_bytes
from .converter import convert, inference_function
from .flatbuffer import LCE_BCONV, check_flatbuffer, op_census
from .lowering import ExportError, binary_convs, is_masked_binary_layer, problem_message, unlowered_layers
from .verify import VerifyReport, verify_tflite

log = logging.getLogger(__name__)

Materialize = Optional[Callable[[tf.keras.Model], tf.keras.Model]]

__all__ = ["ExportError", "ExportReport", "convert", "export_report", "export_tflite", "float_model",
           "float_tflite_size", "write_tflite"]


def _materialize(model: tf.keras.Model, materialize: Materialize) -> tf.keras.Model:
    if materialize is not None:
        model = materialize(model)
        if not isinstance(model, tf.keras.Model):
            raise TypeError(f"materialize must return a tf.keras.Model, returned {type(model).__name__}")
    return model


def export_tflite(
    model: tf.keras.Model,
    *,
    target: str = "arm",
    allow_float_fallback: bool = False,
    materialize: Materialize = None,
    method: str = "signature",
) -> bytes:
    """Convert a fixed binary model to a TFLite flatbuffer with LCE, checking every binary conv lowered.

    # Arguments
        model: a fixed Keras model (real grouped layers). A supernet must be materialised first.
        target: "arm" or "xcore" (LCE's targets).
        allow_float_fallback: if True, a binary conv LCE cannot lower is exported as float ops with a
            logged warning instead of raising.
        materialize: optional hook ``model -> fixed model`` applied first (e.g.
            ``lambda m: extract_subnet(m, genotype)`` for a supernet).
        method: "signature" (default): trace ``model(x, training=False)`` once, save a SavedModel holding
            only the variables and that serving signature, convert it with
            `larq_compute_engine.convert_saved_model` (falls back to "keras" if that fails). "keras":
            `larq_compute_engine.convert_keras_model(model)`, which saves the full Keras SavedModel and is
            several times slower. Both give the same ops, size and outputs.

    # Returns
        The flatbuffer bytes.

    # Raises
        ExportError: some binary conv will not (or did not) become `LceBconv2d`, naming each layer and why
            (checked before conversion from the layers, and after it from the flatbuffer's ops).
    """
    check_choice("Unknown LCE target", target, EXPORT_TARGETS)
    check_choice("Unknown export method", method, EXPORT_METHODS)
    model = _materialize(model, materialize)
    if not isinstance(model, tf.keras.Model):
        raise TypeError(f"Expected a tf.keras.Model, received {type(model).__name__}")
    convs = binary_convs(model)
    predicted = {c.name: c.problem for c in convs if c.problem}
    if predicted and not allow_float_fallback:  # refuse before the (slow) conversion
        raise ExportError(problem_message(model.name, predicted, len(convs)), predicted)

    start = time.perf_counter()
    flatbuffer = convert(model, target, method)
    log.info("Converted %r with LCE (target %s, method %s) in %.1f s: %d bytes", model.name, target, method,
             time.perf_counter() - start, len(flatbuffer))

    failed = unlowered_layers(model, flatbuffer, convs=convs)
    if failed:
        if not allow_float_fallback:
            raise ExportError(problem_message(model.name, failed, len(convs)), failed)
        log.warning("allow_float_fallback=True, exporting anyway. %s",
                    problem_message(model.name, failed, len(convs), hint=False))
    return flatbuffer


def write_tflite(data: bytes, path: Union[str, os.PathLike]) -> Path:
    """Write flatbuffer `data` to `path` atomically (temporary file in the same directory + os.replace).

    Creates missing parent directories. A reader never sees a partial file; on error `path` is unchanged.
    """
    data = check_flatbuffer(data)
    path = Path(path)
    atomic_write_bytes(path, data)
    return path


# ----------------------------------------------------------------------------------------------------------
# Float reference model and the export report.

#: Config keys of larq quantized layers that the plain Keras layer does not take.
_LARQ_KEYS = ("input_quantizer", "kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer", "metrics",
              "pad_values", "lce_compatible")


def _float_layer(layer: tf.keras.layers.Layer) -> tf.keras.layers.Layer:
    import larq as lq

    if is_masked_binary_layer(layer):
        raise ExportError(
            f"Layer {layer.name!r} is a weight-sharing supernet conv; materialise the model with "
            f"supernet.extract_subnet(supernet, genotype) before asking for its float size"
        )
    if not isinstance(layer, lq.layers_base.BaseLayer):
        return layer.__class__.from_config(layer.get_config())
    base = next(c for c in type(layer).__mro__ if c.__module__.startswith("tf_keras"))
    config = {k: v for k, v in layer.get_config().items() if k not in _LARQ_KEYS}
    for key in list(config):  # larq constraints (weight_clip) need larq objects; irrelevant for the size
        if key.endswith("_constraint"):
            config[key] = None
    return base.from_config(config)


def float_model(model: tf.keras.Model) -> tf.keras.Model:
    """The same architecture with every larq quantized layer rebuilt as its plain Keras layer (new weights).

    Binary convs padded with +1 become zero-padded float convs: the numbers differ, the size does not.
    Meant for size comparisons.
    """
    return tf.keras.models.clone_model(model, clone_function=_float_layer)


def float_tflite_size(model: tf.keras.Model) -> int:
    """Size in bytes of `float_model(model)` converted by the standard TFLite converter (float32 weights)."""
    reference = float_model(model)
    start = time.perf_counter()
    # From the frozen concrete function: from_keras_model would save a full Keras SavedModel (much slower).
    converter = tf.lite.TFLiteConverter.from_concrete_functions([inference_function(reference)])
    data = converter.convert()
    log.info("Converted float reference of %r in %.1f s: %d bytes", model.name, time.perf_counter() - start,
             len(data))
    return len(data)


@dataclass
class ExportReport:
    """What `export_report` measured about one exported model."""

    model_name: str
    target: str
    tflite_bytes: int
    op_census: Dict[str, int]
    num_lce_bconv: int
    num_binary_convs: int
    float_fallback_layers: Dict[str, str] = field(default_factory=dict)
    float_tflite_bytes: Optional[int] = None
    #: float_tflite_bytes / tflite_bytes.
    size_ratio: Optional[float] = None
    verify: Optional[VerifyReport] = None
    #: The flatbuffer itself (not part of `to_json`).
    flatbuffer: Optional[bytes] = field(default=None, repr=False)

    @property
    def fully_binary(self) -> bool:
        return self.num_lce_bconv == self.num_binary_convs and not self.float_fallback_layers

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("flatbuffer", "verify")}
        out["verify"] = self.verify.to_json() if self.verify is not None else None
        out["fully_binary"] = self.fully_binary
        if out["size_ratio"] is not None and not math.isfinite(out["size_ratio"]):
            out["size_ratio"] = None
        return out


def export_report(
    model: tf.keras.Model,
    flatbuffer: Optional[bytes] = None,
    *,
    target: str = "arm",
    allow_float_fallback: bool = False,
    images=None,
    labels=None,
    include_float_size: bool = True,
    num_threads: int = 1,
    batch_size: int = 64,
    materialize: Materialize = None,
) -> ExportReport:
    """Export `model` (unless `flatbuffer` is given) and describe the result.

    # Arguments
        model: the fixed Keras model (or a supernet with a `materialize` hook).
        flatbuffer: an existing export of `model` to describe; converted with `export_tflite` if None.
        target, allow_float_fallback, materialize: as in `export_tflite`.
        images, labels: if images are given, `verify_tflite` runs on them.
        include_float_size: also convert the float equivalent (`float_model`) for the size comparison.
        num_threads, batch_size: as in `verify_tflite`.

    # Returns
        An `ExportReport` (the bytes are in `.flatbuffer`; write them with `write_tflite`).
    """
    model = _materialize(model, materialize)
    if flatbuffer is None:
        flatbuffer = export_tflite(model, target=target, allow_float_fallback=allow_float_fallback)
    flatbuffer = check_flatbuffer(flatbuffer)
    convs = binary_convs(model)
    census = op_census(flatbuffer)
    report = ExportReport(
        model_name=model.name,
        target=target,
        tflite_bytes=len(flatbuffer),
        op_census=census,
        num_lce_bconv=int(census.get(LCE_BCONV, 0)),
        num_binary_convs=len(convs),
        float_fallback_layers=unlowered_layers(model, flatbuffer, convs=convs),
        flatbuffer=flatbuffer,
    )
    if include_float_size:
        report.float_tflite_bytes = float_tflite_size(model)
        report.size_ratio = report.float_tflite_bytes / report.tflite_bytes
    if images is not None:
        report.verify = verify_tflite(model, flatbuffer, images, labels, num_threads=num_threads,
                                      batch_size=batch_size)
    return report
