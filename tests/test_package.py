"""Package import behaviour, in fresh interpreters: Keras 2 selection, the Keras 3 errors (TensorFlow first, or
TF_USE_LEGACY_KERAS=0 in the environment), TensorFlow's log level left alone, no global seeding, oneDNN on
unless the environment says otherwise (grouped-convolution gradients on CPUs without AVX-512)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code: str, *, legacy_env=None, log_level="3", onednn_env=None):
    """Start `python -c code` with TF_USE_LEGACY_KERAS and TF_ENABLE_ONEDNN_OPTS removed (or set to `legacy_env`,
    `onednn_env`) and TF_CPP_MIN_LOG_LEVEL set to `log_level` (None: removed); return the process."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    if legacy_env is not None:
        env["TF_USE_LEGACY_KERAS"] = legacy_env
    if onednn_env is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = onednn_env
    if log_level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = log_level
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc, timeout=240):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def last_json(out: str):
    return json.loads(out.strip().splitlines()[-1])


KERAS3_IMPORT_CHECK = """
    import json
    {before}
    try:
        import larq_mobisearch
    except ImportError as e:
        print(json.dumps({{"error": "ImportError", "message": str(e)}}))
    except Exception as e:
        print(json.dumps({{"error": type(e).__name__, "message": str(e)}}))
    else:
        print(json.dumps({{"error": None, "message": ""}}))
"""


def assert_keras3_import_error(result):
    assert result["error"] == "ImportError", result
    msg = result["message"]
    assert "Keras 2" in msg and "Keras 3" in msg
    assert "Import larq_mobisearch before tensorflow" in msg
    assert "TF_USE_LEGACY_KERAS=1" in msg


#: Appended to the default set-up's process (TensorFlow and NumPy imported): `onednn`, the largest difference of a
#: grouped convolution's gradients from those of one ungrouped convolution per group.
ONEDNN_GRADIENT = """
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 6, 6, 8)), tf.float32)
    k = tf.constant(rng.normal(size=(3, 3, 2, 8)), tf.float32)  # 4 groups of 2 input -> 2 output channels
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, k])
        y = tf.nn.conv2d(x, k, 1, "SAME")  # grouped: kernel input depth 2 of 8 input channels
        # independent reference: one ungrouped convolution per group, concatenated
        ref = tf.concat([tf.nn.conv2d(x[..., 2 * i:2 * i + 2], k[..., 2 * i:2 * i + 2], 1, "SAME")
                         for i in range(4)], -1)
        w = tf.constant(rng.normal(size=y.shape), tf.float32)
        loss, loss_ref = tf.reduce_sum(y * w), tf.reduce_sum(ref * w)
    gx, gk = tape.gradient(loss, [x, k])
    rx, rk = tape.gradient(loss_ref, [x, k])
    onednn = {"env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
              "dx": float(tf.reduce_max(tf.abs(gx - rx))), "dk": float(tf.reduce_max(tf.abs(gk - rk))),
              "scale": float(tf.reduce_max(tf.abs(rx)))}
"""
ONEDNN_OFF = """
    import json, os
    import larq_mobisearch as lm
    import tensorflow as tf
    from larq_mobisearch.config import TrainConfig
    from larq_mobisearch.training import compile_model
    def model(groups):
        return tf.keras.Sequential([tf.keras.Input((6, 6, 8)), lm.GroupConv2D(8, 3, groups=groups),
                                    tf.keras.layers.GlobalAveragePooling2D()])
    compile_model(model(1), TrainConfig(), 1)  # nothing grouped: trains without oneDNN
    try:
        compile_model(model(4), TrainConfig(), 1)
    except RuntimeError as e:
        print(json.dumps({"env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "error": str(e)}))
    else:
        print(json.dumps({"env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "error": None}))
"""


