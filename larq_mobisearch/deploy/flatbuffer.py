"""The one TFLite flatbuffer reader (and writer) of the package.

Reads a ``.tflite`` with TensorFlow's generated schema object API
(`tensorflow.lite.python.schema_py_generated`, the schema of the installed TensorFlow): operators in
execution order with their tensors (name, shape, dtype, constant or not) and options -- the builtin options
object (e.g. ``Conv2DOptionsT``) for builtin ops, the decoded flexbuffer map for custom ops such as
``LceBconv2d`` (``channels_in``, ``stride_height``, ``padding``, ``pad_values``, ...). The same object API
packs models back to bytes (`TFLiteModel.to_bytes`), which `profile` uses to cut single-op models out of a
network and the tests use to corrupt a weight on purpose.

Used by export (op census, lowering check), devices (node index -> output names), latency profiling and the
tests. `conv_signatures` gives each conv op's (kernel, stride, input channels per group, output channels,
groups).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

TFLITE_IDENTIFIER = b"TFL3"
LCE_BCONV = "LceBconv2d"
LCE_QUANTIZE = "LceQuantize"
#: Float convolution ops of TFLite.
FLOAT_CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
#: LceBconv2d packs input channels into 32-bit words.
BITPACK_WORD = 32

Flatbuffer = Union[bytes, bytearray, memoryview, str, os.PathLike]


def schema():
    """TensorFlow's generated TFLite schema module (object API: ``ModelT``, ``OperatorT``, ...)."""
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def check_flatbuffer(flatbuffer) -> bytes:
    """`flatbuffer` as bytes; TypeError if it is not bytes-like, ValueError if it is not a TFLite model."""
    if not isinstance(flatbuffer, (bytes, bytearray, memoryview)):
        raise TypeError(f"Expected TFLite flatbuffer bytes, received {type(flatbuffer).__name__}")
    data = bytes(flatbuffer)
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ValueError(
            f"Not a TFLite flatbuffer: expected file identifier {TFLITE_IDENTIFIER!r} at bytes 4-8, "
            f"received {data[4:8]!r} ({len(data)} bytes)"
        )
    return data


def read_flatbuffer(flatbuffer: Flatbuffer) -> bytes:
    """The bytes of a flatbuffer given as bytes or as a path to a ``.tflite`` file (checked)."""
    if isinstance(flatbuffer, (bytes, bytearray, memoryview)):
        return check_flatbuffer(flatbuffer)
    path = Path(flatbuffer)
    if not path.is_file():
        raise FileNotFoundError(f"No .tflite file at {path}")
    return check_flatbuffer(path.read_bytes())


_NAMES: Dict[str, Dict[int, str]] = {}


def _enum_names(enum: str) -> Dict[int, str]:
    if enum not in _NAMES:
        values = vars(getattr(schema(), enum))
        _NAMES[enum] = {v: k for k, v in values.items() if not k.startswith("_") and isinstance(v, int)}
    return _NAMES[enum]


@dataclass(frozen=True)
class Tensor:
    """One tensor of a subgraph."""

    index: int
    name: str
    shape: Tuple[int, ...]
    dtype: str  # "float32", "int32", ... (TFLite TensorType, lower case)
    constant: bool  # holds data in the flatbuffer (weights, biases, constant shapes)


@dataclass(frozen=True)
class Op:
    """One operator, in execution order.

    `name` is the builtin operator name (``CONV_2D``) or the custom code (``LceBconv2d``); `options` the
    builtin options object, or the custom options decoded from their flexbuffer map ({} if none).
    """

    index: int
    subgraph: int
    name: str
    inputs: Tuple[Optional[Tensor], ...]  # None for an omitted optional input (index -1)
    outputs: Tuple[Tensor, ...]
    options: Any

    @property
    def input_shapes(self) -> List[Tuple[int, ...]]:
        return [t.shape for t in self.inputs if t is not None]

    @property
    def output_shapes(self) -> List[Tuple[int, ...]]:
        return [t.shape for t in self.outputs]

    @property
    def output_names(self) -> Tuple[str, ...]:
        return tuple(t.name for t in self.outputs)


