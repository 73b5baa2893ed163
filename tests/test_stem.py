"""The stem choice (``model.stem``): QuickNet's float stem, 4x down before the first binary conv.

Costs are checked against independent counts (hand arithmetic, Larq's own MAC profile of the built Keras model,
and the MobileNet-stem network at half the input, whose blocks see the same feature maps); the export must stay
fully binary and match Keras; the supernet must equal its extracted subnets; tables and run configs carry it.
"""

import random

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf

import larq_mobisearch  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from larq_mobisearch.config import ConfigError, load_config
from larq_mobisearch.deploy import export_tflite, sign_margins
from larq_mobisearch.deploy.latency_table import LatencyTable, LatencyTableError, architecture_info
from larq_mobisearch.nn import supernet as sn
from larq_mobisearch.nn.batchnorm import recalibrate_batchnorm
from larq_mobisearch.nn.models import build_model
from larq_mobisearch.nn.space import SearchSpace
from larq_mobisearch.nn.specs import architecture
from larq_mobisearch.search.costs import count_costs, flops_cost_model


def test_quicknet_stem_by_hand_at_224():
    arch = architecture("m1", (224, 224, 3), 1000, 1.0, stem="quicknet")
    conv, dw, pw = arch.stem_convs
    # 3x3 s2 conv 3 -> 8 at 112x112; 3x3 s2 depthwise on 8 channels at 56x56; 1x1 8 -> 32 at 56x56
    assert (conv.out_size, dw.out_size, pw.out_size) == ((112, 112), (56, 56), (56, 56))
    assert conv.macs() == 112 * 112 * 9 * 3 * 8 == 2_709_504
    assert dw.macs() == 56 * 56 * 9 * 8 == 225_792
    assert pw.macs() == 56 * 56 * 8 * 32 == 802_816
    assert arch.stem_channels == 32 and arch.blocks[0].in_size == (56, 56)
    # the blocks keep their strides: 56 -> 4 (224 / 64, rounded up by "same" padding)
    assert [b.out_size[0] for b in arch.blocks] == [56, 28, 28, 14, 14, 7, 7, 7, 7, 7, 7, 4, 4]
    mobilenet = architecture("m1", (224, 224, 3), 1000, 1.0)
    costs, base = count_costs(arch, 1), count_costs(mobilenet, 1)
    stems = sum(c.macs() for c in arch.stem_convs) - mobilenet.stem.macs()
    half = architecture("m1", (112, 112, 3), 1000, 1.0)  # the same block feature maps as the QuickNet stem at 224
    assert costs.bops == count_costs(half, 1).bops < base.bops / 3
    assert costs.float_flops == count_costs(half, 1).float_flops - half.stem.macs() + sum(
        c.macs() for c in arch.stem_convs)
    assert costs.float_flops - base.float_flops != stems  # the float 1x1 convs shrink too (M1)


@pytest.mark.parametrize("module", ["m2", "m3"])  # M2: grouped float 1x1 convs after the stem; M3: binary ones
def test_quicknet_stem_costs_equal_larq_profile(module):
    shape = (64, 48, 3)
    arch = architecture(module, shape, 10, 0.5, stem="quicknet")
    space = SearchSpace(arch, "paper", max_groups=8)
    genes = space.sample(random.Random(3))
    model = build_model(module, genes, shape, 10, 0.5, lce_compatible=False, stem="quicknet")
    profile = lq.models.ModelProfile(model)
    costs = count_costs(arch, genes)
    assert profile.op_count("mac", 1) == costs.bops > 0
    assert profile.op_count("mac", 32) == costs.float_flops > 0
    assert isinstance(model.get_layer("stem_dw"), tf.keras.layers.DepthwiseConv2D)
    assert model.get_layer("stem_pw").output_shape[1:3] == (16, 12)


