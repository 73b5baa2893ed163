"""Keras 2 for TensorFlow, selected before TensorFlow loads (Larq 0.14 needs it), and AutoGraph told to
leave Keras 2 and Larq alone. `select_legacy_keras` runs when the package is imported (no TensorFlow import
unless TensorFlow is already loaded); `skip_autograph_for_keras2` runs when a module that builds models loads.
"""

import os
import sys

_KERAS3_MESSAGE = (
    "larq_mobisearch needs Keras 2 (the tf-keras package), but TensorFlow was imported before "
    "larq_mobisearch and is already using Keras 3. Import larq_mobisearch before tensorflow, or start "
    "Python with the environment variable TF_USE_LEGACY_KERAS=1 (e.g. `TF_USE_LEGACY_KERAS=1 python ...`)."
)


def select_legacy_keras() -> None:
    """Set ``TF_USE_LEGACY_KERAS=1``; if TensorFlow is loaded already, check it is bound to Keras 2."""
    tf_already_loaded = "tensorflow" in sys.modules
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("TF_USE_LEGACY_KERAS", "").lower() not in ("1", "true", "yes"):
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