class ConvSignature(NamedTuple):
    """What identifies a convolution independently of names: the lowering check compares multisets of these."""

    kernel: Tuple[int, int]
    stride: Tuple[int, int]
    in_per_group: int
    out_channels: int
    groups: int

    def describe(self) -> str:
        (kh, kw), (sh, sw) = self.kernel, self.stride
        return (f"{kh}x{kw} conv stride {sh}{'' if sh == sw else 'x' + str(sw)}, {self.in_per_group * self.groups}"
                f"->{self.out_channels} channels, groups {self.groups} ({self.in_per_group} input channels per group)")


class TFLiteModel:
    """A parsed flatbuffer (TensorFlow's ``ModelT`` object API underneath, in `.model`).

    # Arguments
        flatbuffer: bytes or a path to a ``.tflite`` file.
    """

    def __init__(self, flatbuffer: Flatbuffer):
        self.data = read_flatbuffer(flatbuffer)
        self.model = schema().ModelT.InitFromPackedBuf(self.data, 0)
        self._ops: Dict[int, List[Op]] = {}

    def op_name(self, opcode_index: int) -> str:
        code = self.model.operatorCodes[opcode_index]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == schema().BuiltinOperator.CUSTOM:
            return code.customCode.decode() if code.customCode else "CUSTOM"
        return _enum_names("BuiltinOperator").get(builtin, f"BUILTIN_{builtin}")

    def tensor(self, index: int, subgraph: int = 0) -> Tensor:
        t = self.model.subgraphs[subgraph].tensors[index]
        buffers = self.model.buffers or []
        buffer = buffers[t.buffer] if 0 < t.buffer < len(buffers) else None
        constant = buffer is not None and (
            (buffer.data is not None and len(buffer.data) > 0) or bool(getattr(buffer, "size", 0))
        )
        shape = tuple(int(s) for s in (t.shape if t.shape is not None else ()))
        return Tensor(index, t.name.decode(errors="replace") if t.name else "", shape,
                      _enum_names("TensorType").get(t.type, str(t.type)).lower(), constant)

    @property
    def num_subgraphs(self) -> int:
        return len(self.model.subgraphs or [])

    def ops(self, subgraph: int = 0) -> List[Op]:
        """Operators of `subgraph` in execution order."""
        if subgraph not in self._ops:
            from flatbuffers import flexbuffers

            graph = self.model.subgraphs[subgraph]
            ops = []
            for i, op in enumerate(graph.operators or []):
                name = self.op_name(op.opcodeIndex)
                custom = op.customOptions
                if custom is not None and len(custom):
                    options = flexbuffers.Loads(bytes(bytearray(custom)))
                elif op.builtinOptions is not None:
                    options = op.builtinOptions
                else:
                    options = {} if self._is_custom(op.opcodeIndex) else None
                inputs = tuple(self.tensor(j, subgraph) if j >= 0 else None for j in (op.inputs if op.inputs is not None else ()))
                outputs = tuple(self.tensor(j, subgraph) for j in (op.outputs if op.outputs is not None else ()))
                ops.append(Op(i, subgraph, name, inputs, outputs, options))
            self._ops[subgraph] = ops
        return self._ops[subgraph]

    def all_ops(self) -> List[Op]:
        return [op for s in range(self.num_subgraphs) for op in self.ops(s)]

    def _is_custom(self, opcode_index: int) -> bool:
        code = self.model.operatorCodes[opcode_index]
        return max(code.builtinCode, code.deprecatedBuiltinCode) == schema().BuiltinOperator.CUSTOM

    def census(self) -> Dict[str, int]:
        """Op name -> count over all subgraphs, most frequent first."""
        counts = Counter(op.name for op in self.all_ops())
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def to_bytes(self) -> bytes:
        """Pack `.model` (possibly modified) back into a flatbuffer."""
        import flatbuffers

        builder = flatbuffers.Builder(max(1024, len(self.data)))
        builder.Finish(self.model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
        return bytes(builder.Output())


def read_model(flatbuffer: Union[Flatbuffer, TFLiteModel]) -> TFLiteModel:
    """`TFLiteModel` of bytes, a path, or an already parsed model (returned as is)."""
    return flatbuffer if isinstance(flatbuffer, TFLiteModel) else TFLiteModel(flatbuffer)


def op_census(flatbuffer: Union[Flatbuffer, TFLiteModel]) -> Dict[str, int]:
    """Op name -> count over all subgraphs (custom ops by custom code: LceBconv2d, LceQuantize, ...).

    Accepts bytes or a parsed `TFLiteModel` (a path is refused: pass ``Path(p).read_bytes()``).
    """
    if not isinstance(flatbuffer, TFLiteModel):
        check_flatbuffer(flatbuffer)
    return read_model(flatbuffer).census()


def node_outputs(flatbuffer: Union[Flatbuffer, TFLiteModel]) -> Dict[int, Tuple[str, Tuple[str, ...]]]:
    """{node index: (op name, output tensor names)} of subgraph 0 (node index = operator index)."""
    return {op.index: (op.name, op.output_names) for op in read_model(flatbuffer).ops(0)}


def conv_signature(op: Op) -> Optional[ConvSignature]:
    """The `ConvSignature` of a ``LceBconv2d``, ``CONV_2D`` or ``DEPTHWISE_CONV_2D`` op (None for other ops).

    ``LceBconv2d``: the filter is bit-packed (Cout, kh, kw, words per group) and the custom options give
    ``channels_in``; LCE lowers a grouped binary conv only with a multiple of 32 input channels per group, so
    groups = channels_in / (32 x words) exactly (1 when the ungrouped input is not a multiple of 32).
    """
    if op.name == LCE_BCONV:
        cout, kh, kw, words = op.inputs[1].shape
        cin = int(op.options["channels_in"])
        groups = max(1, cin // (BITPACK_WORD * words))
        stride = (int(op.options.get("stride_height", 1)), int(op.options.get("stride_width", 1)))
        return ConvSignature((kh, kw), stride, cin // groups, cout, groups)
    if op.name == "CONV_2D":
        cout, kh, kw, per_group = op.inputs[1].shape
        cin = op.inputs[0].shape[-1]
        return ConvSignature((kh, kw), (op.options.strideH, op.options.strideW), per_group, cout, cin // per_group)
    if op.name == "DEPTHWISE_CONV_2D":
        _, kh, kw, cout = op.inputs[1].shape
        cin = op.inputs[0].shape[-1]
        return ConvSignature((kh, kw), (op.options.strideH, op.options.strideW), 1, cout, cin)
    return None


def conv_signatures(flatbuffer: Union[Flatbuffer, TFLiteModel]) -> Dict[str, List[Tuple[Op, ConvSignature]]]:
    """{"binary": [(op, signature)] of LceBconv2d ops, "float": [...] of CONV_2D / DEPTHWISE_CONV_2D ops}."""
    out: Dict[str, List[Tuple[Op, ConvSignature]]] = {"binary": [], "float": []}
    for op in read_model(flatbuffer).all_ops():
        sig = conv_signature(op)
        if sig is not None:
            out["binary" if op.name == LCE_BCONV else "float"].append((op, sig))
    return out


def constant_array(model: TFLiteModel, tensor: Tensor, subgraph: int = 0) -> np.ndarray:
    """The data of a constant tensor as a NumPy array of its dtype and shape (a copy)."""
    t = model.model.subgraphs[subgraph].tensors[tensor.index]
    data = np.asarray(model.model.buffers[t.buffer].data, dtype=np.uint8)
    return np.frombuffer(data.tobytes(), dtype=np.dtype(tensor.dtype)).reshape(tensor.shape).copy()


def set_constant_array(model: TFLiteModel, tensor: Tensor, values: np.ndarray, subgraph: int = 0) -> None:
    """Replace the data of a constant tensor (same dtype and size); pack with `TFLiteModel.to_bytes`."""
    t = model.model.subgraphs[subgraph].tensors[tensor.index]
    values = np.ascontiguousarray(values, dtype=np.dtype(tensor.dtype))
    old = model.model.buffers[t.buffer].data
    if values.nbytes != len(old):
        raise ValueError(f"Tensor {tensor.name!r} holds {len(old)} bytes; received {values.nbytes}")
    model.model.buffers[t.buffer].data = np.frombuffer(values.tobytes(), dtype=np.uint8)
