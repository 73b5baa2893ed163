"""Package import behaviour, in fresh interpreters: Keras 2 selection, the Keras 3 errors (TensorFlow first, or
TF_USE_LEGACY_KERAS=0 in the environment), TensorFlow's log level left alone, no global seeding."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code: str, *, legacy_env=None, log_level="3"):
    """Start `python -c code` with TF_USE_LEGACY_KERAS removed (or set to `legacy_env`) and TF_CPP_MIN_LOG_LEVEL
    set to `log_level` (None: removed); return the process."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL")}
    if legacy_env is not None:
        env["TF_USE_LEGACY_KERAS"] = legacy_env
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
    good_order = """
        import json, random
        import numpy as np
        np_state, py_state = np.random.get_state(), random.getstate()
        import larq_mobisearch
        import os
        import tensorflow as tf
        from tensorflow.keras.layers import Conv2D
        same_np = all(np.array_equal(a, b) for a, b in zip(np_state, np.random.get_state()))
        print(json.dumps({
            "env": os.environ.get("TF_USE_LEGACY_KERAS"),
            "attr_conv": tf.keras.layers.Conv2D.__module__,
            "path_conv": Conv2D.__module__,
            "binary_is_tf_keras_layer": issubclass(larq_mobisearch.BinaryGroupConv2D, tf.keras.layers.Layer),
            "same_np_state": bool(same_np),
            "same_py_state": py_state == random.getstate(),
            "tf_seed": list(tf.compat.v1.random.get_seed(None)),
        }))
    """
    procs["good"] = run_python(good_order)
    # TensorFlow's log level: untouched by the import and by loading TensorFlow through the package.
    procs["log_level"] = run_python(
        """
        import json, os
        import larq_mobisearch
        after_import = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
        larq_mobisearch.BinaryGroupConv2D  # loads TensorFlow, Larq and the layers
        print(json.dumps({"after_import": after_import, "after_layers": os.environ.get("TF_CPP_MIN_LOG_LEVEL")}))
        """,
        log_level=None,
    )
    yield procs
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.communicate()


@pytest.fixture(scope="module")
def results(processes):
    out = {}
    for name, proc in processes.items():
        code, stdout, stderr = finish(proc)
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