def test_quicknet_stem_in_the_joint_space_flops_model():
    arch = architecture("m1", (32, 32, 1), 10, 0.5, stem="quicknet")
    space = SearchSpace(arch, "lce", genes="joint")
    model = flops_cost_model(space)
    rng = random.Random(0)
    for _ in range(5):
        genotype = space.sample(rng)
        resolved, groups = space.resolve(genotype)
        assert model.cost(genotype) == pytest.approx(count_costs(resolved, groups).flops)
    brute = min(model.cost(space.sample(rng)) for _ in range(300))
    assert model.min_cost() <= brute and model.min_cost() == pytest.approx(model.cost(space.smallest()))


def _calibrated(model, shape, seed):
    r = np.random.default_rng(seed)
    calibration = r.normal(size=(64,) + shape).astype(np.float32)
    recalibrate_batchnorm(model, [calibration[:32], calibration[32:]])
    return r.normal(size=(32,) + shape).astype(np.float32)


@pytest.mark.slow
def test_quicknet_stem_exports_fully_binary_and_matches_keras():
    module, shape = "m3", (64, 64, 3)  # the stem is the same for every module; M3's export also fuses pointwise pairs
    arch = architecture(module, shape, 10, 1.0, stem="quicknet")
    genes = SearchSpace(arch, "lce").sample(random.Random(5))
    assert max(genes) > 1
    tf.keras.utils.set_random_seed(1)
    model = build_model(module, genes, shape, 10, 1.0, stem="quicknet")
    x = _calibrated(model, shape, 2)
    flatbuffer = export_tflite(model)  # raises if any binary conv did not become an LceBconv2d
    lce_logits = lce.testing.Interpreter(flatbuffer, use_indirect_bgemm=True).predict(x)
    keras = model(x, training=False).numpy()
    clear = sign_margins(model, x) > 1e-5
    close = np.abs(lce_logits - keras).max(axis=1) <= 1e-3 * max(1.0, np.abs(keras).max())
    assert clear.sum() >= len(x) // 4 and close[clear].all()


@pytest.mark.slow
def test_quicknet_stem_supernet_equals_extracted_subnet():
    shape = (32, 32, 1)
    space = SearchSpace(architecture("m3", shape, 10, 0.5, stem="quicknet"), "lce", genes="joint")
    tf.keras.utils.set_random_seed(0)
    supernet = sn.build_supernet(space)
    x = np.random.default_rng(1).uniform(-1, 1, (32,) + shape).astype(np.float32)
    rng = random.Random(7)
    for genotype in (space.sample(rng), space.smallest()):
        sn.set_genotype(supernet, genotype)
        recalibrate_batchnorm(supernet, [x[:16], x[16:]])
        subnet = sn.extract_subnet(supernet, genotype)
        assert subnet.get_layer("stem_dw").get_weights()[0].shape == (3, 3, 8, 1)
        ref = supernet(x, training=False).numpy()
        out = subnet(x, training=False).numpy()
        matches = np.abs(ref - out).max(axis=1) <= 1e-5 * max(1.0, float(np.abs(ref).max()))
        clear = sign_margins(subnet, x) > 1e-5
        assert matches[clear].all() and matches.mean() >= 0.9, space.encode(genotype)


def test_latency_tables_and_configs_carry_the_stem():
    quick = architecture("m3", (32, 32, 3), 10, 1.0, stem="quicknet")
    plain = architecture("m3", (32, 32, 3), 10, 1.0)
    assert "stem" not in architecture_info(plain)  # tables of the default stem keep their old form
    table = LatencyTable(machine={"threads": 1}, source="host", entries={}, fixed_ms=1.0,
                         architecture=architecture_info(plain))
    table.check_architecture(plain)
    with pytest.raises(LatencyTableError, match="quicknet stem"):
        table.check_architecture(quick)
    cfg = load_config(preset="digits", overrides=["model.stem=quicknet"])
    assert cfg.model.stem == "quicknet"
    with pytest.raises(ConfigError, match="model.stem"):
        load_config(preset="digits", overrides=["model.stem=resnet"])
