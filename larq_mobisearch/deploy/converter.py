"""LCE conversion of a Keras model to a TFLite flatbuffer (no checks: see `export.export_tflite`).

`convert(model)` traces ``model.call(x, training=False)`` once without AutoGraph (`inference_function`),
freezes the weights into it, saves a SavedModel holding only that serving signature, and converts it with
`larq_compute_engine.convert_saved_model`: the same ops and outputs as
`larq_compute_engine.convert_keras_model` (``method="keras"``), which first saves a full Keras SavedModel and
AutoGraph-converts every layer's `call` again (several times slower; BENCHMARKS.md, "LCE conversion time"). The
flatbuffer has a fixed batch dimension of 1.

The converter's native (C++) output on stderr -- MLIR diagnostics, TensorFlow and XLA log lines -- is captured
(file descriptor 2 redirected around the call, `native_stderr_captured`) and logged at INFO level (shown by
``mobisearch -v``; `emit_captured` writes anything else back to stderr); when the conversion fails it is
written back to stderr before the error propagates, and `convert_with_output` returns it
(`export.export_tflite` quotes its error lines). `quiet_native_stderr` does the same for any block.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from typing import Iterator, List, Tuple

import tensorflow as tf

log = logging.getLogger(__name__)

#: Lines that TensorFlow, XLA, MLIR and LCE's converter write to stderr from C++: TensorFlow's and absl's log
#: formats (``2024-01-01 12:00:00.000000: W tensorflow/...``, ``W0000 00:00:1700000000.000000 ... file.cc:1]``),
#: absl's start-up notice, MLIR diagnostics (``loc(...)``) and TFLite's delegate notices.
NATIVE_LOG_LINE = re.compile(
    r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ |"
    r"WARNING: All log messages before absl::InitializeLog|loc\(|INFO: Created TensorFlow Lite)"
)


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


def convert_signature(model: tf.keras.Model, target: str) -> bytes:
    """LCE conversion of a minimal SavedModel: one serving signature with the model's weights frozen into it.

    Freezing (variables to constants) leaves the SavedModel without variables: no checkpoint to write and none for
    the converter to lift back into constants. Same ops, shapes and outputs as saving the variables (only the names
    of weight tensors differ); faster on small models, about even at a few million parameters (BENCHMARKS.md, "LCE
    conversion time"). The signature is kept (``serving_default`` in the flatbuffer).
    """
    import larq_compute_engine as lce
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(inference_function(model))
    # No gradient functions in the SavedModel: the converter reads only the forward graph.
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    with tempfile.TemporaryDirectory(prefix="lce_export_") as directory:
        tf.saved_model.save(tf.Module(), directory, signatures=frozen, options=options)
        return lce.convert_saved_model(directory, target=target)


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[List[str]]:
    """Redirect file descriptor 2 (what C++ code writes to) to a temporary file inside the block.

    Yields a list that receives the captured text (one string) when the block ends, also on error. Python's
    `sys.stderr` writes inside the block are captured too.
    """
    captured: List[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield captured
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                tmp.seek(0)
                captured.append(tmp.read().decode("utf-8", errors="replace"))
    finally:
        os.close(saved)


def emit_captured(text: str, what: str = "TensorFlow") -> None:
    """Route captured stderr text: native log lines (`NATIVE_LOG_LINE`, and lines continuing them) to this
    module's log at INFO level, anything else (Python warnings, messages meant for the user) back to stderr."""
    native, other = [], []
    for line in text.splitlines(keepends=True):
        if NATIVE_LOG_LINE.match(line) or (native and line[:1] in (" ", "\t") and not other):
            native.append(line)
        else:
            other.append(line)
    if native:
        log.info("%s output on stderr:\n%s", what, "".join(native).rstrip())
    if other:
        sys.stderr.write("".join(other))
        sys.stderr.flush()


@contextlib.contextmanager
def quiet_native_stderr(what: str = "TensorFlow") -> Iterator[None]:
    """Inside the block, native log lines on stderr go to the log (INFO, shown by ``mobisearch -v``); other
    stderr output is written back when the block ends. If the block raises, everything captured is written
    back to stderr first (nothing that explains a failure is hidden)."""
    captured: List[str] = []
    try:
        with native_stderr_captured() as captured:
            yield
    except BaseException:
        sys.stderr.write("".join(captured))
        sys.stderr.flush()
        raise
    emit_captured("".join(captured), what)


def error_lines(output: str) -> List[str]:
    """The distinct ``error:`` lines of converter output, without the MLIR location prefix."""
    out: List[str] = []
    for line in output.splitlines():
        if "error:" in line:
            text = line[line.index("error:"):].strip()
            if text not in out:
                out.append(text)
    return out


def convert_with_output(model: tf.keras.Model, target: str = "arm", method: str = "signature") -> Tuple[bytes, str]:
    """LCE conversion only (no lowering check): the flatbuffer bytes of `model` and the converter's stderr.

    # Arguments
        model: the Keras model.
        target: "arm" or "xcore".
        method: "signature" (default; falls back to "keras" if it fails) or "keras" (`convert_keras_model`).

    # Returns
        (flatbuffer bytes, captured native stderr text). On failure the captured text is written back to
        stderr and the converter's exception propagates.
    """
    import larq_compute_engine as lce

    outputs: List[str] = []
    if method == "signature":
        try:
            with native_stderr_captured() as captured:
                data = convert_signature(model, target)
            return data, "".join(captured)
        except Exception as exc:  # noqa: BLE001 - LCE's own path is the reference; use it if ours fails
            outputs += captured
            log.warning("Signature export of %r failed (%s: %s); using larq_compute_engine.convert_keras_model",
                        model.name, type(exc).__name__, exc)
            log.info("Converter output of the failed signature export:\n%s", "".join(captured))
    try:
        with native_stderr_captured() as captured:
            data = lce.convert_keras_model(model, target=target)
    except Exception:
        sys.stderr.write("".join(outputs + captured))
        sys.stderr.flush()
        raise
    return data, "".join(captured)


def convert(model: tf.keras.Model, target: str = "arm", method: str = "signature") -> bytes:
    """LCE conversion only (no lowering check): the flatbuffer bytes of `model`.

    The converter's native output is logged at INFO level (see the module docstring).
    """
    data, output = convert_with_output(model, target, method)
    emit_captured(output, f"LCE converter ({model.name!r})")
    return data
