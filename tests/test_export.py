"""Export to LCE flatbuffers: real TensorFlow, Larq and Larq Compute Engine conversions (no mocks).

One grouped M1 (module fixture, shared by the census / verification / report tests), its float reference for
the size ratio, a tiny model with a non-lowerable binary conv (default method and LCE's `convert_keras_model`),
one model per module with a 16-channels-per-group conv (converted with the float fallback, to check that the
flatbuffer check finds it by signature alone), and tiny models for the shared-signature case. Refusals happen
before conversion and cost nothing; the numerics gate and the M3 fusion are checked without converting.
"""

import collections
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
from larq_mobisearch.search.costs import count_costs

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
    # The multiset of conv signatures of the model equals the flatbuffer's, binary and float.
    ops = ex.conv_signatures(flatbuffer)
    assert sorted(sig for _, sig in ops["binary"]) == sorted(c.signature for c in convs)
    assert sorted(sig for _, sig in ops["float"]) == sorted(c.signature for c in ex.float_convs(model))
    # the weights are frozen into the converted signature, which the flatbuffer keeps (TFLite's signature runner)
    signatures = tf.lite.Interpreter(model_content=flatbuffer).get_signature_list()
    assert list(signatures) == ["serving_default"] and len(signatures["serving_default"]["outputs"]) == 1
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


