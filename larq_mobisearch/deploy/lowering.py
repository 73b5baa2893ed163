"""Which convolutions of a Keras model LCE lowers, and whether a converted flatbuffer shows it.

LCE lowers an ungrouped binary conv to ``LceBconv2d`` always, a grouped one only when its input channels per
group are a multiple of 32; otherwise the converter prints an error on stderr and silently keeps slow float
ops (``LceQuantize`` + ``LceDequantize`` + ``PADV2`` + ``CONV_2D``).

- `binary_convs(model)` / `float_convs(model)`: the model's convolutions with their `ConvSignature` (kernel,
  stride, input channels per group, output channels, groups) and, for binary ones, the reason each will not
  lower (checked before converting).
- `unlowered_layers(model, flatbuffer)`: compares the **multiset** of binary-conv signatures of the model with
  that of the flatbuffer's ``LceBconv2d`` ops (and float convs with ``CONV_2D`` / ``DEPTHWISE_CONV_2D`` ops).
  No tensor names are involved, so long model names, fused ops or the converter's naming cannot break it; a
  binary conv missing from the ``LceBconv2d`` side is named with the reason, and when several layers share
  its signature all candidates are named.
- `zero_padded_small_map_convs(model)`: binary convs that lower but that LCE 0.16 computes wrongly (``pad_values=0``
  on maps smaller than 3x3); `export.export_tflite` warns about them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from ..nn.specs import LCE_CHANNELS_PER_GROUP
from .flatbuffer import ConvSignature, TFLiteModel, conv_signatures, read_model

#: Names of larq quantizer *functions* (not objects) that binarize to {-1, +1}.
_SIGN_FUNCTIONS = ("ste_sign", "approx_sign", "swish_sign", "magnitude_aware_sign")


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
class ConvLayer:
    """One convolution of a Keras model.

    `problem` (binary convs) is None if LCE is expected to lower it to `LceBconv2d`, else the reason it will not.
    """

    name: str
    layer_class: str
    in_channels: Optional[int]
    filters: Optional[int]
    groups: int
    problem: Optional[str] = None
    kernel: Optional[Tuple[int, int]] = None
    stride: Optional[Tuple[int, int]] = None
    binary: bool = True

    @property
    def lowerable(self) -> bool:
        return self.problem is None

    @property
    def signature(self) -> Optional[ConvSignature]:
        """The layer's `ConvSignature` (None if its shape is unknown, e.g. an unbuilt layer)."""
        if None in (self.in_channels, self.filters, self.kernel, self.stride) or not self.groups:
            return None
        return ConvSignature(tuple(self.kernel), tuple(self.stride), self.in_channels // self.groups,
                             int(self.filters), int(self.groups))


def iter_layers(model: tf.keras.layers.Layer):
    """All layers of `model`, descending into nested models (in model order)."""
    for layer in getattr(model, "layers", []):
        yield layer
        if isinstance(layer, tf.keras.Model) or hasattr(layer, "layers"):
            yield from iter_layers(layer)


def _is_binary_quantizer(quantizer) -> bool:
    if quantizer is None:
        return False
    precision = getattr(quantizer, "precision", None)
    if precision is not None:
        return int(precision) == 1
    return getattr(quantizer, "__name__", None) in _SIGN_FUNCTIONS


def _binary_on_both_sides(layer) -> bool:
    """A larq quantized conv whose input and kernel quantizers both binarize."""
    return _is_binary_quantizer(layer.input_quantizer) and _is_binary_quantizer(layer.kernel_quantizer)


def is_masked_binary_layer(layer) -> bool:
    """A weight-sharing (supernet) binary conv: declares `binary = True` and has a kernel chosen at run time
    (`active_kernel()`, the elastic layers; `masked_kernel()`, the masked layers they replaced)."""
    return getattr(type(layer), "binary", False) is True and (
        callable(getattr(layer, "active_kernel", None)) or callable(getattr(layer, "masked_kernel", None)))


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


def _pair(value) -> Optional[Tuple[int, int]]:
    if value is None:
        return None
    value = tuple(int(v) for v in np.atleast_1d(np.asarray(value)))
    return value if len(value) == 2 else (value[0], value[0])


