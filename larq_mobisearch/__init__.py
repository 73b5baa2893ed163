"""larq_mobisearch: binary MobileNets with evolutionary group-convolution search, on Larq and LCE.

Importing this package selects Keras 2 (``tf-keras``) for TensorFlow by setting ``TF_USE_LEGACY_KERAS=1``
before TensorFlow is imported (Larq 0.14 and LCE's converter need Keras 2); if TensorFlow was already imported
and bound to Keras 3, or the environment asks for Keras 3 (``TF_USE_LEGACY_KERAS=0``), an ImportError explains
what to do. It also sets ``TF_ENABLE_ONEDNN_OPTS=1`` unless the environment sets it: TensorFlow's CPU kernels
compute grouped-convolution gradients only with oneDNN, which TensorFlow turns on by default only on CPUs with
AVX-512 (`_onednn`). TensorFlow's log level is left as it is. The package itself loads lazily: ``import larq_mobisearch``
does not import TensorFlow; the names below load their module on first use.

Stages, one sub-package each: `nn` (what a binary MobileNet is), `search` (what to look for), `deploy`
(what runs on a device), `data`; plus `config`, `training`, `distribute`, `pipeline`, `plots`, `cli`.
"""

import importlib

from . import _compat, _keras, _onednn

__version__ = "0.1.0"

_keras.select_legacy_keras()  # TensorFlow's log level is left alone: only the `mobisearch` CLI quiets it
_onednn.enable_onednn()  # grouped convolutions train on CPUs without AVX-512 too
_compat.install(__name__)

#: Public names of the package and the module each lives in (loaded on first use).
_API = {
    "quantizers": "nn.quantizers",
    "BinaryGroupConv2D": "nn.layers", "GroupConv2D": "nn.layers", "custom_objects": "nn.registry",
    "LearnableThreshold": "nn.reactnet", "RPReLU": "nn.reactnet",
    "Architecture": "nn.specs", "architecture": "nn.specs", "allowed_group_counts": "nn.specs",
    "SearchSpace": "nn.space", "encode": "nn.space", "decode": "nn.space",
    "build_model": "nn.models",
    "count_costs": "search.costs", "FlopsCostModel": "search.costs",
}
__all__ = sorted(_API)


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".{_API[name]}", __name__)
    value = module if _API[name].rsplit(".", 1)[-1] == name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
