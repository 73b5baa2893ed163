"""larq_mobisearch: binary MobileNets with evolutionary group-convolution search, on Larq and LCE.

Importing this package selects Keras 2 (``tf-keras``) for TensorFlow by setting ``TF_USE_LEGACY_KERAS=1``
before TensorFlow is imported: Larq 0.14 needs Keras 2. If TensorFlow was already imported and bound to
Keras 3, an ImportError explains what to do.
"""

import os
import sys

__version__ = "0.1.0"

_KERAS3_MESSAGE = (
    "larq_mobisearch needs Keras 2 (the tf-keras package), but TensorFlow was imported before "
    "larq_mobisearch and is already using Keras 3. Import larq_mobisearch before tensorflow, or start "
    "Python with the environment variable TF_USE_LEGACY_KERAS=1 (e.g. `TF_USE_LEGACY_KERAS=1 python ...`)."
)


def _select_legacy_keras() -> None:
    tf_already_loaded = "tensorflow" in sys.modules
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("TF_USE_LEGACY_KERAS", "").lower() not in ("1", "true", "yes"):
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
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


def _skip_autograph_for_keras2() -> None:
    """Treat tf-keras and larq like TensorFlow's own Keras: not source-converted by AutoGraph.

    TensorFlow's AutoGraph skips modules named ``keras`` but not ``tf_keras`` (the Keras 2 package), so
    tracing a Keras 2 train step re-converts every Keras layer's ``__call__``: measured here, the first
    step of a 13-block model took 57-153 s, of which ~95% was AutoGraph conversion. Keras 2 shipped inside
    TensorFlow was never converted, so this restores the intended behaviour.
    """
    from tensorflow.python.autograph.core import config as ag_config  # noqa: E402

    extra = tuple(ag_config.DoNotConvert(name) for name in ("tf_keras", "larq"))
    if not any(str(r) == str(extra[0]) for r in ag_config.CONVERSION_RULES):
        ag_config.CONVERSION_RULES = extra + tuple(ag_config.CONVERSION_RULES)


from ._startup import quiet_cli_startup  # noqa: E402  (pure Python: before TensorFlow loads)

quiet_cli_startup()  # the `mobisearch` CLI only: TensorFlow's C++ start-up lines off unless -v
_select_legacy_keras()
_skip_autograph_for_keras2()

from . import _compat  # noqa: E402

_compat.install(__name__)

from .nn import quantizers  # noqa: E402,F401  (registers the custom quantizers with larq)
from .nn.layers import BinaryGroupConv2D, GroupConv2D, custom_objects  # noqa: E402,F401
from .nn.specs import Architecture, architecture, allowed_group_counts  # noqa: E402,F401
from .nn.space import SearchSpace, encode, decode  # noqa: E402,F401
from .nn.models import build_model  # noqa: E402,F401
from .search.costs import count_costs, FlopsCostModel  # noqa: E402,F401
