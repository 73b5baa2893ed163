"""BinaryGroupConv2D / GroupConv2D: NumPy reference convolution, config and file round trips, group validation."""

import collections
import re

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import larq_mobisearch
from larq_mobisearch.nn.layers import BinaryGroupConv2D, GroupConv2D
from larq_mobisearch.nn.quantizers import XnorWeight

# ----------------------------------------------------------------------------------------------------------
# NumPy reference


def np_sign(x):
    return np.where(x >= 0, 1.0, -1.0)


def same_padding(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def np_group_conv(x, w, groups, stride, pad_value):
    """Grouped 2-D convolution (cross-correlation), 'same' padding filled with `pad_value`, float64."""
    n, h, wd, cin = x.shape
    k = w.shape[0]
    cout = w.shape[-1]
    oh, pt, pb = same_padding(h, k, stride)
    ow, pl, pr = same_padding(wd, k, stride)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=pad_value)
    ci, co = cin // groups, cout // groups
    out = np.zeros((n, oh, ow, cout))
    for g in range(groups):
        wg = w[:, :, :, g * co : (g + 1) * co]  # (k, k, ci, co)
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, i * stride : i * stride + k, j * stride : j * stride + k, g * ci : (g + 1) * ci]
                out[:, i, j, g * co : (g + 1) * co] = np.tensordot(patch, wg, axes=([1, 2, 3], [0, 1, 2]))
    return out


def latent_kernel(layer):
    k = layer.kernel
    return (k.latent_variable if hasattr(k, "latent_variable") else k).numpy()


@pytest.mark.parametrize(
    "hw, cin, cout, groups, stride",
    [
        ((5, 5), 4, 6, 2, 1),
        ((6, 6), 4, 6, 2, 2),  # asymmetric 'same' padding (0 before, 1 after)
        ((5, 7), 6, 6, 3, 2),
        ((4, 4), 3, 6, 1, 1),
        ((1, 1), 4, 4, 4, 1),  # every tap but the centre is padding
    ],
)
def test_binary_group_conv_matches_numpy_reference(hw, cin, cout, groups, stride, rng):
    layer = BinaryGroupConv2D(cout, 3, strides=stride, groups=groups, lce_compatible=False)
    x = rng.normal(size=(2, *hw, cin)).astype(np.float32)
    x[0, 0, 0, 0] = 0.0  # sign(0) = +1
    layer.build(x.shape)
    w = rng.normal(scale=0.6, size=tuple(layer.kernel.shape)).astype(np.float32)
    layer.kernel.assign(w)
    y = layer(tf.constant(x)).numpy()

    alpha = np.abs(w.astype(np.float64)).mean(axis=(0, 1, 2))
    ref = np_group_conv(np_sign(x), np_sign(w) * alpha, groups, stride, pad_value=1.0)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4)

    # Zero padding would give a different answer on the border: the +1 padding is really used.
    ref_zero = np_group_conv(np_sign(x), np_sign(w) * alpha, groups, stride, pad_value=0.0)
    if hw[0] > 1 or stride == 1:
        assert np.abs(ref_zero - ref).max() > 1e-3


def test_binary_group_conv_defaults():
    layer = BinaryGroupConv2D(64, 3, groups=2)
    assert isinstance(layer.input_quantizer, lq.quantizers.ApproxSign)
    assert isinstance(layer.kernel_quantizer, XnorWeight)
    assert isinstance(layer.kernel_constraint, lq.constraints.WeightClip)
    assert layer.pad_values == 1.0 and layer.padding == "same" and not layer.use_bias
    assert layer.lce_compatible is True
    layer.build((None, 8, 8, 64))
    assert tuple(layer.kernel.shape) == (3, 3, 32, 64)
    assert layer.kernel.precision == 1


# ----------------------------------------------------------------------------------------------------------
# Config and file round trips


