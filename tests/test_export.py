"""Export to LCE flatbuffers: real TensorFlow, Larq and Larq Compute Engine conversions (no mocks).

Conversions are slow, so the file runs four: one grouped M1 (module fixture, shared by the census /
verification / report tests), its float reference for the size ratio, and a tiny model with a
non-lowerable binary conv (default method and LCE's `convert_keras_model`). Refusals happen before
conversion and cost nothing.
"""

import dataclasses
import json
import os

import larq_mobisearch  # noqa: F401  (selects Keras 2 before TensorFlow loads)

import numpy as np
import pytest
import tensorflow as tf

from larq_mobisearch import deploy as ex
from larq_mobisearch.nn.batchnorm import recalibrate_batchnorm
from larq_mobisearch.nn.layers import BinaryGroupConv2D
from larq_mobisearch.nn.models import build_model, build_network, fixed_conv_factory
from larq_mobisearch.nn.space import SearchSpace, encode
from larq_mobisearch.nn.specs import architecture

SHAPE = (32, 32, 1)
CLASSES = 10
WIDTH = 0.5

# tf_keras's seeded initializers call random.randint with a float bound (not this project's code).
pytestmark = pytest.mark.filterwarnings("ignore:non-integer arguments to randrange:DeprecationWarning")

def _images(n, seed, shape=SHAPE):
    return np.random.RandomState(seed).randn(n, *shape).astype(np.float32)


@pytest.fixture(scope="module")
def grouped():
    """M1 at width 0.5, uniform(2) genotype (grouped 3x3 convs from block 3 on), BN calibrated, exported.

    Named like `supernet.extract_subnet` names its models (45 characters: longer than TFLite keeps of a
    tensor name before the layer scope).
    """
    arch = architecture("m1", SHAPE, CLASSES, WIDTH)
    genotype = SearchSpace(arch).uniform(2)
    assert max(genotype) == 2 and genotype.count(2) >= 10
    tf.keras.utils.set_random_seed(1)
    model = build_network(arch, fixed_conv_factory(genotype), name=f"binary_mobilenet_m1_{encode(genotype)}")
    calib = _images(128, seed=2)
    recalibrate_batchnorm(model, [calib[:64], calib[64:]])
    flatbuffer = ex.export_tflite(model)
    return arch, genotype, model, flatbuffer


def _tiny_unlowerable_model():
    """Two binary convs: `bad_conv` has 16 input channels per group (LCE cannot lower it), `good_conv` 32."""
    inputs = tf.keras.Input((8, 8, 32), name="image")
    x = BinaryGroupConv2D(32, 3, groups=2, lce_compatible=False, name="bad_conv")(inputs)
    x = tf.keras.layers.BatchNormalization(name="bad_bn")(x)
    x = BinaryGroupConv2D(32, 1, name="good_conv")(x)
    x = tf.keras.layers.BatchNormalization(name="good_bn")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(CLASSES)(x), name="tiny")


@pytest.fixture(scope="module")
def tiny_unlowerable():
    tf.keras.utils.set_random_seed(3)
    return _tiny_unlowerable_model()


def test_grouped_model_lowers_every_binary_conv(grouped):
    arch, genotype, model, flatbuffer = grouped
    census = ex.op_census(flatbuffer)
    convs = ex.binary_convs(model)
    n_binary = sum(c.binary for c in arch.convs)
    assert len(convs) == n_binary == 21
    assert all(c.lowerable for c in convs)
    assert {c.groups for c in convs} == {1, 2}
    assert census[ex.LCE_BCONV] == n_binary
    assert census["LceQuantize"] == n_binary
    assert "LceDequantize" not in census and "PADV2" not in census
    # Every LceBconv2d op maps back to a distinct Keras layer through its tensor names.
    assert sorted(ex.bconv_layer_names(flatbuffer, [c.name for c in convs])) == sorted(c.name for c in convs)
    assert ex.unlowered_layers(model, flatbuffer) == {}
    # Fixed batch dimension 1 (the signature's None batch becomes 1).
    interpreter = ex.lce_interpreter(flatbuffer)
    assert interpreter.input_shapes == [(1,) + SHAPE] and interpreter.output_shapes == [(1, CLASSES)]


