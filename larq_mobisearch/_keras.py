"""Keras 2 for TensorFlow, selected before TensorFlow loads (Larq 0.14 and LCE's converter need it), and AutoGraph
told to leave Keras 2 and Larq alone. An environment that asks for Keras 3 (``TF_USE_LEGACY_KERAS=0``) is refused
with an ImportError, not overridden. `select_legacy_keras` runs when the package is imported (no TensorFlow import
unless TensorFlow is already loaded); `skip_autograph_for_keras2` runs when a module that builds models loads.
"""

import os
import sys

_KERAS3_MESSAGE = (
    "larq_mobisearch needs Keras 2 (the tf-keras package), but TensorFlow was imported before "
    "larq_mobisearch and is already using Keras 3. Import larq_mobisearch before tensorflow, or start "
    "Python with the environment variable TF_USE_LEGACY_KERAS=1 (e.g. `TF_USE_LEGACY_KERAS=1 python ...`)."
)
#: Values of TF_USE_LEGACY_KERAS that ask for Keras 2 (TensorFlow itself only reads "1", "true" and "True", so the
#: others are rewritten to "1") and those that ask for Keras 3 (refused: Larq and LCE's converter need Keras 2).
LEGACY_ON = ("1", "true", "yes", "on")
LEGACY_OFF = ("0", "false", "no", "off")
_KERAS3_REQUESTED = (
    "larq_mobisearch needs Keras 2 (the tf-keras package): Larq 0.14 builds its layers and quantizers on Keras 2 "
    "and the Larq Compute Engine converter reads Keras 2 models, and neither works with Keras 3. The environment "
    "sets TF_USE_LEGACY_KERAS={value!r}, which asks TensorFlow for Keras 3. Unset it (larq_mobisearch then sets "
    "TF_USE_LEGACY_KERAS=1 itself) or set TF_USE_LEGACY_KERAS=1 for this process; Keras 3 code has to run in "
    "another process."
)


def select_legacy_keras() -> None:
    """Set ``TF_USE_LEGACY_KERAS=1`` unless the environment says otherwise; if TensorFlow is loaded already, check
    it is bound to Keras 2. TensorFlow's log level is left alone (only the `mobisearch` CLI quiets it).

    # Raises
        ImportError: ``TF_USE_LEGACY_KERAS`` asks for Keras 3 (0/false/no/off) or is not a yes/no value, or
            TensorFlow was loaded with Keras 3 before this call.
    """
    tf_already_loaded = "tensorflow" in sys.modules
    value = os.environ.get("TF_USE_LEGACY_KERAS", "")
    if value.strip().lower() in LEGACY_OFF:
        raise ImportError(_KERAS3_REQUESTED.format(value=value))
    if value.strip() and value.strip().lower() not in LEGACY_ON:
        raise ImportError(f"TF_USE_LEGACY_KERAS: received {value!r}; allowed: unset, or one of {list(LEGACY_ON)} "
                          f"(larq_mobisearch needs Keras 2, the tf-keras package)")
    if value not in ("1", "true", "True"):  # the spellings TensorFlow reads
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    if not tf_already_loaded:
        return  # TensorFlow will bind tf.keras to tf-keras when it loads
    import tensorflow as tf  # noqa: E402  (must follow the environment set-up above)

    keras_module = type(tf.keras).__name__ + ":" + getattr(tf.keras, "__name__", "")
    try:
        conv_module = tf.keras.layers.Conv2D.__module__
        # The `tensorflow.keras` import path (what larq uses) is bound when TensorFlow is first imported, and
        # can point to Keras 3 even when the lazy `tf.keras` attribute already resolves to tf-keras.
        from tensorflow.keras.layers import Conv2D as _Conv2D  # noqa: E402

        path_module = _Conv2D.__module__
    except Exception as exc:  # pragma: no cover - defensive
        raise ImportError(_KERAS3_MESSAGE) from exc
    if not path_module.startswith("tf_keras"):
        conv_module = path_module
    if not conv_module.startswith("tf_keras"):
        hint = " (TensorFlow was imported first)" if tf_already_loaded else ""
        raise ImportError(_KERAS3_MESSAGE + f" Found Keras layers from {conv_module!r}{hint}; {keras_module}.")


def skip_autograph_for_keras2() -> None:
    """Treat tf-keras and larq like TensorFlow's own Keras: not source-converted by AutoGraph.

    TensorFlow's AutoGraph skips modules named ``keras`` but not ``tf_keras`` (the Keras 2 package), so
    tracing a Keras 2 train step re-converts every Keras layer's ``__call__``, which made the first step of
    a 13-block model many times slower (BENCHMARKS.md, "Measured"). Keras 2 shipped inside
    TensorFlow was never converted, so this restores the intended behaviour.
    """
    select_legacy_keras()
    from tensorflow.python.autograph.core import config as ag_config  # noqa: E402

    extra = tuple(ag_config.DoNotConvert(name) for name in ("tf_keras", "larq"))
    if not any(str(r) == str(extra[0]) for r in ag_config.CONVERSION_RULES):
        ag_config.CONVERSION_RULES = extra + tuple(ag_config.CONVERSION_RULES)