def binary_convs(model: tf.keras.Model) -> List[ConvLayer]:
    """Every binary convolution of `model` and whether LCE will lower it.

    Binary convs are larq `QuantConv2D` layers (`BinaryGroupConv2D` included) whose input and kernel
    quantizers both have precision 1, and weight-sharing supernet convs with `binary = True` (whose kernel,
    chosen at run time, never lowers). A layer may also declare ``lce_problem`` (a string, or a method
    returning one or None) to say it will not lower.
    """
    import larq as lq

    found = []
    for layer in iter_layers(model):
        if isinstance(layer, lq.layers.QuantConv2D):
            if not _binary_on_both_sides(layer):
                continue
            groups = int(getattr(layer, "groups", 1) or 1)
            kernel = getattr(layer, "kernel", None)
            in_channels = int(kernel.shape[-2]) * groups if kernel is not None else None
            problem = _grouped_problem(in_channels, groups) if in_channels is not None else None
            filters = int(layer.filters)
        elif is_masked_binary_layer(layer):
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
        found.append(ConvLayer(layer.name, type(layer).__name__, in_channels, filters, groups, problem,
                               _pair(getattr(layer, "kernel_size", None)), _pair(getattr(layer, "strides", None))))
    return found


#: LCE 0.16 computes a binary conv with 'same' zero padding (``pad_values=0``, larq's default) wrongly on input
#: maps smaller than this on a side (measured: relative differences 0.8-2.4 on 1x1 and 2x2 maps, right from 3x3 on,
#: and right at every size with ``pad_values=1``; BENCHMARKS.md, `benchmarks/peer_numerics.py --padding`).
ZERO_PADDING_MIN_SIDE = 3


def zero_padded_small_map_convs(model: tf.keras.Model) -> Dict[str, Tuple[int, int]]:
    """Binary convs of `model` that LCE 0.16 miscomputes: a kernel larger than 1x1 with ``padding="same"`` and
    ``pad_values=0`` on an input map with a side below `ZERO_PADDING_MIN_SIDE`.

    # Returns
        Layer name -> its input map (height, width); empty for this package's networks (``pad_values=1``).
        Layers whose input shape is not defined (a layer called on several inputs) are not listed.
    """
    import larq as lq

    found = {}
    for layer in iter_layers(model):
        if not isinstance(layer, lq.layers.QuantConv2D) or not _binary_on_both_sides(layer) \
                or layer.padding != "same" or float(layer.pad_values) != 0.0 or max(_pair(layer.kernel_size)) <= 1:
            continue
        try:
            shape = tuple(layer.input_shape)
        except (AttributeError, RuntimeError):
            continue
        side = tuple(int(d) for d in shape[1:3] if d is not None)
        if len(side) == 2 and min(side) < ZERO_PADDING_MIN_SIDE:
            found[layer.name] = side
    return found


def float_convs(model: tf.keras.Model) -> List[ConvLayer]:
    """Every real-valued ``Conv2D`` (grouped included; larq quantized convs that are not binary on both sides)
    and ``DepthwiseConv2D`` of `model`: they must appear as ``CONV_2D`` / ``DEPTHWISE_CONV_2D`` ops.

    Transposed, separable and weight-sharing (supernet) convs are not listed.
    """
    binary = {c.name for c in binary_convs(model)}
    found = []
    for layer in iter_layers(model):
        if layer.name in binary or is_masked_binary_layer(layer) or callable(getattr(layer, "masked_kernel", None)) \
                or callable(getattr(layer, "active_kernel", None)):
            continue
        if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
            kernel = getattr(layer, "depthwise_kernel", None)
            if kernel is None:
                continue
            cin, mult = int(kernel.shape[-2]), int(kernel.shape[-1])
            conv = ConvLayer(layer.name, type(layer).__name__, cin, cin * mult, cin, None,
                             _pair(layer.kernel_size), _pair(layer.strides), binary=False)
        elif isinstance(layer, tf.keras.layers.Conv2D) and not isinstance(layer, tf.keras.layers.Conv2DTranspose):
            kernel = getattr(layer, "kernel", None)
            if kernel is None:
                continue
            groups = int(getattr(layer, "groups", 1) or 1)
            conv = ConvLayer(layer.name, type(layer).__name__, int(kernel.shape[-2]) * groups, int(layer.filters),
                             groups, None, _pair(layer.kernel_size), _pair(layer.strides), binary=False)
        else:
            continue
        found.append(conv)
    return found


def lowering_problems(model: tf.keras.Model) -> Dict[str, str]:
    """Layer name -> why LCE will not lower it to `LceBconv2d`, for every binary conv expected to fail."""
    return {c.name: c.problem for c in binary_convs(model) if c.problem}


# ----------------------------------------------------------------------------------------------------------
# The flatbuffer check: multisets of conv signatures