def test_verify_matches_keras(grouped):
    _, _, model, flatbuffer = grouped
    pool = _images(64, seed=4)
    # Binary nets have genuine near ties: a sign input within ~1e-6 of 0 may flip between LCE and Keras
    # rounding (measured: ~1.5% of random images). Compare on images with a clear margin at every sign...
    margins = ex.sign_margins(model, pool)
    assert margins.shape == (64,)
    images = pool[margins >= ex.DEFAULT_TIE_MARGIN][:32]
    assert len(images) >= 24
    labels = np.random.RandomState(5).randint(0, CLASSES, size=len(images))
    report = ex.verify_tflite(model, flatbuffer, images, labels, batch_size=16)
    assert report.num_samples == len(images)
    assert report.max_abs_diff < 1e-4, report
    assert report.top1_agreement == 1.0
    assert report.num_mismatched == 0 and report.num_near_tie == 0
    assert report.tflite_accuracy == report.keras_accuracy
    # ...and on all images, a mismatch may only come from a near tie.
    full = ex.verify_tflite(model, flatbuffer, pool)
    assert full.num_mismatched_clear == 0 and full.max_abs_diff_clear < 1e-4, full
    assert full.num_mismatched <= full.num_near_tie
    # One-hot labels in a tf.data pipeline of (images, labels) batches give the same numbers.
    dataset = tf.data.Dataset.from_tensor_slices((images, np.eye(CLASSES)[labels])).batch(10)
    again = ex.verify_tflite(model, flatbuffer, dataset)
    assert again.tflite_accuracy == report.tflite_accuracy
    assert again.max_abs_diff == pytest.approx(report.max_abs_diff, abs=1e-6)


def test_verify_rejects_mismatched_input_shape(grouped):
    _, _, model, flatbuffer = grouped
    with pytest.raises(ValueError) as info:
        ex.verify_tflite(model, flatbuffer, _images(2, seed=0, shape=(28, 28, 1)))
    message = str(info.value)
    assert "(2, 28, 28, 1)" in message and "(32, 32, 1)" in message
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        ex.verify_tflite(model, flatbuffer, _images(3, seed=0), [0, 1])


def test_report_sizes_and_json(grouped):
    _, _, model, flatbuffer = grouped
    report = ex.export_report(model, flatbuffer, images=_images(8, seed=6), labels=np.arange(8))
    assert report.tflite_bytes == len(flatbuffer)
    assert report.num_lce_bconv == report.num_binary_convs == 21
    assert report.fully_binary and report.float_fallback_layers == {}
    assert report.float_tflite_bytes > report.tflite_bytes
    assert report.size_ratio == pytest.approx(report.float_tflite_bytes / report.tflite_bytes)
    assert report.size_ratio > 5, report
    assert report.verify.top1_agreement == 1.0
    data = json.loads(json.dumps(report.to_json()))
    assert data["op_census"][ex.LCE_BCONV] == 21
    assert data["verify"]["num_samples"] == 8
    assert "flatbuffer" not in data


def test_unlowerable_group_count_is_refused_before_conversion():
    # 64 channels / 4 groups = 16 per group in block3_conv3x3: a legal training model, not an LCE one.
    arch = architecture("m1", SHAPE, CLASSES, WIDTH)
    genotype = list(SearchSpace(arch, mode="paper").uniform(1))
    genotype[2] = 4
    model = build_model("m1", genotype, SHAPE, CLASSES, WIDTH, lce_compatible=False)
    with pytest.raises(ex.ExportError) as info:
        ex.export_tflite(model)
    assert isinstance(info.value, ValueError)
    assert list(info.value.layers) == ["block3_conv3x3"]
    assert "block3_conv3x3: input channels per group 16 (64 channels / 4 groups), must be a multiple of 32" in str(
        info.value
    )


