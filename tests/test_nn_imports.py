"""The modules of `nn` import one way (no module imports one built on it, not even inside a function), and the
layer registry (`nn.registry.custom_objects`) covers every class they register: a model with supernet and ReActNet
layers saved in one fresh interpreter loads in another with `larq_mobisearch.custom_objects()` alone."""

import ast
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import larq_mobisearch  # noqa: F401  (Keras 2 before TensorFlow)
from larq_mobisearch.nn import registry

REPO = Path(__file__).resolve().parents[1]
NN = REPO / "larq_mobisearch" / "nn"
#: The modules of nn from the lowest to the highest: a module may import only modules before it. A module not
#: listed (a new one) is held to the rest: no import circle, and only the registry above it imports it.
ORDER = ["specs", "space", "quantizers", "batchnorm", "layers", "reactnet", "elastic", "models", "supernet", "registry"]
REGISTERING = ("register_keras_serializable", "register_keras_custom_object")


def nn_modules():
    return sorted(p.stem for p in NN.glob("*.py") if p.stem != "__init__")


def nn_imports(name, source=None):
    """The nn modules that `nn/<name>.py` (or `source`) imports anywhere (module level or inside functions)."""
    modules, found = set(nn_modules()), set()
    for node in ast.walk(ast.parse(source if source is not None else (NN / f"{name}.py").read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 1:  # from . import x / from .x import y
                parts = [base] if base else [a.name for a in node.names]
            elif node.level == 2 and (base == "nn" or base.startswith("nn.")):  # from ..nn(.x) import y
                parts = [base.split(".")[1]] if "." in base else [a.name for a in node.names]
            elif node.level == 0 and base.startswith("larq_mobisearch.nn"):
                rest = base[len("larq_mobisearch.nn"):].lstrip(".")
                parts = [rest.split(".")[0]] if rest else [a.name for a in node.names]
            else:
                parts = []
            found |= {p.split(".")[0] for p in parts}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("larq_mobisearch.nn.")}
    return found & modules


def registers_classes(name):
    tree = ast.parse((NN / f"{name}.py").read_text())
    return any(isinstance(n, (ast.Attribute, ast.Name)) and getattr(n, "attr", getattr(n, "id", None)) in REGISTERING
               for n in ast.walk(tree))


def test_the_scan_sees_every_form_of_import_inside_functions():
    source = textwrap.dedent("""
        import numpy
        from .specs import ConvSpec
        from ..choices import MODULES
        def custom_objects():
            from . import reactnet, supernet
            import larq_mobisearch.nn.models
        class A:
            def f(self):
                from ..nn.registry import custom_objects
                from larq_mobisearch.nn import batchnorm
    """)
    assert nn_imports("layers", source) == {"specs", "reactnet", "supernet", "models", "registry", "batchnorm"}
    assert nn_imports("supernet") >= {"layers", "models", "quantizers", "space", "specs"}


def test_no_nn_module_imports_one_above_it():
    graph = {m: nn_imports(m) for m in nn_modules()}
    for module, imported in graph.items():
        for other in imported:
            if module in ORDER and other in ORDER:
                assert ORDER.index(other) < ORDER.index(module), (
                    f"nn/{module}.py imports nn/{other}.py, which is built on it (order: {ORDER})")
            elif other not in ORDER:
                assert module not in ORDER, f"nn/{module}.py imports nn/{other}.py: add {other!r} to ORDER"
    # no circle anywhere (new modules included)
    state = {}

    def visit(m, path):
        assert state.get(m) != "open", f"import circle: {' -> '.join(path + [m])}"
        if state.get(m) is None:
            state[m] = "open"
            for other in graph[m]:
                visit(other, path + [m])
            state[m] = "done"

    for m in graph:
        visit(m, [])
    assert not graph["layers"] & {"reactnet", "supernet", "models", "registry"}


def test_every_module_that_registers_classes_is_in_the_registry():
    registering = {m for m in nn_modules() if registers_classes(m)}
    assert registering >= {"quantizers", "layers", "reactnet", "supernet"}
    missing = registering - set(registry.REGISTERED_MODULES)
    assert not missing, f"nn modules registering Keras classes but not in nn.registry.REGISTERED_MODULES: {missing}"


def test_old_layers_path_of_custom_objects_warns_and_forwards():
    from larq_mobisearch.nn import layers

    with pytest.warns(DeprecationWarning, match=r"nn\.layers\.custom_objects moved to larq_mobisearch\.nn\.registry"):
        old = layers.custom_objects
    assert old is registry.custom_objects is larq_mobisearch.custom_objects
    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        layers.not_a_name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from larq_mobisearch.nn.layers import BinaryGroupConv2D  # noqa: F401  (the module's own names: no warning)


SAVE = """
    import json, sys
    import numpy as np
    import larq_mobisearch as lm
    import tensorflow as tf
    from larq_mobisearch.nn.space import SearchSpace
    from larq_mobisearch.nn.supernet import build_supernet, set_genotype
    tf.keras.utils.set_random_seed(3)
    arch = lm.architecture("m2", (16, 16, 1), 4, 0.25)
    model = build_supernet(SearchSpace(arch, "paper"), activation="rsign", nonlinearity="rprelu")
    for w in model.weights:  # non-default thresholds and slopes, so they have to be loaded to match
        if "threshold" in w.name or "rprelu" in w.name:
            w.assign(tf.random.normal(w.shape, stddev=0.3))
    genotype = [max(c) for c in SearchSpace(arch, "paper").candidates]
    set_genotype(model, genotype)
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 1)).astype("float32")
    model.save(sys.argv[1] + "/model.h5")
    np.save(sys.argv[1] + "/x.npy", x)
    np.save(sys.argv[1] + "/y.npy", model(x, training=False).numpy())
    print(json.dumps({"genotype": genotype, "types": sorted({type(l).__name__ for l in model.layers})}))
"""

LOAD = """
    import json, sys
    import numpy as np
    import larq_mobisearch as lm
    import tensorflow as tf
    before = sorted(m for m in ("larq_mobisearch.nn.supernet", "larq_mobisearch.nn.reactnet") if m in sys.modules)
    objs = lm.custom_objects()
    model = tf.keras.models.load_model(sys.argv[1] + "/model.h5", custom_objects=objs, compile=False)
    from larq_mobisearch.nn.supernet import set_genotype
    set_genotype(model, json.loads(sys.argv[2]))
    y = model(np.load(sys.argv[1] + "/x.npy"), training=False).numpy()
    print(json.dumps({"loaded_before": before, "same": bool(np.array_equal(y, np.load(sys.argv[1] + "/y.npy"))),
                      "types": sorted({type(l).__name__ for l in model.layers})}))
"""


def _python(code, *args):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_custom_objects_loads_supernet_and_reactnet_layers_in_a_fresh_interpreter(tmp_path):
    saved = _python(SAVE, tmp_path)
    assert {"SearchableBinaryConv2D", "SearchableConv2D", "LearnableThreshold", "RPReLU"} <= set(saved["types"])
    loaded = _python(LOAD, tmp_path, json.dumps(saved["genotype"]))
    assert loaded["loaded_before"] == []  # custom_objects() itself registered the supernet and ReActNet layers
    assert loaded["types"] == saved["types"] and loaded["same"]
