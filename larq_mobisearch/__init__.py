"""larq_mobisearch: binary MobileNets with evolutionary group-convolution search, on Larq and LCE.

Importing this package selects Keras 2 (``tf-keras``) for TensorFlow by setting ``TF_USE_LEGACY_KERAS=1``
before TensorFlow is imported (Larq 0.14 needs Keras 2); if TensorFlow was already imported and bound to
Keras 3, an ImportError explains what to do. The package itself loads lazily: ``import larq_mobisearch``
does not import TensorFlow; the names below load their module on first use.

Stages, one sub-package each: `nn` (what a binary MobileNet is), `search` (what to look for), `deploy`
(what runs on a device), `data`; plus `config`, `training`, `distribute`, `pipeline`, `plots`, `cli`.
"""

import importlib

from . import _compat, _keras, _startup

__version__ = "0.1.0"

_startup.quiet_cli_startup()  # the `mobisearch` CLI only: TensorFlow's C++ start-up lines off unless -v
_keras.select_legacy_keras()
_compat.install(__name__)

#: Public names of the package and the module each lives in (loaded on first use).
_API = {
    "quantizers": "nn.quantizers",
    "BinaryGroupConv2D": "nn.layers", "GroupConv2D": "nn.layers", "custom_objects": "nn.layers",
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
