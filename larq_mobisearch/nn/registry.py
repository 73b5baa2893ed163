"""Every Keras class this package registers, for `tf.keras.models.load_model(..., custom_objects=...)`.

The registry sits above the modules that define the classes (quantizers, layers, reactnet, supernet, ...): it
imports them, none of them imports it, so the layers module does not depend on the modules built on it.
A new module of `nn` that registers classes (``@register_keras_serializable(package="larq_mobisearch")``) is
added to `REGISTERED_MODULES` (``tests/test_nn_imports.py`` fails until it is).
"""

from __future__ import annotations

import importlib
from typing import Dict, List

import tensorflow as tf

from . import quantizers
from .layers import PACKAGE

#: The modules of `nn` that register Keras classes, imported by `custom_objects`.
REGISTERED_MODULES = ("quantizers", "layers", "reactnet", "supernet", "elastic")


def registered_modules() -> List[str]:
    """The modules of `REGISTERED_MODULES` that exist, imported (so their classes are registered).

    # Returns
        Their full names, e.g. ``["larq_mobisearch.nn.quantizers", ...]``.
    """
    names = []
    for name in REGISTERED_MODULES:
        full = f"{__package__}.{name}"
        importlib.import_module(full)
        names.append(full)
    return names


def custom_objects() -> Dict[str, object]:
    """Objects to pass to `tf.keras.models.load_model(..., custom_objects=...)`.

    # Returns
        Every class this package registers with Keras (the layers, ReActNet's layers, the supernet layers, the
        quantizers), under its registered name (``"larq_mobisearch>BinaryGroupConv2D"``) and its short name.
    """
    registered_modules()
    objs: Dict[str, object] = {"XnorWeight": quantizers.XnorWeight}
    for key, obj in tf.keras.utils.get_custom_objects().items():
        if key.startswith(PACKAGE + ">"):
            objs[key] = obj
            objs[key.split(">", 1)[1]] = obj
    return objs
