"""Export fixed binary MobileNets to TFLite flatbuffers with Larq Compute Engine (LCE), and check them.

- `export_tflite(model)`: convert with LCE and make sure every binary convolution became an `LceBconv2d`
  op. LCE lowers an ungrouped binary conv always, a grouped one only when its input channels per group are
  a multiple of 32; otherwise it prints an error on stderr and silently keeps slow float ops
  (`LceQuantize` + `LceDequantize` + `PADV2` + `CONV_2D`). `export_tflite` refuses such a model with an
  `ExportError` naming each layer and why (before converting, from the layers; after converting, from
  the flatbuffer's ops), unless `allow_float_fallback=True`.
- `op_census(flatbuffer)`: op name -> count (custom ops by their custom code, e.g. ``LceBconv2d``).
- `verify_tflite(model, flatbuffer, images, labels)`: run the flatbuffer in LCE's interpreter and the model
  in Keras on the same inputs: max |logit difference|, top-1 agreement, accuracies, near ties.
- `export_report(model)`: op census, sizes (and the size of the same architecture as a float TFLite
  model), optionally the verification, as an `ExportReport` with `to_json()`.
- `write_tflite(data, path)`: atomic write (temporary file + `os.replace`).

Only fixed models (real `groups=g` layers) export. A weight-sharing supernet's masked block-diagonal kernel
is ternary (0 outside the active groups) and never lowers: materialise it first with
`larq_mobisearch.supernet.extract_subnet(supernet, genotype)`, or pass that as the `materialize` hook, e.g.
``export_tflite(supernet, materialize=lambda m: extract_subnet(m, genotype))``.

Measured with LCE 0.16 / TF 2.16 on x86:

- `larq_compute_engine.convert_keras_model` spends ~90% of its time in `model.save(save_format="tf")`,
  which AutoGraph-converts every layer's `call`. The default ``method="signature"`` traces the inference
  call once without AutoGraph, saves only the variables and that signature and calls
  `larq_compute_engine.convert_saved_model`: same ops, size and outputs, ~5x faster (M1 at width 0.5:
  ~10 s instead of ~30-60 s on a loaded 2-core machine). ``method="keras"`` uses `convert_keras_model`.
- The flatbuffer has a fixed batch dimension of 1 (the interpreter refuses a batch of 4); LCE's
  `Interpreter.predict` feeds samples one at a time. Grouped `LceBconv2d` runs only with
  ``use_indirect_bgemm=True``.
- TFLite tensor names are cut to 50 characters, and fused ops join names with ";". Each `LceBconv2d`
  reads the output of its `LceQuantize`, named ``<model>/<layer>/approx_sign_N/Sign`` by
  `convert_keras_model` and ``<layer>/approx_sign_N/Sign...`` by the default method (which traces
  `model.call`, so no model scope: with the model name "binary_mobilenet_m1_<13-gene genotype>" given by
  `extract_subnet`, the 50-character cut would otherwise eat the layer name). That maps ops back to Keras
  layers (`bconv_layer_names`). The bconv's own output is named after the fused BatchNorm
  (``<layer>_bn/FusedBatchNormV3;...``); a float fallback conv's output is just ``BinaryGroupConv2D``.
- LCE and Keras agree to ~3e-5 on the logits, except on images where some sign input lies within ~1e-6
  of 0 (rounding flips it): ~1.5% of random images for M1 at width 0.5 with calibrated BatchNorm. See
  `sign_margins`; `VerifyReport` counts such near ties separately.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from ..nn.specs import LCE_CHANNELS_PER_GROUP
from ..fileio import atomic_write_bytes
from ..choices import EXPORT_METHODS, EXPORT_TARGETS, check_choice

log = logging.getLogger(__name__)

LCE_BCONV = "LceBconv2d"
_TFLITE_IDENTIFIER = b"TFL3"
#: Names of larq quantizer *functions* (not objects) that binarize to {-1, +1}.
_SIGN_FUNCTIONS = ("ste_sign", "approx_sign", "swish_sign", "magnitude_aware_sign")

Materialize = Optional[Callable[[tf.keras.Model], tf.keras.Model]]


class ExportError(ValueError):
    """A model cannot be exported as asked (e.g. a binary conv that LCE would keep as float ops).

    # Attributes
        layers: layer name -> why it does not lower (empty when the problem is not per layer).
    """

    def __init__(self, message: str, layers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.layers: Dict[str, str] = dict(layers or {})


# ----------------------------------------------------------------------------------------------------------
# Binary convolutions of a Keras model, and which of them LCE will lower.


@dataclass(frozen=True)
class BinaryConv:
    """One binary convolution of a Keras model.

    `problem` is None if LCE is expected to lower it to `LceBconv2d`, else the reason it will not.
    """

    name: str
    layer_class: str
    in_channels: Optional[int]
    filters: Optional[int]
    groups: int
    problem: Optional[str] = None

    @property
    def lowerable(self) -> bool:
        return self.problem is None


def _iter_layers(model: tf.keras.layers.Layer):
    """All layers of `model`, descending into nested models (in model order)."""
    for layer in getattr(model, "layers", []):
        yield layer
        if isinstance(layer, tf.keras.Model) or hasattr(layer, "layers"):
            yield from _iter_layers(layer)


def _is_binary_quantizer(quantizer) -> bool:
    if quantizer is None:
        return False
    precision = getattr(quantizer, "precision", None)
    if precision is not None:
        return int(precision) == 1
    return getattr(quantizer, "__name__", None) in _SIGN_FUNCTIONS


def _is_masked_binary_layer(layer) -> bool:
    """A weight-sharing (supernet) binary conv: declares `binary = True` and has a `masked_kernel()`."""
    return getattr(type(layer), "binary", False) is True and callable(getattr(layer, "masked_kernel", None))


def _grouped_problem(in_channels: int, groups: int) -> Optional[str]:
    if groups <= 1:
        return None
    per_group = in_channels // groups
    if in_channels % groups == 0 and per_group % LCE_CHANNELS_PER_GROUP == 0:
        return None
    return (
        f"input channels per group {per_group} ({in_channels} channels / {groups} groups), "
        f"must be a multiple of {LCE_CHANNELS_PER_GROUP}"
    )


def binary_convs(model: tf.keras.Model) -> List[BinaryConv]:
    """Every binary convolution of `model` and whether LCE will lower it.

    Binary convs are larq `QuantConv2D` layers (`BinaryGroupConv2D` included) whose input and kernel
    quantizers both have precision 1, and weight-sharing supernet convs with `binary = True` (whose masked
    block-diagonal kernel never lowers). A layer may also declare ``lce_problem`` (a string, or a method
    returning one or None) to say it will not lower.
    """
    import larq as lq

    found = []
    for layer in _iter_layers(model):
        if isinstance(layer, lq.layers.QuantConv2D):
            if not (_is_binary_quantizer(layer.input_quantizer) and _is_binary_quantizer(layer.kernel_quantizer)):
                continue
            groups = int(getattr(layer, "groups", 1) or 1)
            kernel = getattr(layer, "kernel", None)
            in_channels = int(kernel.shape[-2]) * groups if kernel is not None else None
            problem = _grouped_problem(in_channels, groups) if in_channels is not None else None
            filters = int(layer.filters)
        elif _is_masked_binary_layer(layer):
            groups = int(np.asarray(getattr(layer, "groups", 1)))
            in_channels = getattr(layer, "in_channels", None)
            filters = getattr(layer, "filters", None)
            problem = None  # the layer says why (`lce_problem`, below)
        else:
            continue
        declared = getattr(layer, "lce_problem", None)
        declared = declared() if callable(declared) else declared
        if declared:
            problem = str(declared)
        found.append(BinaryConv(layer.name, type(layer).__name__, in_channels, filters, groups, problem))
    return found


def lowering_problems(model: tf.keras.Model) -> Dict[str, str]:
    """Layer name -> why LCE will not lower it to `LceBconv2d`, for every binary conv expected to fail."""
    return {c.name: c.problem for c in binary_convs(model) if c.problem}


# ----------------------------------------------------------------------------------------------------------
# Flatbuffer parsing.


def _check_flatbuffer(flatbuffer) -> bytes:
    if not isinstance(flatbuffer, (bytes, bytearray, memoryview)):
        raise TypeError(f"Expected TFLite flatbuffer bytes, received {type(flatbuffer).__name__}")
    data = bytes(flatbuffer)
    if len(data) < 8 or data[4:8] != _TFLITE_IDENTIFIER:
        raise ValueError(
            f"Not a TFLite flatbuffer: expected file identifier {_TFLITE_IDENTIFIER!r} at bytes 4-8, "
            f"received {data[4:8]!r} ({len(data)} bytes)"
        )
    return data


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema

    return schema


_BUILTIN_NAMES: Optional[Dict[int, str]] = None


def _builtin_name(code: int) -> str:
    global _BUILTIN_NAMES
    if _BUILTIN_NAMES is None:
        ops = _schema().BuiltinOperator
        _BUILTIN_NAMES = {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}
    return _BUILTIN_NAMES.get(code, f"BUILTIN_{code}")


@dataclass(frozen=True)
class _Op:
    name: str
    inputs: Sequence[str]
    outputs: Sequence[str]


def _operators(flatbuffer: bytes) -> List[_Op]:
    schema = _schema()
    model = schema.Model.GetRootAsModel(_check_flatbuffer(flatbuffer), 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        custom = oc.CustomCode()
        codes.append(custom.decode() if custom else _builtin_name(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())))
    ops = []
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)

        def tensor_name(index: int) -> str:
            if index < 0:
                return ""
            name = sg.Tensors(index).Name()
            return name.decode(errors="replace") if name else ""

        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            ops.append(
                _Op(
                    codes[op.OpcodeIndex()],
                    tuple(tensor_name(op.Inputs(j)) for j in range(op.InputsLength())),
                    tuple(tensor_name(op.Outputs(j)) for j in range(op.OutputsLength())),
                )
            )
    return ops


def op_census(flatbuffer: bytes) -> Dict[str, int]:
    """Op name -> count over all subgraphs (custom ops by custom code: LceBconv2d, LceQuantize, ...)."""
    counts = Counter(op.name for op in _operators(flatbuffer))
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _scopes(tensor_name: str) -> List[str]:
    """Name scopes of a TFLite tensor name: ``a/b/Op;c/d/Op2`` (fused ops) -> [a, b, c, d].

    The last segment of each part is an op name (and may be cut at 50 characters), so it is left out.
    """
    return [seg for part in tensor_name.split(";") for seg in part.split("/")[:-1]]


def bconv_layer_names(flatbuffer: bytes, layer_names: Iterable[str]) -> Optional[List[str]]:
    """Keras layer of each `LceBconv2d` op (in op order), from tensor names; None if some op cannot be
    attributed to exactly one of `layer_names` (e.g. a long model name pushed the layer scope past the
    50-character cut).

    The `LceQuantize` output feeding an `LceBconv2d` is named ``[<model>/]<layer>/approx_sign.../Sign``
    (`export_tflite`'s default method leaves out the model scope).
    """
    names = set(layer_names)
    owners = []
    for op in _operators(flatbuffer):
        if op.name != LCE_BCONV:
            continue
        owner = None
        for tensors in (op.inputs[:1], op.outputs):  # the LceQuantize output first, then the fused output
            hits = {seg for tensor in tensors for seg in _scopes(tensor) if seg in names}
            if len(hits) == 1:
                owner = hits.pop()
                break
        if owner is None:
            return None
        owners.append(owner)
    if len(set(owners)) != len(owners):
        return None
    return owners


# ----------------------------------------------------------------------------------------------------------
# Export.


def _materialize(model: tf.keras.Model, materialize: Materialize) -> tf.keras.Model:
    if materialize is not None:
        model = materialize(model)
        if not isinstance(model, tf.keras.Model):
            raise TypeError(f"materialize must return a tf.keras.Model, returned {type(model).__name__}")
    return model


def _problem_message(model_name: str, problems: Dict[str, str], total: int, *, hint: bool = True) -> str:
    lines = "\n".join(f"  {name}: {why}" for name, why in problems.items())
    message = (
        f"Model {model_name!r}: {len(problems)} of {total} binary convolutions would not become LceBconv2d "
        f"(LCE keeps them as slow float ops):\n{lines}"
    )
    if hint:
        message += (
            f"\nUse group counts leaving a multiple of {LCE_CHANNELS_PER_GROUP} input channels per group "
            f"(lce_compatible=True, SearchSpace mode 'lce'), or pass allow_float_fallback=True to export anyway."
        )
    return message


def unlowered_layers(
    model: tf.keras.Model, flatbuffer: bytes, *, convs: Optional[Sequence[BinaryConv]] = None
) -> Dict[str, str]:
    """Binary convs of `model` that did not become `LceBconv2d` in `flatbuffer` (layer name -> reason).

    Ops are mapped back to layers by tensor name (`bconv_layer_names`); when that is not possible, the
    `LceBconv2d` count is compared with the binary convs and the predicted problems are reported, plus an
    ``"<unattributed>"`` entry if the count shows more failures than predicted. `convs` defaults to
    `binary_convs(model)`.
    """
    convs = list(binary_convs(model) if convs is None else convs)
    census = op_census(flatbuffer)
    lowered = census.get(LCE_BCONV, 0)
    names = [c.name for c in convs]
    owners = bconv_layer_names(flatbuffer, names)
    if owners is not None:
        missing = {}
        for c in convs:
            if c.name not in owners:
                missing[c.name] = c.problem or (
                    "LCE kept float ops (no rule predicted this; see the converter's error output on stderr)"
                )
        return missing
    predicted = {c.name: c.problem for c in convs if c.problem}
    if lowered + len(predicted) < len(convs):
        predicted["<unattributed>"] = (
            f"the flatbuffer has {lowered} LceBconv2d ops for {len(convs)} binary convs "
            f"({len(predicted)} predicted not to lower); LCE kept others as float ops"
        )
    elif lowered >= len(convs):
        return {}
    return predicted




def _input_specs(model: tf.keras.Model) -> List[tf.TensorSpec]:
    specs = []
    for i, tensor in enumerate(model.inputs):
        name = (getattr(tensor, "name", None) or f"input_{i}").split(":")[0].replace("/", "_")
        specs.append(tf.TensorSpec([None] + list(tensor.shape[1:]), tensor.dtype, name=name))
    return specs


def inference_function(model: tf.keras.Model):
    """The concrete function of ``model.call(inputs, training=False)`` (batch dimension None).

    Traced without AutoGraph (the Keras layers here have no tensor-dependent Python control flow); ~10x
    faster than Keras's own SavedModel export, which AutoGraph-converts every layer's `call` again. Falls
    back to AutoGraph if tracing without it fails.
    """
    specs = _input_specs(model)

    def call(*inputs):
        # `model.call`, not `model(...)`: no name scope of the model's own name, so TFLite tensor names
        # start with the layer name (``block3_conv3x3/approx_sign_2/Sign``) and stay attributable to
        # layers when the 50-character cut would eat a long model name.
        return model.call(inputs[0] if len(inputs) == 1 else list(inputs), training=False)

    try:
        return tf.function(call, autograph=False).get_concrete_function(*specs)
    except Exception as exc:  # noqa: BLE001 - any tracing failure: retry the slow, general way
        log.info("Tracing %r without AutoGraph failed (%s); retrying with AutoGraph", model.name, exc)
        return tf.function(call).get_concrete_function(*specs)


def _convert_signature(model: tf.keras.Model, target: str) -> bytes:
    """LCE conversion of a minimal SavedModel: the model's variables plus one serving signature."""
    import larq_compute_engine as lce

    function = inference_function(model)
    module = tf.Module()
    module.variables_to_save = list(model.variables)  # tracked, so the signature's captures are saved
    with tempfile.TemporaryDirectory(prefix="lce_export_") as directory:
        tf.saved_model.save(module, directory, signatures=function)
        return lce.convert_saved_model(directory, target=target)


def convert(model: tf.keras.Model, target: str = "arm", method: str = "signature") -> bytes:
    """LCE conversion only (no lowering check): the flatbuffer bytes of `model`."""
    import larq_compute_engine as lce

    if method == "signature":
        try:
            return _convert_signature(model, target)
        except Exception as exc:  # noqa: BLE001 - LCE's own path is the reference; use it if ours fails
            log.warning("Signature export of %r failed (%s: %s); using larq_compute_engine.convert_keras_model",
                        model.name, type(exc).__name__, exc)
    return lce.convert_keras_model(model, target=target)


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
        raise ExportError(_problem_message(model.name, predicted, len(convs)), predicted)

    start = time.perf_counter()
    flatbuffer = convert(model, target, method)
    log.info("Converted %r with LCE (target %s, method %s) in %.1f s: %d bytes", model.name, target, method,
             time.perf_counter() - start, len(flatbuffer))

    failed = unlowered_layers(model, flatbuffer, convs=convs)
    if failed:
        if not allow_float_fallback:
            raise ExportError(_problem_message(model.name, failed, len(convs)), failed)
        log.warning("allow_float_fallback=True, exporting anyway. %s",
                    _problem_message(model.name, failed, len(convs), hint=False))
    return flatbuffer


def write_tflite(data: bytes, path: Union[str, os.PathLike]) -> Path:
    """Write flatbuffer `data` to `path` atomically (temporary file in the same directory + os.replace).

    Creates missing parent directories. A reader never sees a partial file; on error `path` is unchanged.
    """
    data = _check_flatbuffer(data)
    path = Path(path)
    atomic_write_bytes(path, data)
    return path


# ----------------------------------------------------------------------------------------------------------
# Verification against Keras.


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

    return lce.testing.Interpreter(_check_flatbuffer(flatbuffer), num_threads=int(num_threads),
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
    flatbuffer = _check_flatbuffer(flatbuffer)
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


# ----------------------------------------------------------------------------------------------------------
# Float reference model and the export report.

#: Config keys of larq quantized layers that the plain Keras layer does not take.
_LARQ_KEYS = ("input_quantizer", "kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer", "metrics",
              "pad_values", "lce_compatible")


def _float_layer(layer: tf.keras.layers.Layer) -> tf.keras.layers.Layer:
    import larq as lq

    if _is_masked_binary_layer(layer):
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
    flatbuffer = _check_flatbuffer(flatbuffer)
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
