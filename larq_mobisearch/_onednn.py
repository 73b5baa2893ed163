"""oneDNN for TensorFlow's CPU kernels, selected before TensorFlow loads: grouped convolutions need it to train.

TensorFlow's CPU build computes the gradient of a grouped convolution (``Conv2D`` with fewer kernel input
channels than input channels: every ``groups > 1`` layer and the elastic supernet's gathered kernels) only in its
oneDNN kernels; its own kernels refuse it ("Gradients for grouped convolutions are not supported on CPU").
TensorFlow 2.16 turns oneDNN on by default only on CPUs with AVX-512 (e.g. recent Intel Xeons), so on an AVX2-only
CPU (many AMD EPYC / Ryzen machines, older Intel) training would fail at its first step. Importing the package
therefore sets ``TF_ENABLE_ONEDNN_OPTS=1`` when the environment does not set it (`enable_onednn`); an explicit
value is kept. `grouped_training_problem` says, before a model trains, whether this process can train grouped
convolutions (oneDNN active, or a GPU) and, if not, what to do. Standard library only until it is asked.
"""

import os

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def enable_onednn() -> None:
    """Set ``TF_ENABLE_ONEDNN_OPTS=1`` unless the environment sets it (read by TensorFlow when it loads)."""
    os.environ.setdefault(ONEDNN_ENV, "1")


def onednn_active() -> bool:
    """Whether the loaded TensorFlow runs its oneDNN CPU kernels (imports TensorFlow; True when this TensorFlow
    cannot tell, so that nothing is refused on a guess)."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # noqa: E402  (TensorFlow's own switch)
    except ImportError:  # pragma: no cover - another TensorFlow build
        return True
    return bool(_pywrap_util_port.IsMklEnabled())


def grouped_training_problem() -> str:
    """Why this process cannot train grouped convolutions ("" if it can: oneDNN active or a GPU present)."""
    import tensorflow as tf  # noqa: E402

    if onednn_active() or tf.config.list_physical_devices("GPU"):
        return ""
    value = os.environ.get(ONEDNN_ENV)
    why = (f"the environment sets {ONEDNN_ENV}={value!r}" if value not in (None, "1") else
           "TensorFlow was imported before larq_mobisearch, without oneDNN (TensorFlow turns it on by default "
           "only on CPUs with AVX-512)")
    return (f"Training grouped convolutions on the CPU needs TensorFlow's oneDNN kernels (its own kernels have no "
            f"grouped-convolution gradient), but oneDNN is off: {why}. Start Python with {ONEDNN_ENV}=1 (or unset "
            f"it and import larq_mobisearch before tensorflow), or train on a GPU.")