def test_float_fallback_exports_with_warning(tiny_unlowerable, caplog):
    model = tiny_unlowerable
    with pytest.raises(ex.ExportError, match="bad_conv: input channels per group 16"):
        ex.export_tflite(model)
    with caplog.at_level("WARNING", logger="larq_mobisearch.deploy.export"):
        flatbuffer = ex.export_tflite(model, allow_float_fallback=True)
    assert flatbuffer[4:8] == b"TFL3"
    assert any("bad_conv" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    census = ex.op_census(flatbuffer)
    assert census[ex.LCE_BCONV] == 1 and census["CONV_2D"] == 1 and census["LceDequantize"] == 1
    # LCE's own converter (full Keras SavedModel) gives the same ops and outputs as the default method.
    reference = ex.export_tflite(model, allow_float_fallback=True, method="keras")
    assert ex.op_census(reference) == census
    assert ex.bconv_layer_names(reference, ["bad_conv", "good_conv"]) == ["good_conv"]  # "tiny/good_conv/..."
    images = _images(4, seed=7, shape=(8, 8, 32))
    np.testing.assert_array_equal(ex.run_tflite(flatbuffer, images), ex.run_tflite(reference, images))
    # The flatbuffer check finds the float layer by itself, without the layer-based prediction.
    assert ex.bconv_layer_names(flatbuffer, ["bad_conv", "good_conv"]) == ["good_conv"]
    unpredicted = [dataclasses.replace(c, problem=None) for c in ex.binary_convs(model)]
    missing = ex.unlowered_layers(model, flatbuffer, convs=unpredicted)
    assert list(missing) == ["bad_conv"] and "LCE kept float ops" in missing["bad_conv"]
    report = ex.export_report(model, flatbuffer, include_float_size=False)
    assert not report.fully_binary and list(report.float_fallback_layers) == ["bad_conv"]


def test_supernet_is_refused_and_materialize_hook_runs():
    supernet = pytest.importorskip("larq_mobisearch.nn.supernet")
    arch = architecture("m1", SHAPE, CLASSES, WIDTH)
    space = SearchSpace(arch)
    net = supernet.build_supernet(space)
    with pytest.raises(ex.ExportError, match="extract_subnet") as info:
        ex.export_tflite(net)
    assert "block3_conv3x3" in info.value.layers
    seen = []

    def materialize(model):  # a hook returning a fixed model (here one that cannot lower, to skip converting)
        seen.append(model)
        return _tiny_unlowerable_model()

    with pytest.raises(ex.ExportError, match="bad_conv: input channels per group 16"):
        ex.export_tflite(net, materialize=materialize)
    assert seen == [net]


def test_write_tflite_is_atomic(grouped, tmp_path, monkeypatch):
    flatbuffer = grouped[3]
    path = tmp_path / "nested" / "model.tflite"
    assert ex.write_tflite(flatbuffer, path) == path
    assert path.read_bytes() == flatbuffer
    assert os.listdir(path.parent) == ["model.tflite"]
    # Not a flatbuffer: refused, existing file untouched.
    with pytest.raises(ValueError, match="Not a TFLite flatbuffer"):
        ex.write_tflite(b"not a model", path)

    # A failure at the rename leaves the old file and no temporary file behind.
    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        ex.write_tflite(flatbuffer[:8] + b"\0" * 16, path)
    monkeypatch.undo()
    assert path.read_bytes() == flatbuffer
    assert os.listdir(path.parent) == ["model.tflite"]


def test_argument_errors():
    with pytest.raises(ValueError, match="Not a TFLite flatbuffer"):
        ex.op_census(b"\0" * 32)
    with pytest.raises(TypeError):
        ex.op_census("model.tflite")
    with pytest.raises(ValueError, match="target"):
        ex.export_tflite(tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)]), target="x86")


def test_run_tflite_handles_a_fixed_batch_larger_than_one():
    # LCE exports have batch 1; a flatbuffer with a fixed batch of 4 is fed in zero-padded chunks.
    tf.keras.utils.set_random_seed(8)
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(2)])
    function = tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec([4, 3], tf.float32))
    flatbuffer = tf.lite.TFLiteConverter.from_concrete_functions([function], model).convert()
    interpreter = ex.lce_interpreter(flatbuffer)
    assert interpreter.input_shapes == [(4, 3)]
    x = np.random.RandomState(9).randn(6, 3).astype(np.float32)
    np.testing.assert_allclose(ex.run_tflite(interpreter, x), model(x).numpy(), atol=1e-6)