# The processes are started together (each imports TensorFlow: ~5-10 s) and awaited in the tests.
@pytest.fixture(scope="module")
def processes():
    procs = {
        # TensorFlow imported first and its Keras (3) used before larq_mobisearch.
        "tf_keras3_used": run_python(
            KERAS3_IMPORT_CHECK.format(before="import tensorflow as tf; tf.keras.layers.Dense")
        ),
        # TensorFlow imported first, Keras not touched yet.
        "tf_first": run_python(KERAS3_IMPORT_CHECK.format(before="import tensorflow")),
        # The message's alternative: TF_USE_LEGACY_KERAS=1 in the environment, TensorFlow imported first.
        "tf_first_env": run_python(
            """
            import json, tensorflow as tf
            import larq_mobisearch
            print(json.dumps({"conv": tf.keras.layers.Conv2D.__module__}))
            """,
            legacy_env="1",
        ),
    }
    # One process for the package's default set-up (larq_mobisearch imported first, nothing in the environment,
    # TensorFlow's log level unset): no seeding, Keras 2 both ways, the log level left alone by the import and by
    # loading TensorFlow through the package, and oneDNN's grouped-convolution gradient. One JSON line with a result
    # per check (the `results` fixture splits them).
    procs["default_setup"] = run_python(
        textwrap.dedent("""
        import json, os, random
        import numpy as np
        np_state, py_state = np.random.get_state(), random.getstate()
        import larq_mobisearch
        after_import = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
        larq_mobisearch.BinaryGroupConv2D  # loads TensorFlow, Larq and the layers
        log_level = {"after_import": after_import, "after_layers": os.environ.get("TF_CPP_MIN_LOG_LEVEL")}
        import tensorflow as tf
        from tensorflow.keras.layers import Conv2D
        same_np = all(np.array_equal(a, b) for a, b in zip(np_state, np.random.get_state()))
        good = {
            "env": os.environ.get("TF_USE_LEGACY_KERAS"),
            "attr_conv": tf.keras.layers.Conv2D.__module__,
            "path_conv": Conv2D.__module__,
            "binary_is_tf_keras_layer": issubclass(larq_mobisearch.BinaryGroupConv2D, tf.keras.layers.Layer),
            "same_np_state": bool(same_np),
            "same_py_state": py_state == random.getstate(),
            "tf_seed": list(tf.compat.v1.random.get_seed(None)),
        }
        """) + textwrap.dedent(ONEDNN_GRADIENT) + textwrap.dedent("""
        print(json.dumps({"good": good, "log_level": log_level, "onednn_default": onednn}))
        """),
        log_level=None,
    )
    procs["onednn_off"] = run_python(ONEDNN_OFF, onednn_env="0")
    yield procs
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.communicate()


@pytest.fixture(scope="module")
def results(processes):
    """{check: (exit code, stdout whose last line is the check's JSON, stderr)}; the default set-up's process
    gives one entry per check it ran."""
    out = {}
    for name, proc in processes.items():
        code, stdout, stderr = finish(proc)
        if name == "default_setup":
            checks = last_json(stdout) if code == 0 else dict.fromkeys(("good", "log_level", "onednn_default"), {})
            for check, result in checks.items():
                out[check] = (code, json.dumps(result), stderr)
        else:
            out[name] = (code, stdout, stderr)
    return out


def test_tensorflow_with_keras3_first_raises_clear_import_error(results):
    code, out, err = results["tf_keras3_used"]
    assert code == 0, err
    assert_keras3_import_error(last_json(out))


def test_bare_tensorflow_import_first_raises_clear_import_error(results):
    code, out, err = results["tf_first"]
    assert code == 0, err
    assert_keras3_import_error(last_json(out))


def test_tensorflow_first_with_legacy_env_var_works(results):
    code, out, err = results["tf_first_env"]
    assert code == 0, err
    assert last_json(out)["conv"].startswith("tf_keras")


def test_import_first_selects_tf_keras(results):
    code, out, err = results["good"]
    assert code == 0, err
    r = last_json(out)
    assert r["env"] == "1"
    # Both ways of reaching Keras (attribute and import path, which larq uses) are Keras 2.
    assert r["attr_conv"].startswith("tf_keras") and r["path_conv"].startswith("tf_keras")
    assert r["binary_is_tf_keras_layer"]


def test_import_does_not_seed_anything(results):
    code, out, err = results["good"]
    assert code == 0, err
    r = last_json(out)
    assert r["same_np_state"] and r["same_py_state"]  # NumPy and `random` states untouched by the import
    assert r["tf_seed"] == [None, None]  # no TensorFlow global seed