def binary_kernel_weights(arch, genotype):
    """Weights of the binary conv kernels of `arch` at `genotype`, from the specs: k x k x (in / groups) x out."""
    return sum(c.kernel ** 2 * (c.in_channels // (genotype[c.gene] if c.gene is not None else c.groups))
               * c.out_channels for c in arch.convs if c.binary)


def test_report_sizes_and_json(grouped):
    arch, genotype, model, flatbuffer = grouped
    report = ex.export_report(model, flatbuffer, images=_images(8, seed=6), labels=np.arange(8))
    assert report.tflite_bytes == len(flatbuffer)
    assert report.num_lce_bconv == report.num_binary_convs == 21
    assert report.fully_binary and report.float_fallback_layers == {}
    assert report.float_tflite_bytes > report.tflite_bytes
    assert report.size_ratio == pytest.approx(report.float_tflite_bytes / report.tflite_bytes)
    assert report.size_ratio > 5, report
    # every sample without a near tie agrees (a sample with a binary conv input within float rounding of 0 may
    # flip between Keras's and LCE's summation orders, which change with the thread count); at least half are clear
    assert report.verify.num_clear >= 4 and report.verify.top1_agreement_clear == 1.0, report.verify
    assert ex.numerics_failures(report.verify) == [], report.verify
    data = json.loads(json.dumps(report.to_json()))
    assert data["op_census"][ex.LCE_BCONV] == 21
    assert data["verify"]["num_samples"] == 8
    assert "flatbuffer" not in data
    # parameter memory: the binary kernels counted from the architecture's specs at 1 bit, the rest at 32 bits
    binary = binary_kernel_weights(arch, genotype)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert report.parameter_memory == {"binary_params": binary, "real_params": trainable - binary,
                                       "bytes": binary // 8 + 4 * (trainable - binary), "float32_bytes": 4 * trainable}
    assert data["parameter_memory"] == report.parameter_memory


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
    images = _images(4, seed=7, shape=(8, 8, 32))
    np.testing.assert_array_equal(ex.run_tflite(flatbuffer, images), ex.run_tflite(reference, images))
    # The flatbuffer check finds the float layer by itself (by conv signature), without the layer-based
    # prediction, for both conversion methods (their tensor names differ).
    unpredicted = [dataclasses.replace(c, problem=None) for c in ex.binary_convs(model)]
    for fb in (flatbuffer, reference):
        missing = ex.unlowered_layers(model, fb, convs=unpredicted)
        assert list(missing) == ["bad_conv"], missing
        assert "no LceBconv2d op with its signature (3x3 conv stride 1, 32->32 channels, groups 2" in missing["bad_conv"]
        assert "LCE kept float ops" in missing["bad_conv"]
    report = ex.export_report(model, flatbuffer, include_float_size=False)
    assert not report.fully_binary and list(report.float_fallback_layers) == ["bad_conv"]


def _one_binary_conv(side, pad_values):
    """Input side x side x 32 -> larq binary 3x3 'same' conv (pad_values as given) -> BatchNorm -> logits."""
    import larq as lq

    tf.keras.utils.set_random_seed(3)
    x = inp = tf.keras.Input((side, side, 32))
    x = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=pad_values, use_bias=False, name="conv",
                              input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                              kernel_constraint="weight_clip")(x)
    x = tf.keras.layers.BatchNormalization(name="bn")(x)
    return tf.keras.Model(inp, tf.keras.layers.Flatten()(x))


def test_zero_padded_binary_convs_on_maps_under_3x3_are_warned_about_as_lce_miscomputes_them(caplog):
    """LCE 0.16 lowers a zero-padded binary 3x3 conv on a 2x2 map but computes other numbers than Keras; the
    export names the layer and its map. Keras is the reference: the same conv on a 2x2 map with pad_values=1,
    and zero-padded on a 4x4 map, match it to float rounding, and get no warning."""
    cases = {(2, 0.0): True, (2, 1.0): False, (4, 0.0): False}
    for (side, pad), warned in cases.items():
        model = _one_binary_conv(side, pad)
        assert ex.zero_padded_small_map_convs(model) == ({"conv": (side, side)} if warned else {})
        caplog.clear()
        with caplog.at_level("WARNING", logger="larq_mobisearch.deploy.export"):
            flatbuffer = ex.export_tflite(model)
        messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any("conv (2x2)" in m and "pad_values=1" in m for m in messages) == warned, messages
        x = _images(8, seed=5, shape=(side, side, 32))
        keras, lce = model(x, training=False).numpy(), ex.run_tflite(flatbuffer, x)
        relative = np.abs(lce - keras).max() / np.abs(keras).max()
        assert (relative > 0.1) if warned else (relative < 1e-5), (side, pad, relative)


def test_supernet_is_refused_and_materialize_hook_runs():
    from larq_mobisearch.nn import supernet  # the package's own module: a broken import fails, never skips
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


# ----------------------------------------------------------------------------------------------------------
# The lowering check compares conv signatures (no tensor names)


@pytest.mark.slow
@pytest.mark.parametrize("module", ["m1", "m2", "m3"])
def test_lowering_check_catches_16_channels_per_group(module):
    """block3_conv3x3 with 64 channels in 4 groups (16 per group) does not lower, in every module: refused
    before converting (predicted from the layer), and found in the converted flatbuffer by its signature alone
    (the prediction removed), with the converter's own error quoted."""
    arch = architecture(module, SHAPE, CLASSES, WIDTH)
    genotype = list(SearchSpace(arch, mode="paper").uniform(1))
    genotype[2] = 4
    tf.keras.utils.set_random_seed(11)
    model = build_model(module, genotype, SHAPE, CLASSES, WIDTH, lce_compatible=False)
    with pytest.raises(ex.ExportError) as info:
        ex.export_tflite(model)
    assert list(info.value.layers) == ["block3_conv3x3"]
    assert "input channels per group 16 (64 channels / 4 groups), must be a multiple of 32" in str(info.value)

    flatbuffer = ex.export_tflite(model, allow_float_fallback=True)  # LCE keeps float ops for that layer
    convs = ex.binary_convs(ex.fuse_pointwise_pairs(model))
    assert len(convs) == {"m1": 21, "m2": 21, "m3": 26}[module]
    unpredicted = [dataclasses.replace(c, problem=None) for c in convs]
    missing = ex.unlowered_layers(ex.fuse_pointwise_pairs(model), flatbuffer, convs=unpredicted)
    assert list(missing) == ["block3_conv3x3"], missing
    why = missing["block3_conv3x3"]
    assert "no LceBconv2d op with its signature (3x3 conv stride 1, 64->64 channels, groups 4 (16 input channels" in why
    census = ex.op_census(flatbuffer)
    assert census[ex.LCE_BCONV] == len(convs) - 1 and census["LceDequantize"] == 1


def _identical_convs_model(n):
    inputs = tf.keras.Input((8, 8, 32), name="image")
    x = inputs
    for i in range(n):
        x = BinaryGroupConv2D(32, 3, name=f"conv{i}")(x)
        x = tf.keras.layers.BatchNormalization(name=f"bn{i}")(x)
    return tf.keras.Model(inputs, x, name=f"same{n}")


def test_lowering_check_names_all_candidates_of_a_shared_signature():
    """Three binary convs with one signature, a flatbuffer with two such LceBconv2d ops: the check cannot tell
    which one is missing, so it names all three as candidates; extra ops are reported too."""
    tf.keras.utils.set_random_seed(12)
    three, two = _identical_convs_model(3), _identical_convs_model(2)
    flatbuffer = ex.export_tflite(two)
    missing = ex.unlowered_layers(three, flatbuffer)
    assert sorted(missing) == ["conv0", "conv1", "conv2"]
    assert all("1 of the 3 layers with this signature (conv0, conv1, conv2) did not" in why for why in missing.values())
    assert ex.unlowered_layers(two, flatbuffer) == {}
    extra = ex.unlowered_layers(_identical_convs_model(1), flatbuffer)
    assert list(extra) == ["<flatbuffer>"] and "LceBconv2d 3x3 conv stride 1, 32->32 channels" in extra["<flatbuffer>"]


# ----------------------------------------------------------------------------------------------------------
# The numerics gate


def _verify_report(**kw):
    base = dict(num_samples=10, max_abs_diff=0.0, mean_abs_diff=0.0, top1_agreement=1.0, num_mismatched=0,
                num_near_tie=0, num_clear=10, max_abs_diff_clear=0.0, num_mismatched_clear=0,
                top1_agreement_clear=1.0, logit_scale=1.0)
    base.update(kw)
    return ex.VerifyReport(**base)


def test_numerics_gate():
    ok = _verify_report(max_abs_diff=3.0, max_abs_diff_clear=4e-4, num_near_tie=2, num_clear=8,
                        top1_agreement=0.8, logit_scale=5.0)  # near ties may flip; clear ones within 1e-4 x 5
    assert ex.numerics_failures(ok) == [] and ex.logit_tolerance(ok) == pytest.approx(5e-4)
    ex.check_numerics(ok)
    bad = _verify_report(max_abs_diff_clear=6e-4, num_mismatched_clear=0, logit_scale=5.0)
    with pytest.raises(ex.NumericsError) as info:
        ex.check_numerics(bad)
    assert "max |logit difference| 0.0006 on samples that are not near ties exceeds the tolerance 0.0005" in str(info.value)
    assert "1e-4 x logit scale 5" in str(info.value).replace("0.0001", "1e-4") and "--allow-mismatch" in str(info.value)
    flipped = _verify_report(top1_agreement_clear=0.9)
    assert ex.numerics_failures(flipped) == ["top-1 agreement on samples that are not near ties is 90.00% (10 samples), not 100%"]
    assert "nothing to verify on" in ex.numerics_failures(_verify_report(num_clear=0, num_near_tie=10))[0]
    unknown = _verify_report(margins_known=False, max_abs_diff_clear=1.0)
    assert "samples (near ties unknown)" in ex.numerics_failures(unknown)[0]


# ----------------------------------------------------------------------------------------------------------
# Fused M3 pointwise pairs


def test_fused_m3_equals_unfused():
    arch = architecture("m3", SHAPE, CLASSES, WIDTH)
    genotype = SearchSpace(arch).uniform(4)
    tf.keras.utils.set_random_seed(13)
    model = build_network(arch, fixed_conv_factory(genotype), name="m3")
    calib = _images(64, seed=14)
    recalibrate_batchnorm(model, [calib[:32], calib[32:]])
    pairs = ex.fusable_pairs(model)
    assert [p.fused_name for p in pairs] == [f"block{i}_pw" for i in range(1, 14)]
    doubling = {b.index for b in arch.blocks if b.out_channels == 2 * b.in_channels}
    assert {int(p.conv_a[5:-5]) for p in pairs if p.shortcut == "input"} == doubling == {1, 2, 4, 6, 12}
    assert all(p.shortcut == "halves" for p in pairs if int(p.conv_a[5:-5]) not in doubling)
    fused = ex.fuse_pointwise_pairs(model)
    images = _images(64, seed=15)
    a, b = model(images, training=False).numpy(), fused(images, training=False).numpy()
    assert np.abs(a).max() > 0.1
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    # 13 fewer binary convs, no slices or block concatenations left; the model itself is untouched
    kinds = collections.Counter(type(layer).__name__ for layer in fused.layers)
    assert kinds["BinaryGroupConv2D"] == 26 and kinds["Concatenate"] == len(doubling)
    assert kinds["SlicingOpLambda"] == 0 and len(ex.binary_convs(model)) == 39
    # the same multiply-accumulates (BOPs) before and after: 1x1 convs Cin -> Cout/2 twice = Cin -> Cout once
    def binary_macs(m):
        return sum(np.prod(layer.output_shape[1:3]) * np.prod(layer.kernel.shape) for layer in m.layers
                   if isinstance(layer, BinaryGroupConv2D))
    assert binary_macs(fused) == binary_macs(model) == count_costs(arch, genotype).bops
    # fused weights are the halves side by side
    k = fused.get_layer("block5_pw").get_weights()[0]
    np.testing.assert_array_equal(k[..., : k.shape[-1] // 2], model.get_layer("block5_pw_a").get_weights()[0])
    # nothing to fuse in M1: the same model comes back
    m1 = build_model("m1", 1, SHAPE, CLASSES, WIDTH)
    assert ex.fusable_pairs(m1) == [] and ex.fuse_pointwise_pairs(m1) is m1
