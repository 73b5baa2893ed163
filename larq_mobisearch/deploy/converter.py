"""LCE conversion of a Keras model to a TFLite flatbuffer (no checks: see `export.export_tflite`).

`convert(model)` traces ``model.call(x, training=False)`` once without AutoGraph (`inference_function`),
saves a SavedModel holding only the variables and that serving signature, and converts it with
`larq_compute_engine.convert_saved_model`: the same ops, size and outputs as
`larq_compute_engine.convert_keras_model` (``method="keras"``), which first saves a full Keras SavedModel and
AutoGraph-converts every layer's `call` again (several times slower; see BENCHMARKS.md, "Measured"). The
flatbuffer has a fixed batch dimension of 1.
"""

from __future__ import annotations

import logging
import tempfile
from typing import List

import tensorflow as tf

log = logging.getLogger(__name__)


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
            return convert_signature(model, target)
        except Exception as exc:  # noqa: BLE001 - LCE's own path is the reference; use it if ours fails
            log.warning("Signature export of %r failed (%s: %s); using larq_compute_engine.convert_keras_model",
                        model.name, type(exc).__name__, exc)
    return lce.convert_keras_model(model, target=target)

