"""Which binary convolutions of a Keras model LCE lowers to ``LceBconv2d``, and whether a flatbuffer shows it.

LCE lowers an ungrouped binary conv always, a grouped one only when its input channels per group are a
multiple of 32; otherwise the converter prints an error on stderr and silently keeps slow float ops
(``LceQuantize`` + ``LceDequantize`` + ``PADV2`` + ``CONV_2D``). `binary_convs` lists a model's binary convs
with the reason each will not lower (before converting); `unlowered_layers` checks a converted flatbuffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from ..nn.specs import LCE_CHANNELS_PER_GROUP
from .flatbuffer import LCE_BCONV, op_census, read_model

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


def is_masked_binary_layer(layer) -> bool:
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
    for layer in iter_layers(model):
        if isinstance(layer, lq.layers.QuantConv2D):
            if not (_is_binary_quantizer(layer.input_quantizer) and _is_binary_quantizer(layer.kernel_quantizer)):
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
        found.append(BinaryConv(layer.name, type(layer).__name__, in_channels, filters, groups, problem))
    return found


def lowering_problems(model: tf.keras.Model) -> Dict[str, str]:
    """Layer name -> why LCE will not lower it to `LceBconv2d`, for every binary conv expected to fail."""
    return {c.name: c.problem for c in binary_convs(model) if c.problem}


# ----------------------------------------------------------------------------------------------------------
# Flatbuffer parsing.

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
    for op in read_model(flatbuffer).all_ops():
        if op.name != LCE_BCONV:
            continue
        owner = None
        for tensors in ([t.name for t in op.inputs[:1] if t is not None], list(op.output_names)):  # the LceQuantize output first, then the fused output
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


def problem_message(model_name: str, problems: Dict[str, str], total: int, *, hint: bool = True) -> str:
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