def test_import_leaves_tensorflow_log_level_alone(results):
    code, out, err = results["log_level"]
    assert code == 0, err
    assert last_json(out) == {"after_import": None, "after_layers": None}


ENV_CHECK = """
    import json, os, sys
    try:
        import larq_mobisearch
    except ImportError as e:
        print(json.dumps({"error": str(e)}))
    else:
        print(json.dumps({"env": os.environ["TF_USE_LEGACY_KERAS"], "tf_loaded": "tensorflow" in sys.modules}))
"""


@pytest.mark.parametrize("value", ["0", "false", "No", "off"])
def test_environment_asking_for_keras3_is_refused_with_the_reason(value):
    code, out, err = finish(run_python(ENV_CHECK, legacy_env=value))
    assert code == 0, err
    msg = last_json(out)["error"]
    assert f"TF_USE_LEGACY_KERAS={value!r}" in msg  # what was received
    assert "Keras 2" in msg and "tf-keras" in msg and "Larq 0.14" in msg and "Compute Engine converter" in msg  # why
    assert "Unset it" in msg and "TF_USE_LEGACY_KERAS=1" in msg  # what to do


@pytest.mark.parametrize("value, expected", [(None, "1"), ("", "1"), ("1", "1"), ("true", "true"), ("True", "True"),
                                             ("yes", "1"), ("ON", "1")])
def test_keras2_values_are_kept_or_spelled_as_tensorflow_reads_them(value, expected):
    code, out, err = finish(run_python(ENV_CHECK, legacy_env=value))
    assert code == 0, err
    # TensorFlow binds tf.keras to tf-keras only for "1", "true" and "True" (tensorflow/__init__.py)
    assert last_json(out) == {"env": expected, "tf_loaded": False}


def test_unknown_legacy_keras_value_names_what_is_allowed():
    code, out, err = finish(run_python(ENV_CHECK, legacy_env="maybe"))
    assert code == 0, err
    msg = last_json(out)["error"]
    assert "received 'maybe'" in msg and "allowed" in msg and "'1'" in msg


CLI_LOG_LEVEL = """
    import json, os, sys
    import larq_mobisearch.cli
    print(json.dumps({"level": os.environ.get("TF_CPP_MIN_LOG_LEVEL"), "tf_loaded": "tensorflow" in sys.modules}))
"""


@pytest.mark.parametrize("cli, verbosity, expected", [(False, [], None), (True, [], "3"), (True, ["-v"], "1"),
                                                     (True, ["-vv"], "0")])
def test_only_the_cli_process_quiets_tensorflow(cli, verbosity, expected, monkeypatch):
    """`larq_mobisearch.cli` sets TensorFlow's C++ log level from -v before TensorFlow loads, in the CLI process
    only (``MOBISEARCH_CLI=1`` stands for the console script here); a program importing the module is left alone."""
    monkeypatch.delenv("MOBISEARCH_CLI", raising=False)
    if cli:
        monkeypatch.setenv("MOBISEARCH_CLI", "1")
    code = CLI_LOG_LEVEL.replace("import larq_mobisearch.cli", f"sys.argv[1:] = {verbosity + ['flops']!r}\n"
                                 "    import larq_mobisearch.cli")
    code, out, err = finish(run_python(code, log_level=None))
    assert code == 0, err
    assert last_json(out) == {"level": expected, "tf_loaded": False}


def test_import_turns_on_onednn_so_grouped_convolutions_have_gradients(results):
    code, out, err = results["onednn_default"]
    assert code == 0, err[-3000:]
    r = last_json(out)
    assert r["env"] == "1"
    assert r["dx"] <= 1e-4 * r["scale"] and r["dk"] <= 1e-4 * r["scale"], r


def test_explicit_onednn_off_is_kept_and_a_grouped_model_is_refused_before_training(results):
    code, out, err = results["onednn_off"]
    assert code == 0, err[-3000:]
    r = last_json(out)
    assert r["env"] == "0"
    assert r["error"] is not None and "TF_ENABLE_ONEDNN_OPTS='0'" in r["error"] and "grouped" in r["error"], r
