"""Analytic costs: the paper's Table 1, the additive FLOPs cost model, and Larq's own MAC counts of built models."""

import math
import random

import larq as lq
import pytest
from tensorflow.python.autograph.core import ag_ctx

from larq_mobisearch.search.costs import BOPS_PER_FLOP, FlopsCostModel, count_costs
from larq_mobisearch.nn.layers import BinaryGroupConv2D
from larq_mobisearch.nn.models import build_model
from larq_mobisearch.nn.space import SearchSpace
from larq_mobisearch.nn.specs import architecture

MODULES = ("m1", "m2", "m3")

# Paper Table 1: FLOPs (x 1e8) of uniform groups 1 / 4 / 16 at 224x224x3, 1000 classes.
TABLE1 = {
    "m1": {1: 2.13, 4: 1.63, 16: 1.50},
    "m2": {1: 2.13, 4: 0.67, 16: 0.30},
    "m3": {1: 0.87, 4: 0.37, 16: 0.24},
}


def truncated_hundredths_of_1e8(flops: float) -> int:
    """FLOPs in units of 1e6, truncated: 2.1357e8 -> 213 (the paper prints 2.13)."""
    return int(math.floor(flops / 1e6))


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("groups", [1, 4, 16])
def test_table1(module, groups):
    arch = architecture(module, (224, 224, 3), 1000, 1.0)
    costs = count_costs(arch, groups, check=True, lce_compatible=False)
    assert costs.flops == costs.bops / BOPS_PER_FLOP + costs.float_flops
    assert truncated_hundredths_of_1e8(costs.flops) == round(TABLE1[module][groups] * 100)


def test_table1_is_truncated_not_rounded():
    # The paper truncates: rounding would print 2.14 and 1.51 for M1 (g=1, g=16).
    arch = architecture("m1")
    assert round(count_costs(arch, 1).flops / 1e8, 2) == 2.14
    assert round(count_costs(arch, 16).flops / 1e8, 2) == 1.51


def test_table1_structure():
    m1, m2, m3 = (architecture(m) for m in MODULES)
    # M1 and M2 are the same network at one group; M2 differs only in grouping its five float 1x1 convs.
    assert count_costs(m1, 1) == count_costs(m2, 1)
    for g in (4, 16):
        c1, c2 = count_costs(m1, g), count_costs(m2, g)
        assert c1.bops == c2.bops and c2.float_flops < c1.float_flops
    # M3 has no float 1x1 convs: only the stem and the classifier are float.
    stem = m3.stem.macs()
    assert count_costs(m3, 16).float_flops == stem + m3.classifier_macs == 10838016 + 1024 * 1000


def test_uniform_16_needs_paper_space():
    arch = architecture("m1")
    with pytest.raises(ValueError, match="block1_conv3x3"):
        count_costs(arch, 16, check=True)  # 32 input channels / 16 groups = 2 per group: not LCE-lowerable
    with pytest.raises(ValueError, match="does not divide the channels of block1_conv3x3"):
        count_costs(arch, 3)


# ----------------------------------------------------------------------------------------------------------
# FlopsCostModel == count_costs


@pytest.mark.parametrize("module", MODULES)
@pytest.mark.parametrize("mode", ["lce", "paper"])
def test_flops_cost_model_agrees_with_count_costs(module, mode):
    arch = architecture(module, (224, 224, 3), 1000, 1.0)
    space = SearchSpace(arch, mode)
    model = FlopsCostModel(arch, space.candidates)
    r = random.Random(2 * MODULES.index(module) + (mode == "paper"))
    genotypes = [space.sample(r) for _ in range(200)] + [space.uniform(1), space.uniform(1024)]
    for genes in genotypes:
        assert model.cost(genes) == pytest.approx(count_costs(arch, genes).flops, rel=1e-12)
    cheapest = model.cheapest(space.candidates)
    assert cheapest == tuple(max(c) for c in space.candidates)  # more groups, fewer MACs, everywhere
    assert model.min_cost(space.candidates) == pytest.approx(count_costs(arch, cheapest).flops, rel=1e-12)
    assert model.min_cost(space.candidates) == pytest.approx(min(model.cost(g) for g in genotypes), rel=1e-12)


def test_flops_cost_model_default_table_is_paper_space():
    arch = architecture("m2")
    model = FlopsCostModel(arch)
    assert model.cost(SearchSpace(arch, "paper").uniform(16)) == pytest.approx(count_costs(arch, 16).flops)
    with pytest.raises(ValueError, match="genotype has 13 genes, the cost model expects 18"):
        model.cost((1,) * 13)
    with pytest.raises(ValueError, match="gene 0: group count 3 not in the cost table"):
        model.cost((3,) + (1,) * 17)


# ----------------------------------------------------------------------------------------------------------
# Cross-check against Larq's profiler on built models


SMALL = dict(input_shape=(40, 24, 3), num_classes=10, width_multiplier=0.5)


@pytest.fixture(scope="module", params=MODULES)
def profiled(request):
    """A built model with a random paper-space genotype (groups up to 16, LCE rule off) and Larq's profile."""
    module = request.param
    arch = architecture(module, **SMALL)
    space = SearchSpace(arch, "paper", max_groups=16)
    genes = space.sample(random.Random(MODULES.index(module)))
    assert len(set(genes)) > 2
    with ag_ctx.ControlStatusCtx(status=ag_ctx.Status.DISABLED):  # faster graph construction, same model
        model = build_model(module, genes, lce_compatible=False, **SMALL)
    return arch, genes, model, lq.models.ModelProfile(model)


def test_bops_equal_larq_binary_macs(profiled):
    arch, genes, model, profile = profiled
    costs = count_costs(arch, genes)
    assert profile.op_count("mac", 1) == costs.bops > 0
    assert profile.op_count("mac", 32) == costs.float_flops > 0
    # Nothing else is counted as MACs by Larq (BatchNorm, pooling, adds count 0): totals agree too.
    assert profile.op_count("mac") == costs.bops + costs.float_flops


def test_per_layer_macs_equal_larq(profiled):
    arch, genes, model, profile = profiled
    by_name = {p.name: p for p in profile.layer_profiles}
    for spec in arch.convs:
        g = 1 if spec.gene is None else genes[spec.gene]
        layer_profile = by_name[spec.name]
        precision = 1 if spec.binary else 32
        assert isinstance(model.get_layer(spec.name), BinaryGroupConv2D) == spec.binary
        assert layer_profile.op_count("mac", precision) == spec.macs(g), spec.name
        assert layer_profile.op_count("mac", 33 - precision) == 0
    assert by_name["classifier"].op_count("mac", 32) == arch.classifier_macs


def test_larq_summary_runs(profiled):
    arch, genes, model, profile = profiled
    lines = []
    lq.models.summary(model, print_fn=lines.append)
    text = "\n".join(lines)
    assert "block1_conv3x3" in text and "classifier" in text
    # Binary weights are stored as 1 bit: Larq sees the XnorWeight precision.
    assert profile.weight_count(1) == sum(
        spec.kernel**2 * (spec.in_channels // (1 if spec.gene is None else genes[spec.gene])) * spec.out_channels
        for spec in arch.convs
        if spec.binary
    )
