"""Related methods as options of the builder (issue 15): RSign, RPReLU, the distributional loss, Bop, the
MoBiNet-style baseline. NumPy references for the new layers and the loss, save/load, LCE export of M1/M2/M3
with RSign + RPReLU (real TF / Larq / LCE), supernet == extract_subnet with the new layers, Bop trains the
binary kernels only."""

import functools
import random

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

import larq_mobisearch as lm
from larq_mobisearch.config import TrainConfig, load_config
from larq_mobisearch.data import load_dataset
from larq_mobisearch import deploy as ex
from larq_mobisearch.distillation import Distiller, distributional_loss
from larq_mobisearch.nn import supernet as sn
from larq_mobisearch.nn.batchnorm import recalibrate_batchnorm
from larq_mobisearch.nn.models import build_network, fixed_conv_factory, float_conv_factory, network_options
from larq_mobisearch.nn.quantizers import approx_sign
from larq_mobisearch.nn.reactnet import LearnableThreshold, RPReLU
from larq_mobisearch.nn.specs import architecture, baseline_genotype, mobinet_genotype
from larq_mobisearch.search.costs import count_costs
from larq_mobisearch.training import create_training_variables, is_binary_kernel, make_optimizer

SHAPE = (16, 16, 1)
REACT = {"activation": "rsign", "nonlinearity": "rprelu"}

pytestmark = pytest.mark.filterwarnings("ignore:non-integer arguments to randrange:DeprecationWarning")


def np_sign(x):
    return np.where(x >= 0, 1.0, -1.0)


def np_approx_sign_grad(t):
    """Bi-Real Net's ApproxSign derivative: 2 + 2t on [-1, 0), 2 - 2t on [0, 1), 0 elsewhere."""
    return np.where(np.abs(t) < 1, 2 - 2 * np.abs(t), 0.0)


@functools.lru_cache(maxsize=None)
def digits_images():
    """Real digits images at SHAPE (the data module's preprocessing): BatchNorm statistics and test inputs.
    Cached per process, not a module fixture: loading them is cheap, and a shared fixture would pin every
    test using it to one pytest-xdist worker (conftest.py)."""
    data = load_dataset(load_config(preset="digits", overrides=[f"data.image_size={SHAPE[0]}"]).data)
    train, _ = data.numpy_samples("train", n=256)
    test, _ = data.numpy_samples("test", n=200)
    return train, test