def test_binary_group_conv_config_round_trip():
    layer = BinaryGroupConv2D(
        48, (3, 1), strides=2, groups=3, lce_compatible=False, kernel_quantizer=XnorWeight(clip_value=0.5), name="bgc"
    )
    config = layer.get_config()
    assert config["groups"] == 3 and config["lce_compatible"] is False and config["pad_values"] == 1.0
    assert config["kernel_quantizer"]["class_name"] == "XnorWeight"
    assert config["kernel_quantizer"]["config"]["clip_value"] == 0.5
    assert config["input_quantizer"]["class_name"] == "ApproxSign"
    clone = BinaryGroupConv2D.from_config(config)
    assert clone.get_config() == config
    assert clone.kernel_quantizer.clip_value == 0.5 and clone.groups == 3 and clone.lce_compatible is False
    # Keras' generic (de)serialization finds the registered class.
    generic = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
    assert type(generic) is BinaryGroupConv2D and generic.get_config() == config


def test_group_conv_config_round_trip():
    layer = GroupConv2D(32, 1, groups=4, use_bias=False, name="gc")
    config = layer.get_config()
    assert config["groups"] == 4
    clone = GroupConv2D.from_config(config)
    assert type(clone) is GroupConv2D and clone.get_config() == config


def small_model():
    inputs = tf.keras.Input((8, 8, 64))
    x = BinaryGroupConv2D(64, 3, groups=2, name="bconv_a")(inputs)
    x = tf.keras.layers.BatchNormalization(name="bn_a")(x)
    x = GroupConv2D(32, 1, groups=4, use_bias=False, name="gconv")(x)
    x = BinaryGroupConv2D(32, 3, strides=2, groups=4, lce_compatible=False, name="bconv_b")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(5)(x)
    return tf.keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def trained_small_model():
    """The small model with every weight (kernels, BN statistics, dense) set to non-default random values."""
    model = small_model()
    r = np.random.default_rng(0)
    for w in model.weights:
        value = r.uniform(0.5, 1.5, size=w.shape) if "variance" in w.name else r.normal(size=w.shape)
        w.assign(value.astype(np.float32))
    x = r.normal(size=(16, 8, 8, 64)).astype(np.float32)
    return model, x


def comparable_config(config):
    """A layer config without the build shapes (tuples before saving, lists after loading)."""
    if isinstance(config, dict):
        return {k: comparable_config(v) for k, v in config.items() if k != "build_config"}
    return config


@pytest.mark.parametrize("fmt", ["keras", "h5", "savedmodel"])
def test_save_load_with_custom_objects(fmt, trained_small_model, tmp_path):
    model, x = trained_small_model
    path = {"keras": tmp_path / "m.keras", "h5": tmp_path / "m.h5", "savedmodel": tmp_path / "m_savedmodel"}[fmt]
    model.save(str(path)) if fmt != "savedmodel" else model.save(str(path), save_format="tf")
    loaded = tf.keras.models.load_model(str(path), custom_objects=larq_mobisearch.custom_objects(), compile=False)
    for name in ("bconv_a", "bconv_b"):
        layer = loaded.get_layer(name)
        assert type(layer) is BinaryGroupConv2D
        assert comparable_config(layer.get_config()) == comparable_config(model.get_layer(name).get_config())
    assert type(loaded.get_layer("gconv")) is GroupConv2D
    assert loaded.get_layer("bconv_b").lce_compatible is False
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_custom_objects_content():
    objs = larq_mobisearch.custom_objects()
    assert objs["BinaryGroupConv2D"] is BinaryGroupConv2D
    assert objs["GroupConv2D"] is GroupConv2D
    assert objs["XnorWeight"] is XnorWeight


# ----------------------------------------------------------------------------------------------------------
# Group validation