def problem_message(model_name: str, problems: Dict[str, str], convs: Sequence[ConvLayer], *,
                    hint: bool = True) -> str:
    """The `ExportError` message: which binary convs do not lower and why, then any other mismatch."""
    binary = {c.name for c in convs}
    lowering = {k: v for k, v in problems.items() if k in binary}
    other = {k: v for k, v in problems.items() if k not in binary}
    parts = []
    if lowering:
        lines = "\n".join(f"  {name}: {why}" for name, why in lowering.items())
        parts.append(f"{len(lowering)} of {len(convs)} binary convolutions would not become LceBconv2d "
                     f"(LCE keeps them as slow float ops):\n{lines}")
    if other:
        lines = "\n".join(f"  {name}: {why}" for name, why in other.items())
        parts.append(f"the flatbuffer's convolutions do not match the model's:\n{lines}")
    message = f"Model {model_name!r}: " + "\n".join(parts)
    if hint and lowering:
        message += (
            f"\nUse group counts leaving a multiple of {LCE_CHANNELS_PER_GROUP} input channels per group "
            f"(lce_compatible=True, SearchSpace mode 'lce'), or pass allow_float_fallback=True to export anyway."
        )
    return message


def _missing(expected: Sequence[ConvLayer], found: Counter) -> List[Tuple[ConvSignature, int, List[ConvLayer]]]:
    """(signature, how many are missing, the layers with that signature) for each signature short in `found`."""
    want = Counter(c.signature for c in expected)
    out = []
    for sig, n in want.items():
        short = n - found.get(sig, 0)
        if short > 0:
            out.append((sig, short, [c for c in expected if c.signature == sig]))
    return out


def _blame(short: int, layers: Sequence[ConvLayer], reason) -> Dict[str, str]:
    """Layer name -> reason; when only some of several layers sharing a signature failed, all are candidates."""
    if short >= len(layers):
        return {c.name: reason(c) for c in layers}
    names = ", ".join(c.name for c in layers)
    return {c.name: f"{reason(c)} [{short} of the {len(layers)} layers with this signature ({names}) did not; "
                    "the flatbuffer cannot tell which]" for c in layers}


def unlowered_layers(
    model: tf.keras.Model,
    flatbuffer,
    *,
    convs: Optional[Sequence[ConvLayer]] = None,
    converter_errors: Sequence[str] = (),
) -> Dict[str, str]:
    """Convolutions of `model` that did not become the expected ops in `flatbuffer` (layer name -> reason).

    Binary convs must each match one ``LceBconv2d`` op with the same `ConvSignature` (multisets compared);
    float convs one ``CONV_2D`` / ``DEPTHWISE_CONV_2D``, where float ops left by binary convs that did not lower
    are accounted for. ``LceBconv2d`` or float conv ops that match no layer of the model are reported under
    ``"<flatbuffer>"``.

    # Arguments
        model: the Keras model the flatbuffer was converted from.
        flatbuffer: bytes, a path, or a parsed `TFLiteModel`.
        convs: the binary convs (default `binary_convs(model)`).
        converter_errors: error lines the converter printed, quoted in the reason of layers no rule predicted.
    """
    convs = list(binary_convs(model) if convs is None else convs)
    floats = float_convs(model)
    ops = conv_signatures(read_model(flatbuffer) if not isinstance(flatbuffer, TFLiteModel) else flatbuffer)
    lowered = Counter(sig for _, sig in ops["binary"])
    said = "; the converter said: " + " | ".join(converter_errors[:3]) if converter_errors else ""

    def reason(c: ConvLayer) -> str:
        if c.problem:
            return c.problem
        if c.signature is None:
            return "its shape is unknown (layer not built), so no LceBconv2d op can be matched to it"
        return f"no LceBconv2d op with its signature ({c.signature.describe()}): LCE kept float ops{said}"

    missing: Dict[str, str] = {}
    fell_back: List[ConvLayer] = []
    for sig, short, layers in _missing(convs, lowered):
        missing.update(_blame(short, layers, reason))
        fell_back += layers[:short]
    extra_binary = lowered - Counter(c.signature for c in convs)
    floats_found = Counter(sig for _, sig in ops["float"])
    expected_floats = list(floats) + fell_back
    for sig, short, layers in _missing(floats, floats_found - Counter(c.signature for c in fell_back)):
        missing.update(_blame(short, layers, lambda c: (
            f"float conv ({c.signature.describe() if c.signature else 'shape unknown'}) has no CONV_2D / "
            "DEPTHWISE_CONV_2D op with its signature in the flatbuffer")))
    extra_float = floats_found - Counter(c.signature for c in expected_floats)
    extra = [f"LceBconv2d {sig.describe()}" for sig in extra_binary.elements()]
    extra += [f"float conv {sig.describe()}" for sig in extra_float.elements()]
    if extra:
        missing["<flatbuffer>"] = "conv ops matching no conv layer of the model: " + "; ".join(extra)
    return missing