def _randomize_method_layers(model, seed=0, scale=0.3):
    """Give every threshold / RPReLU non-trivial values (the zero init would test nothing)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, LearnableThreshold):
            layer.set_weights([rng.normal(scale=scale, size=w.shape).astype(np.float32) for w in layer.get_weights()])
        elif isinstance(layer, RPReLU):
            gamma, alpha, zeta = layer.get_weights()
            layer.set_weights([rng.normal(scale=scale, size=gamma.shape).astype(np.float32),
                               rng.uniform(0.05, 0.5, size=alpha.shape).astype(np.float32),
                               rng.normal(scale=scale, size=zeta.shape).astype(np.float32)])


# ----------------------------------------------------------------------------------------------------------
# RSign and RPReLU against NumPy


def test_rsign_forward_and_backward_match_numpy(rng):
    x = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
    alpha = rng.normal(scale=0.5, size=(6,)).astype(np.float32)
    x[0, 0, 0] = alpha  # exactly at the threshold: sign(0) = +1
    upstream = rng.normal(size=x.shape).astype(np.float32)
    layer = LearnableThreshold()
    layer.build(x.shape)
    layer.threshold.assign(alpha)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = approx_sign(layer(xt))  # what a binary conv after the threshold computes on its input
        loss = tf.reduce_sum(y * upstream)
    dx, dalpha = tape.gradient(loss, [xt, layer.threshold])
    t = x.astype(np.float64) - alpha
    np.testing.assert_array_equal(y.numpy(), np_sign(t))
    np.testing.assert_allclose(dx.numpy(), upstream * np_approx_sign_grad(t), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dalpha.numpy(), -(upstream * np_approx_sign_grad(t)).sum(axis=(0, 1, 2)),
                               rtol=1e-4, atol=1e-5)


def test_rsign_inside_a_binary_conv_model_binarizes_the_shifted_input(rng):
    inputs = tf.keras.Input((5, 5, 4))
    shifted = LearnableThreshold(name="t")(inputs)
    conv = lm.BinaryGroupConv2D(4, 1, lce_compatible=False, name="c")
    model = tf.keras.Model(inputs, conv(shifted))
    alpha = rng.normal(size=(4,)).astype(np.float32)
    model.get_layer("t").set_weights([alpha])
    w = rng.normal(scale=0.5, size=(1, 1, 4, 4)).astype(np.float32)
    conv.kernel.assign(w)
    x = rng.normal(size=(2, 5, 5, 4)).astype(np.float32)
    ref = np.einsum("bhwc,co->bhwo", np_sign(x - alpha), np_sign(w[0, 0]) * np.abs(w).mean(axis=(0, 1, 2)))
    np.testing.assert_allclose(model(x).numpy(), ref, rtol=1e-5, atol=1e-5)


def test_rprelu_forward_and_backward_match_numpy(rng):
    c = 5
    x = rng.normal(size=(2, 3, 4, c)).astype(np.float32)
    gamma = rng.normal(scale=0.5, size=(c,)).astype(np.float32)
    beta = rng.uniform(0.1, 0.9, size=(c,)).astype(np.float32)
    zeta = rng.normal(scale=0.5, size=(c,)).astype(np.float32)
    upstream = rng.normal(size=x.shape).astype(np.float32)
    layer = RPReLU()
    layer.build(x.shape)
    layer.set_weights([gamma, beta, zeta])
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
        loss = tf.reduce_sum(y * upstream)
    dx, dgamma, dbeta, dzeta = tape.gradient(loss, [xt, layer.gamma, layer.alpha, layer.zeta])
    t = x.astype(np.float64) - gamma
    assert np.abs(t).min() > 1e-6  # no exact kink
    slope = np.where(t > 0, 1.0, beta)
    np.testing.assert_allclose(y.numpy(), np.where(t > 0, t, beta * t) + zeta, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx.numpy(), upstream * slope, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dgamma.numpy(), -(upstream * slope).sum(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dbeta.numpy(), (upstream * np.minimum(t, 0)).sum(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dzeta.numpy(), upstream.sum(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)


def test_rprelu_defaults_and_config_round_trip():
    layer = RPReLU(name="r")
    layer.build((None, 2, 2, 3))
    np.testing.assert_array_equal(layer.alpha.numpy(), [0.25] * 3)  # PyTorch's nn.PReLU init (ReActNet)
    assert not layer.gamma.numpy().any() and not layer.zeta.numpy().any()
    again = RPReLU.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    t = LearnableThreshold(name="t")
    assert LearnableThreshold.from_config(t.get_config()).get_config() == t.get_config()


@functools.lru_cache(maxsize=None)
def small_react_model(module):
    """`module` at groups 1, 16x16x1, 4 classes, width 0.25, RSign + RPReLU with randomized values (seed 0).
    Built once per process and module (building is what costs here), for tests that only read it."""
    model = lm.build_model(module, 1, input_shape=(16, 16, 1), num_classes=4, width_multiplier=0.25, **REACT)
    _randomize_method_layers(model)
    return model


# M3's shortcut slices `x[..., a:b]` (a TFOpLambda holding an Ellipsis) do not serialize in the .keras format.
@pytest.mark.parametrize("module, fmt", [("m1", "keras"), ("m1", "h5"), ("m3", "h5")])
def test_save_and_load_models_with_the_new_layers(module, fmt, tmp_path, rng):
    model = small_react_model(module)
    x = rng.normal(size=(4, 16, 16, 1)).astype(np.float32)
    path = tmp_path / f"model.{fmt}"
    model.save(str(path))
    loaded = tf.keras.models.load_model(str(path), custom_objects=lm.custom_objects(), compile=False)
    assert network_options(loaded) == REACT
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), model(x, training=False).numpy())
    objs = lm.custom_objects()
    assert objs["LearnableThreshold"] is LearnableThreshold and objs["larq_mobisearch>RPReLU"] is RPReLU


# ----------------------------------------------------------------------------------------------------------
# The builder's options


def test_option_layers_follow_reactnet_placement():
    arch = architecture("m3", SHAPE, 10, 0.5)
    model = build_network(arch, fixed_conv_factory(arch.uniform_genotype(1)), "m", **REACT)
    names = {l.name for l in model.layers}
    # one threshold before each 3x3 conv, one shared by M3's two pointwise halves (ReActNet's move21)
    assert sum(isinstance(l, LearnableThreshold) for l in model.layers) == 26
    assert {"block1_conv3x3_rsign", "block1_pw_rsign"} <= names
    assert sum(isinstance(l, RPReLU) for l in model.layers) == 26
    assert {"block5_rprelu3x3", "block5_rprelu"} <= names
    # RPReLU after the residual add / the concatenation, then the next block's threshold
    assert model.get_layer("block1_rprelu3x3").input is model.get_layer("block1_add3x3").output
    assert model.get_layer("block1_rprelu").input is model.get_layer("block1_concat").output
    assert model.get_layer("block2_conv3x3_rsign").input is model.get_layer("block1_rprelu").output
    plain = build_network(arch, fixed_conv_factory(arch.uniform_genotype(1)), "p")
    assert network_options(plain) == {"activation": "approx_sign", "nonlinearity": "none"}
    with pytest.raises(ValueError, match=r"Unknown activation 'relu'; allowed: \['approx_sign', 'rsign'\]"):
        build_network(arch, fixed_conv_factory(arch.uniform_genotype(1)), "x", activation="relu")


def test_float_twin_and_two_step_factories():
    arch = architecture("m1", SHAPE, 10, 0.5)
    genes = arch.uniform_genotype(1)
    twin = build_network(arch, float_conv_factory(genes), "twin", **REACT)
    assert not ex.binary_convs(twin)  # real-valued: no binary conv, ReLU in place of the sign
    assert isinstance(twin.get_layer("block1_conv3x3_relu"), tf.keras.layers.ReLU)
    step1 = build_network(arch, fixed_conv_factory(genes, binary_weights=False), "s1", **REACT)
    step2 = build_network(arch, fixed_conv_factory(genes), "s2", **REACT)
    assert step1.get_layer("block1_conv3x3").kernel_quantizer is None and not ex.binary_convs(step1)
    assert not any(is_binary_kernel(v) for v in step1.trainable_variables)
    # step 2 takes step 1's weights as they are (same layers, names and shapes)
    assert [w.shape for w in step1.weights] == [w.shape for w in step2.weights]
    assert [w.name for w in step1.weights] == [w.name for w in step2.weights]


# ----------------------------------------------------------------------------------------------------------
# Supernet with the new layers, and LCE export of its subnets


@pytest.mark.slow
@pytest.mark.parametrize("module", ["m1", "m2", "m3"])
def test_supernet_with_rsign_and_rprelu_equals_extracted_subnet_which_exports_to_lce(module, tflite_ops):
    """One supernet per module (building a network is what costs here): two extracted subnets equal it, and the
    most grouped one (uniform 64: each layer at its largest group count LCE lowers) converts fully binary with
    RSign's SUB + LceQuantize and RPReLU's PRELU, matching Keras."""
    train, test = digits_images()
    arch = architecture(module, SHAPE, 10, 0.5)
    space = lm.SearchSpace(arch)
    supernet = sn.build_supernet(space, **REACT)
    _randomize_method_layers(supernet, seed=2)
    rng = random.Random(3)
    for genotype in [space.sample(rng), space.uniform(64)]:
        sn.set_genotype(supernet, genotype)
        recalibrate_batchnorm(supernet, [train[:128], train[128:]])  # realistic statistics from real images
        subnet = sn.extract_subnet(supernet, genotype)
        assert network_options(subnet) == REACT
        ref = supernet(test[:48], training=False).numpy()
        diff = np.abs(ref - subnet(test[:48], training=False).numpy()).max()
        scale = max(1.0, float(np.abs(ref).max()))
        assert diff <= 1e-5 * scale, (lm.encode(genotype), diff, scale)
    # LCE export of the last subnet (a fixed network of real grouped layers, as the pipeline exports)
    model = subnet
    assert max(genotype) > 1  # grouped binary convs
    flatbuffer = ex.export_tflite(model)  # refuses if any binary conv stays float
    census = ex.op_census(flatbuffer)
    convs = ex.binary_convs(model)
    n_binary = sum(c.binary for c in arch.convs)
    assert len(convs) == n_binary and census[ex.LCE_BCONV] == n_binary
    assert ex.unlowered_layers(model, flatbuffer) == {}
    assert "LceDequantize" not in census and "PADV2" not in census
    # RPReLU: TFLite's builtin PRELU, two per block; RSign: one float SUB before each LceQuantize
    # one LceQuantize per threshold: per binary 3x3 conv and binary pointwise input (M3's halves share one)
    n_quantize = sum(isinstance(l, LearnableThreshold) for l in model.layers)
    assert n_quantize == {"m1": 21, "m2": 21, "m3": 26}[module]
    assert census["PRELU"] == 26 and census["LceQuantize"] == n_quantize
    ops = tflite_ops(flatbuffer)
    for i, op in enumerate(ops):
        if op.name == "LceQuantize":
            assert ops[i - 1].name == "SUB", [o.name for o in ops[i - 2 : i + 1]]
    # logits within 1e-4 of Keras on samples without near ties (a sign input within 1e-5 of 0)
    margins = ex.sign_margins(model, test)
    clear = test[margins >= ex.DEFAULT_TIE_MARGIN][:48]
    assert len(clear) >= 16, f"only {len(clear)} of {len(test)} real images without near ties"
    report = ex.verify_tflite(model, flatbuffer, clear)
    assert report.max_abs_diff < 1e-4, report
    assert report.top1_agreement == 1.0 and report.num_near_tie == 0


# ----------------------------------------------------------------------------------------------------------
# Bop


def _bop_cfg(**kw):
    return TrainConfig(optimizer="bop", schedule="constant", learning_rate=1e-3, bop_threshold=1e-8,
                       bop_gamma=1e-4, **kw)


def test_bop_case_optimizer_claims_exactly_the_binary_kernels():
    model = small_react_model("m1")  # read only: making the optimizer changes nothing in the model
    opt = make_optimizer(_bop_cfg(), 10, model)
    assert isinstance(opt, lq.optimizers.CaseOptimizer)
    assert isinstance(opt.optimizers[0], lq.optimizers.Bop)
    assert isinstance(opt.optimizers[1], tf.keras.optimizers.legacy.Adam)  # larq needs legacy optimizers
    binary = [v.name for v in model.trainable_variables if is_binary_kernel(v)]
    expected = [f"{c.name}/kernel:0" for c in ex.binary_convs(model)]
    assert sorted(binary) == sorted(expected) and len(binary) == 21
    with pytest.raises(ValueError, match="needs the model"):
        make_optimizer(_bop_cfg(), 10)
    # a model without binary kernels (two-step's step 1) trains with Adam alone
    arch = architecture("m1", (16, 16, 1), 4, 0.25)
    step1 = build_network(arch, fixed_conv_factory(arch.uniform_genotype(1), binary_weights=False), "s1")
    assert isinstance(make_optimizer(_bop_cfg(), 10, step1), tf.keras.optimizers.legacy.Adam)


def test_bop_step_flips_binary_kernels_by_its_rule_and_adam_trains_the_rest(rng):
    tf.keras.utils.set_random_seed(5)
    model = lm.build_model("m1", 1, input_shape=(16, 16, 1), num_classes=4, width_multiplier=0.25, **REACT)
    opt = make_optimizer(_bop_cfg(), 10, model)
    model.compile(opt, loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # what `training.fit` does before Keras traces the train step: the optimizer's slots exist (zero) before the
    # first step, which must still be Bop's and Adam's first step below, traced once
    create_training_variables(model, model, tf.TensorSpec([None], tf.int64))
    x = rng.normal(size=(16, 16, 16, 1)).astype(np.float32)
    y = rng.integers(0, 4, size=16)
    # Bop's first step from ±1 kernels: m = gamma * grad; flip w where w * m > threshold
    for v in model.trainable_variables:
        if is_binary_kernel(v):
            v.assign(np.where(v.numpy() >= 0, 1.0, -1.0))
    before = {v.name: v.numpy().copy() for v in model.trainable_variables}
    with tf.GradientTape() as tape:
        loss = model.compiled_loss(tf.constant(y), model(x, training=True))
    grads = dict(zip([v.name for v in model.trainable_variables],
                     [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]))
    model.train_on_batch(x, y)
    flips = 0
    for v in model.trainable_variables:
        w0, w1, g = before[v.name], v.numpy(), grads[v.name]
        if is_binary_kernel(v):
            m = 1e-4 * g
            expected = np.where(w0 * m > 1e-8, -w0, w0)
            np.testing.assert_array_equal(w1, expected, err_msg=v.name)
            flips += int((w1 != w0).sum())
        elif np.abs(g).max() > 0:
            # (legacy) Adam's first step: -lr * g / (|g| + eps / sqrt(1 - beta_2)), eps = 1e-7
            expected = w0 - 1e-3 * g / (np.abs(g) + 1e-7 / np.sqrt(1 - 0.999))
            np.testing.assert_allclose(w1, expected, rtol=1e-4, atol=1e-7, err_msg=v.name)
    assert flips > 0 and model.train_function.experimental_get_tracing_count() == 1
    names = {v.name for v in model.trainable_variables}
    assert sum(is_binary_kernel(v) for v in model.trainable_variables) == 21 and len(names) > 21


def test_bop_trains_the_supernets_shared_kernels_and_genotypes_keep_changing():
    space = lm.SearchSpace(architecture("m1", (16, 16, 1), 4, 0.5))
    supernet = sn.build_supernet(space, **REACT)
    searchable = {l.kernel.name for l in sn.searchable_layers(supernet) if l.binary}
    assert searchable and all(isinstance(l.kernel, lq.quantized_variable.QuantizedVariable)
                              for l in sn.searchable_layers(supernet) if l.binary)
    binary = {v.name for v in supernet.trainable_variables if is_binary_kernel(v)}
    assert searchable <= binary  # the shared masked kernels are recognised as binary
    assert binary == {f"{c.name}/kernel:0" for c in ex.binary_convs(supernet)}
    opt = make_optimizer(_bop_cfg(), 10, supernet)
    supernet.compile(opt, loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    create_training_variables(supernet, supernet, tf.TensorSpec([None], tf.int64))  # as `training.fit` does
    sampler = sn.RandomGenotype(space, seed=0)
    seen = []

    class Record(tf.keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(sn.get_genotype(supernet))

    x = np.random.default_rng(0).normal(size=(32, 16, 16, 1)).astype(np.float32)
    supernet.fit(x, np.arange(32) % 4, batch_size=8, epochs=1, verbose=0, callbacks=[sampler, Record()])
    # larq's CaseOptimizer does not count its own steps: the sampler reads the wrapped optimizer's count
    assert sn.optimizer_step(opt) == 4 and len(set(seen)) > 1
    assert supernet.train_function.experimental_get_tracing_count() == 1  # one trace for every genotype
    mapped = {v.name for v in supernet.trainable_variables if opt.var_opt_mapping[lq.optimizers._var_key(v)] == 0}
    assert mapped == binary


# ----------------------------------------------------------------------------------------------------------
# Distributional loss


def test_distributional_loss_equals_its_formula():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(5, 7)) * 3, rng.normal(size=(5, 7)) * 3

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    expected = np.mean(-np.sum(softmax(teacher) * np.log(softmax(student)), axis=-1))
    got = distributional_loss(tf.constant(teacher, tf.float32), tf.constant(student, tf.float32)).numpy()
    assert got == pytest.approx(expected, rel=1e-5)
    # The Distiller trains with exactly this loss (the labels only feed the accuracy metric).
    x = rng.normal(size=(6, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2])
    t_model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3)])
    s_model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3)])
    distiller = Distiller(s_model, t_model)
    distiller.compile(optimizer="sgd", loss=tf.keras.losses.CategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    result = distiller.evaluate(x, labels, batch_size=6, verbose=0, return_dict=True)
    t_logits, s_logits = t_model(x).numpy(), s_model(x).numpy()
    assert result["loss"] == pytest.approx(np.mean(-np.sum(softmax(t_logits) * np.log(softmax(s_logits)), -1)),
                                           rel=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(s_logits.argmax(-1) == labels))
    assert not distiller.trainable_weights[0] is t_model.weights[0] and len(distiller.trainable_weights) == 2
    with pytest.raises(ValueError, match="same classes"):
        Distiller(s_model, tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(5)]))


# ----------------------------------------------------------------------------------------------------------
# MoBiNet-style baseline


def test_mobinet_genotype_is_depthwise_in_the_paper_space():
    arch = architecture("m1", SHAPE, 10, 0.5)
    genes = mobinet_genotype(arch)
    assert genes == tuple(c.in_channels for c in arch.gene_layers)
    assert baseline_genotype(arch, "mobinet") == genes
    assert lm.SearchSpace(arch, "paper").uniform(10**6) == genes  # the uniform groups = channels genotype
    assert not lm.SearchSpace(arch).contains(genes)  # outside the LCE space
    m2 = architecture("m2", SHAPE, 10, 0.5)
    assert mobinet_genotype(m2)[13:] == (1,) * 5  # M2's float pointwise genes stay ungrouped
    model = lm.build_model("m1", genes, input_shape=SHAPE, num_classes=10, width_multiplier=0.5,
                           lce_compatible=False)
    convs = {c.name: c for c in ex.binary_convs(model)}
    assert all(not convs[f"block{i}_conv3x3"].lowerable for i in range(1, 14))
    assert count_costs(arch, genes).flops < count_costs(arch, 1).flops
    with pytest.raises(ValueError, match=r"Unknown baseline 'quicknet'; allowed: \['mobinet'\]"):
        baseline_genotype(arch, "quicknet")