@pytest.mark.parametrize("cls", [BinaryGroupConv2D, GroupConv2D])
def test_groups_must_divide_filters_error_in_init(cls):
    with pytest.raises(ValueError) as err:
        cls(10, 3, groups=4, name="my_conv")
    msg = str(err.value)
    assert "my_conv" in msg and "groups=4" in msg and "filters=10" in msg
    assert "[1, 2, 5, 10]" in msg


@pytest.mark.parametrize("cls", [BinaryGroupConv2D, GroupConv2D])
@pytest.mark.parametrize("bad", [0, -2, True, False, 2.0, "2", None])
def test_groups_must_be_positive_int(cls, bad):
    with pytest.raises(ValueError, match="positive integer") as err:
        cls(8, 3, groups=bad)
    assert repr(bad) in str(err.value)


@pytest.mark.parametrize("cls", [BinaryGroupConv2D, GroupConv2D])
def test_groups_accepts_numpy_integer(cls):
    layer = cls(64, 3, groups=np.int64(2))
    layer.build((None, 4, 4, 64))
    assert layer.groups == 2


@pytest.mark.parametrize("cls, binary", [(BinaryGroupConv2D, True), (GroupConv2D, False)])
def test_groups_must_divide_input_channels_error_at_build(cls, binary):
    layer = cls(64, 3, groups=4, name="conv_x", **({"lce_compatible": False} if binary else {}))  # init is fine
    with pytest.raises(ValueError) as err:
        layer.build((None, 8, 8, 6))
    msg = str(err.value)
    assert "'conv_x'" in msg and "groups=4" in msg and "6 input channels" in msg
    assert "divide the input channels (6)" in msg
    assert msg.endswith("Allowed group counts: [1, 2]")
    # The same through a functional model call.
    with pytest.raises(ValueError, match=r"Allowed group counts: \[1, 2\]"):
        cls(64, 3, groups=4, **({"lce_compatible": False} if binary else {}))(tf.keras.Input((8, 8, 6)))


def test_lce_rule_16_channels_per_group():
    layer = BinaryGroupConv2D(64, 3, groups=4, name="conv_lce")
    with pytest.raises(ValueError) as err:
        layer.build((None, 8, 8, 64))
    msg = str(err.value)
    assert "'conv_lce'" in msg and "groups=4" in msg
    assert "input channels per group is 16" in msg and "multiple of 32" in msg
    assert "lce_compatible=False" in msg
    assert re.search(r"Allowed group counts: \[1, 2\]$", msg)


