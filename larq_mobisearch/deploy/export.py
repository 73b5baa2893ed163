"""Export a fixed binary MobileNet to a TFLite flatbuffer with LCE, checked, and describe the result.

- `export_tflite(model)`: fuse M3's pointwise pairs (`fuse`), convert (`converter.convert`) and make sure every
  binary convolution became an ``LceBconv2d`` op; refuses a model with an `ExportError` naming each layer and
  why (before converting, from the layers; after converting, from the flatbuffer's conv signatures,
  `lowering.unlowered_layers`), unless ``allow_float_fallback=True``.
- `export_report(model)`: op census, sizes (and the size of the same architecture as a float TFLite model),
  the model's parameter memory (`parameter_memory`), optionally the verification (`verify.verify_tflite`) and
  the numerics gate's figures, as an `ExportReport` with `to_json()`.
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
from typing import Any, Callable, Dict, List, Optional, Union

import tensorflow as tf

from ..choices import EXPORT_METHODS, EXPORT_TARGETS, check_choice
from ..fileio import atomic_write_bytes
from .converter import (convert, convert_with_output, emit_captured, error_lines, inference_function,
                        quiet_native_stderr)
from .flatbuffer import LCE_BCONV, check_flatbuffer, op_census
from .fuse import fusable_pairs, fuse_pointwise_pairs
from .lowering import (ZERO_PADDING_MIN_SIDE, ExportError, binary_convs, is_masked_binary_layer, problem_message,
                       unlowered_layers, zero_padded_small_map_convs)
from .verify import DEFAULT_MAX_ABS_DIFF, VerifyReport, logit_tolerance, numerics_failures, verify_tflite

log = logging.getLogger(__name__)

Materialize = Optional[Callable[[tf.keras.Model], tf.keras.Model]]

__all__ = ["ExportError", "ExportReport", "convert", "export_report", "export_tflite", "float_model",
           "float_tflite_size", "parameter_memory", "write_tflite"]


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
    fuse_pointwise: bool = True,
) -> bytes:
    """Convert a fixed binary model to a TFLite flatbuffer with LCE, checking every binary conv lowered.

    # Arguments
        model: a fixed Keras model (real grouped layers). A supernet must be materialised first.
        target: "arm" or "xcore" (LCE's targets).
        allow_float_fallback: if True, a binary conv LCE cannot lower is exported as float ops with a
            logged warning instead of raising.
        materialize: optional hook ``model -> fixed model`` applied first (e.g.
            ``lambda m: extract_subnet(m, genotype)`` for a supernet).
        method: "signature" (default): trace ``model(x, training=False)`` once, freeze the weights into it,
            save a SavedModel holding only that serving signature, convert it with
            `larq_compute_engine.convert_saved_model` (falls back to "keras" if that fails). "keras":
            `larq_compute_engine.convert_keras_model(model)`, which saves the full Keras SavedModel and is
            several times slower. Both give the same ops and outputs; their sizes differ by under 1 KB
            (`benchmarks/results/convert_time.json`).
        fuse_pointwise: export each M3 pointwise pair as one binary conv (`fuse.fuse_pointwise_pairs`; same
            logits, 13 fewer ``LceBconv2d`` ops in M3). No effect on models without such pairs.

    # Returns
        The flatbuffer bytes.

    # Raises
        ExportError: some binary conv will not (or did not) become `LceBconv2d`, naming each layer and why
            (checked before conversion from the layers, and after it by comparing the conv signatures of the
            model with the flatbuffer's conv ops, `lowering.unlowered_layers`).
    """
    check_choice("Unknown LCE target", target, EXPORT_TARGETS)
    check_choice("Unknown export method", method, EXPORT_METHODS)
    model = _materialize(model, materialize)
    if not isinstance(model, tf.keras.Model):
        raise TypeError(f"Expected a tf.keras.Model, received {type(model).__name__}")
    convs = binary_convs(model)
    predicted = {c.name: c.problem for c in convs if c.problem}
    if predicted and not allow_float_fallback:  # refuse before the (slow) conversion
        raise ExportError(problem_message(model.name, predicted, convs), predicted)
    miscomputed = zero_padded_small_map_convs(model)
    if miscomputed:  # converts and lowers, but computes other numbers: the numerics gate (`verify`) will tell
        log.warning("%r: LCE 0.16 computes binary convs with pad_values=0 ('same' zero padding) wrongly on maps "
                    "smaller than %dx%d; expect the .tflite to differ from Keras at %s. Build them with "
                    "pad_values=1 (larq's QuantConv2D argument) to export them exactly.", model.name,
                    ZERO_PADDING_MIN_SIDE, ZERO_PADDING_MIN_SIDE,
                    ", ".join(f"{name} ({h}x{w})" for name, (h, w) in miscomputed.items()))
    if fuse_pointwise:
        model = fuse_pointwise_pairs(model)
        convs = binary_convs(model)

    start = time.perf_counter()
    flatbuffer, output = convert_with_output(model, target, method)
    log.info("Converted %r with LCE (target %s, method %s) in %.1f s: %d bytes", model.name, target, method,
             time.perf_counter() - start, len(flatbuffer))
    emit_captured(output, f"LCE converter ({model.name!r})")

    failed = unlowered_layers(model, flatbuffer, convs=convs, converter_errors=error_lines(output))
    if failed:
        binary = {c.name for c in convs}
        if not allow_float_fallback or any(name not in binary for name in failed):
            raise ExportError(problem_message(model.name, failed, convs), failed)
        log.warning("allow_float_fallback=True, exporting anyway. %s",
                    problem_message(model.name, failed, convs, hint=False))
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
    converter = tf.lite.TFLiteConverter.from_concrete_functions([inference_function(reference)], reference)
    with quiet_native_stderr("TFLite converter (float reference)"):
        data = converter.convert()
    log.info("Converted float reference of %r in %.1f s: %d bytes", model.name, time.perf_counter() - start,
             len(data))
    return len(data)


def parameter_memory(model: tf.keras.Model) -> Dict[str, int]:
    """Memory of `model`'s trainable parameters: 1 bit per binary-conv kernel weight, 32 bits per other one.

    # Returns
        ``{"binary_params", "real_params", "bytes", "float32_bytes"}`` (``float32_bytes``: all of them at 32 bits).
    """
    binary_names = {c.name for c in binary_convs(model)}
    binary = real = 0
    for layer in model.layers:
        for w in layer.trainable_weights:
            n = int(w.shape.num_elements())
            if layer.name in binary_names and "kernel" in w.name:
                binary += n
            else:
                real += n
    return {"binary_params": binary, "real_params": real, "bytes": binary // 8 + real * 4,
            "float32_bytes": (binary + real) * 4}


@dataclass
class ExportReport:
    """What `export_report` measured about one exported model."""

    model_name: str
    target: str
    tflite_bytes: int
    op_census: Dict[str, int]
    num_lce_bconv: int
    #: Binary convs of the exported model (after fusing pointwise pairs: 26 for M3, not 39).
    num_binary_convs: int
    float_fallback_layers: Dict[str, str] = field(default_factory=dict)
    float_tflite_bytes: Optional[int] = None
    #: float_tflite_bytes / tflite_bytes.
    size_ratio: Optional[float] = None
    #: M3 pointwise pairs exported as one binary conv each (`fuse.fuse_pointwise_pairs`).
    fused_pointwise_pairs: int = 0
    #: `parameter_memory` of the model (before fusing M3's pointwise pairs).
    parameter_memory: Optional[Dict[str, int]] = None
    verify: Optional[VerifyReport] = None
    #: The numerics gate on `verify` (`verify.numerics_failures`), relative tolerance `max_abs_diff`.
    max_abs_diff: float = DEFAULT_MAX_ABS_DIFF
    #: Written although the gate failed (``--allow-mismatch``).
    allowed_mismatch: bool = False
    #: The flatbuffer itself (not part of `to_json`).
    flatbuffer: Optional[bytes] = field(default=None, repr=False)

    @property
    def fully_binary(self) -> bool:
        return self.num_lce_bconv == self.num_binary_convs and not self.float_fallback_layers

    @property
    def numerics_failures(self) -> List[str]:
        return [] if self.verify is None else numerics_failures(self.verify, self.max_abs_diff)

    def verification(self) -> Dict[str, Any]:
        """The gate's figures: passed, tolerance (absolute and relative), logit scale, failures."""
        if self.verify is None:
            return {"verified": False, "passed": None, "allowed_mismatch": self.allowed_mismatch}
        failures = self.numerics_failures
        return {
            "verified": True,
            "passed": not failures,
            "failures": failures,
            "allowed_mismatch": self.allowed_mismatch,
            "max_abs_diff_relative": self.max_abs_diff,
            "logit_scale": self.verify.logit_scale,
            "tolerance": logit_tolerance(self.verify, self.max_abs_diff),
            "samples": self.verify.num_samples,
            "clear_samples": self.verify.num_clear,
            "near_ties": self.verify.num_near_tie,
            "max_abs_diff_clear": self.verify.max_abs_diff_clear,
            "top1_agreement_clear": self.verify.top1_agreement_clear,
        }

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("flatbuffer", "verify")}
        out["verify"] = self.verify.to_json() if self.verify is not None else None
        out["verification"] = self.verification()
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
    fuse_pointwise: bool = True,
    images=None,
    labels=None,
    include_float_size: bool = True,
    num_threads: int = 1,
    batch_size: int = 64,
    max_abs_diff: float = DEFAULT_MAX_ABS_DIFF,
    materialize: Materialize = None,
) -> ExportReport:
    """Export `model` (unless `flatbuffer` is given) and describe the result.

    # Arguments
        model: the fixed Keras model (or a supernet with a `materialize` hook).
        flatbuffer: an existing export of `model` to describe (made with the same `fuse_pointwise`);
            converted with `export_tflite` if None.
        target, allow_float_fallback, fuse_pointwise, materialize: as in `export_tflite`.
        images, labels: if images are given, `verify_tflite` runs on them, against `model` itself (the
            unfused model: the reference the fused flatbuffer must match).
        include_float_size: also convert the float equivalent (`float_model`) for the size comparison.
        num_threads, batch_size: as in `verify_tflite`.
        max_abs_diff: relative tolerance of the numerics gate recorded in the report (`verify.check_numerics`;
            this function reports, it does not refuse).

    # Returns
        An `ExportReport` (the bytes are in `.flatbuffer`; write them with `write_tflite`).
    """
    model = _materialize(model, materialize)
    exported = model
    pairs = 0
    if fuse_pointwise:
        pairs = len(fusable_pairs(model))
        exported = fuse_pointwise_pairs(model) if pairs else model
    if flatbuffer is None:
        flatbuffer = export_tflite(exported, target=target, allow_float_fallback=allow_float_fallback,
                                   fuse_pointwise=False)
    flatbuffer = check_flatbuffer(flatbuffer)
    convs = binary_convs(exported)
    census = op_census(flatbuffer)
    report = ExportReport(
        model_name=model.name,
        target=target,
        tflite_bytes=len(flatbuffer),
        op_census=census,
        num_lce_bconv=int(census.get(LCE_BCONV, 0)),
        num_binary_convs=len(convs),
        float_fallback_layers=unlowered_layers(exported, flatbuffer, convs=convs),
        fused_pointwise_pairs=pairs,
        parameter_memory=parameter_memory(model),
        max_abs_diff=float(max_abs_diff),
        flatbuffer=flatbuffer,
    )
    if include_float_size:
        report.float_tflite_bytes = float_tflite_size(model)
        report.size_ratio = report.float_tflite_bytes / report.tflite_bytes
    if images is not None:
        report.verify = verify_tflite(model, flatbuffer, images, labels, num_threads=num_threads,
                                      batch_size=batch_size)
    return report