@pytest.mark.parametrize("groups, ok", [(1, True), (2, True), (4, False), (8, False), (64, False)])
def test_lce_rule_table_at_64_channels(groups, ok):
    layer = BinaryGroupConv2D(64, 3, groups=groups)
    if ok:
        layer.build((None, 4, 4, 64))
        assert tuple(layer.kernel.shape) == (3, 3, 64 // groups, 64)
    else:
        with pytest.raises(ValueError, match="multiple of 32"):
            layer.build((None, 4, 4, 64))


@pytest.mark.parametrize("groups", [4, 16, 64])
def test_lce_compatible_false_allows_small_groups(groups, rng):
    layer = BinaryGroupConv2D(64, 3, groups=groups, lce_compatible=False)
    y = layer(tf.constant(rng.normal(size=(1, 4, 4, 64)).astype(np.float32)))
    assert tuple(layer.kernel.shape) == (3, 3, 64 // groups, 64)
    assert y.shape == (1, 4, 4, 64)


def test_group_conv_has_no_lce_rule(rng):
    layer = GroupConv2D(64, 1, groups=16)
    y = layer(tf.constant(rng.normal(size=(1, 2, 2, 64)).astype(np.float32)))
    assert tuple(layer.kernel.shape) == (1, 1, 4, 64) and y.shape == (1, 2, 2, 64)


@pytest.mark.parametrize("cls", [BinaryGroupConv2D, GroupConv2D])
def test_unknown_channel_dimension(cls):
    with pytest.raises(ValueError, match="channel dimension of the input must be known"):
        cls(8, 3).build(tf.TensorShape([None, 4, 4, None]))


def test_group_conv_matches_numpy_reference(rng):
    layer = GroupConv2D(6, 3, groups=3, padding="same", use_bias=False)
    x = rng.normal(size=(2, 5, 5, 6)).astype(np.float32)
    y = layer(tf.constant(x)).numpy()
    ref = np_group_conv(x.astype(np.float64), layer.kernel.numpy().astype(np.float64), 3, 1, pad_value=0.0)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def np_group_conv_kernel_grad(x, r, k, groups, stride):
    """d sum(conv(x, w) * r) / dw for a grouped 'same' conv padded with zeros (float64)."""
    n, h, wd, cin = x.shape
    cout = r.shape[-1]
    oh, pt, pb = same_padding(h, k, stride)
    ow, pl, pr = same_padding(wd, k, stride)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    ci, co = cin // groups, cout // groups
    grad = np.zeros((k, k, ci, cout))
    for o in range(cout):
        g = o // co
        for a in range(k):
            for b in range(k):
                patch = xp[:, a : a + oh * stride : stride, b : b + ow * stride : stride, g * ci : (g + 1) * ci]
                grad[a, b, :, o] = np.tensordot(patch, r[..., o], axes=([0, 1, 2], [0, 1, 2]))
    return grad


def test_grouped_convs_run_tensorflows_op_without_xla(rng):
    """tf-keras wraps grouped convs in an XLA-compiled function (several times slower on CPU); ours call the plain
    op inside a graph, and the kernel gradient there matches a NumPy reference."""
    layer = GroupConv2D(6, 3, groups=3, strides=2, padding="same", use_bias=False)
    binary = BinaryGroupConv2D(64, 3, groups=2)
    x = tf.constant(rng.normal(size=(2, 6, 6, 6)).astype(np.float32))
    r = rng.normal(size=(2, 3, 3, 6)).astype(np.float32)

    @tf.function
    def grad(x):
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(y * r)
        binary(tf.zeros((1, 4, 4, 64)))
        return tape.gradient(loss, layer.kernel)

    g = grad(x).numpy()
    ref = np_group_conv_kernel_grad(x.numpy().astype(np.float64), r.astype(np.float64), 3, 3, 2)
    np.testing.assert_allclose(g, ref, rtol=1e-4, atol=1e-4)
    graph = grad.get_concrete_function(x).graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    assert not [n.name for n in nodes if "_XlaMustCompile" in n.attr]
    assert sum(n.op == "Conv2D" for n in nodes) >= 2


# ----------------------------------------------------------------------------------------------------------
# LCE conversion with the official Keras entry point


def test_convert_keras_model_lowers_lce_compatible_layers(rng, tflite_ops):
    """`lce.convert_keras_model`: LCE-compatible binary convs become LceBconv2d; a grouped binary conv with fewer
    than 32 input channels per group (lce_compatible=False) silently falls back to float ops; outputs match."""
    import larq_compute_engine as lce

    tf.keras.utils.set_random_seed(3)  # fixed weights: random ones can put a sign input on a near-tie
    inputs = tf.keras.Input((8, 8, 64))
    x = BinaryGroupConv2D(64, 3, groups=2, name="bconv_a")(inputs)
    x = tf.keras.layers.BatchNormalization(name="bn_a")(x)
    x = BinaryGroupConv2D(64, 3, strides=2, name="bconv_b")(x)
    x = GroupConv2D(32, 1, groups=4, use_bias=False, name="gconv")(x)
    x = BinaryGroupConv2D(32, 3, groups=4, lce_compatible=False, name="bconv_c")(x)  # 8 channels per group
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(5)(x))
    bn = model.get_layer("bn_a")
    # Non-trivial BatchNorm: with the initial identity BN, exact integer ties (a binary conv sum of 0) reach the
    # next sign and round differently in the two runtimes.
    for w, value in zip(bn.weights, (rng.uniform(0.5, 2, 64), rng.normal(size=64), rng.normal(size=64) * 5)):
        w.assign(value.astype(np.float32))
    bn.moving_variance.assign(rng.uniform(50, 100, 64).astype(np.float32))

    flatbuffer = lce.convert_keras_model(model)
    census = collections.Counter(op.name for op in tflite_ops(flatbuffer))
    assert census["LceBconv2d"] == 2  # bconv_a (2 groups of 32) and bconv_b
    assert census["CONV_2D"] == 2  # gconv, and bconv_c's float fallback
    assert census["LceDequantize"] == 1 and census["PADV2"] == 1  # the fallback: +1 padding of dequantized signs

    x = rng.normal(size=(8, 8, 8, 64)).astype(np.float32)
    lce_out = lce.testing.Interpreter(flatbuffer, use_indirect_bgemm=True).predict(x)
    keras_out = model(x, training=False).numpy()
    scale = max(1.0, float(np.abs(keras_out).max()))
    np.testing.assert_allclose(lce_out, keras_out, rtol=0, atol=1e-5 * scale)


# ----------------------------------------------------------------------------------------------------------
# Backward pass of the layer: the input gradient is ApproxSign's (paper eq. 4) times the binary kernel


def test_binary_conv_input_gradient_is_eq4_derivative_times_the_binarized_kernel(rng):
    """A 1x1 BinaryGroupConv2D (groups 2): y[c_out] = sum_c sign(x[c]) q(W)[c, c_out] over the group's inputs,
    so dL/dx[c] = dA(x[c]) * sum_{c_out} dy[c_out] q(W)[c, c_out] with dA the derivative of eq. 4 (2 - 2|x| on
    |x| < 1, 0 elsewhere) and q(W) = alpha * sign(W) (eq. 6), everything in NumPy here. A layer whose
    activation gradient were zero, or a plain straight-through estimator, fails this."""
    cin, cout, groups = 8, 6, 2
    layer = BinaryGroupConv2D(cout, 1, groups=groups, lce_compatible=False)  # 4 inputs per group
    x = rng.uniform(-1.6, 1.6, size=(3, 4, 5, cin)).astype(np.float32)
    layer.build(x.shape)
    w = rng.normal(size=(1, 1, cin // groups, cout)).astype(np.float32)
    layer.set_weights([w])
    dy = rng.normal(size=(3, 4, 5, cout)).astype(np.float32)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
    g = tape.gradient(y, xt, output_gradients=tf.constant(dy)).numpy()

    w64 = w[0, 0].astype(np.float64)  # (cin / groups, cout)
    q = np.abs(w64).mean(axis=0) * np_sign(w64)  # alpha per output channel times sign
    ci, co = cin // groups, cout // groups
    back = np.zeros(x.shape)
    for k in range(groups):  # the grouped 1x1 conv's transpose, block by block
        back[..., k * ci:(k + 1) * ci] = dy[..., k * co:(k + 1) * co].astype(np.float64) @ q[:, k * co:(k + 1) * co].T
    d_approx_sign = np.where(np.abs(x) < 1, 2 - 2 * np.abs(x.astype(np.float64)), 0.0)
    np.testing.assert_allclose(g, d_approx_sign * back, rtol=1e-5, atol=1e-5)
    assert np.count_nonzero(g) > 0.4 * g.size and np.all(g[np.abs(x) > 1] == 0)
    # the forward pass, too: sign(x) (sign(0) = +1) against q(W)
    forward = np.zeros(y.shape)
    for k in range(groups):
        forward[..., k * co:(k + 1) * co] = np_sign(x[..., k * ci:(k + 1) * ci]) @ q[:, k * co:(k + 1) * co]
    np.testing.assert_allclose(y.numpy(), forward, rtol=1e-5, atol=1e-5)
