"""Width genes and the elastic supernet: genotype strings (old ones unchanged), FLOPs against an independent count,
supernet = extracted subnet for random joint genotypes on M1/M2/M3, one trace for many genotypes, zero gradient
outside the active subnet, and LCE export of narrowed joint genotypes."""

import functools
import math
import random

import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf

import larq_mobisearch as lm
from larq_mobisearch.deploy import export_tflite, sign_margins
from larq_mobisearch.nn import supernet as sn
from larq_mobisearch.nn.batchnorm import recalibrate_batchnorm
from larq_mobisearch.nn.layers import BinaryGroupConv2D
from larq_mobisearch.nn.space import SearchSpace, decode, encode
from larq_mobisearch.nn.specs import architecture, round_channels
from larq_mobisearch.search.costs import WidthFlopsCostModel, count_costs, flops_cost_model

SHAPE = (32, 32, 1)
CLASSES = 10


def _space(module, genes="joint", width=0.5):
    return SearchSpace(architecture(module, SHAPE, CLASSES, width), "lce", genes=genes)


@functools.lru_cache(maxsize=None)
def joint_supernet(module):
    """The elastic supernet of `module`'s joint space (seeded weights), built once per process: building it is
    what costs. No user changes a kernel (the training-step test only takes gradients), and each sets the genotype
    it needs and recalibrates BatchNorm for it (reset and recomputed exactly) before reading outputs: what an
    earlier test left (genotype, moving statistics) does not matter."""
    tf.keras.utils.set_random_seed(0)
    return sn.build_supernet(_space(module))


def test_round_channels_rule():
    # multiples of 32 from 64 channels on (LCE's 32 per group), multiples of 8 below, half rounds up
    assert [round_channels(c) for c in (96, 80, 79, 112, 64, 63, 48, 20, 3)] == [96, 96, 64, 128, 64, 64, 48, 24, 8]


def test_genotype_strings_round_trip_and_old_strings_keep_their_meaning():
    space = _space("m1")
    rng = random.Random(3)
    for _ in range(20):
        g = space.sample(rng)
        text = space.encode(g)
        assert "_w" in text and decode(text) == g and space.validate(text) == g
    old = "1-1-2-2-1-2-8-4-4-1-8-1-4"
    assert decode(old) == (1, 1, 2, 2, 1, 2, 8, 4, 4, 1, 8, 1, 4) and encode(decode(old)) == old
    groups_space = _space("m1", genes="groups")
    assert groups_space.validate(old) == decode(old)
    # in a width space the old string means the blocks at the model's own widths
    assert space.validate(old) == decode(old) + space.arch.block_channels
    assert space.resolve(space.validate(old))[0] == space.arch
    with pytest.raises(ValueError, match="at most one"):
        decode("1-2_w32_w64")
    with pytest.raises(ValueError, match="Invalid width 40 for block 2"):
        space.validate(old + "_w" + "-".join(["32", "40"] + [str(c) for c in space.arch.block_channels[2:]]))


def test_joint_space_is_canonical_and_legal():
    space = _space("m1")
    rng = random.Random(0)
    for _ in range(50):
        raw = tuple(rng.choice(c) for c in space.candidates)
        g = space.canonical(raw)
        space.validate(g)  # raises if a group count is illegal at its widths
        arch, groups = space.resolve(g)
        for conv in arch.gene_layers:  # LCE: 32 input channels per group
            assert groups[conv.gene] == 1 or (conv.in_channels // groups[conv.gene]) % 32 == 0


def _independent_flops(module, widths, groups, classes=CLASSES, input_shape=SHAPE, width=0.5):
    """MobileNet FLOPs from the paper's layer list (BOPs / 64 + float FLOPs), written without `specs`."""
    base = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)] + \
        [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]
    h = math.ceil(input_shape[0] / 2)
    stem = int(round(32 * width))
    flops = h * h * 9 * input_shape[2] * stem
    cin = stem
    float_gene = 13
    for i, ((bi, bo, s), cout) in enumerate(zip(base, widths)):
        out = math.ceil(h / s)
        bops = out * out * 9 * (cin // groups[i]) * cin
        if module == "m3" or bi == bo:  # binary 1x1 (M3: two halves of cout/2, the same MACs)
            bops += out * out * cin * cout
        else:  # float 1x1 (M2: grouped by its own gene)
            g = groups[float_gene] if module == "m2" else 1
            float_gene += module == "m2"
            flops += out * out * (cin // g) * cout
        flops += bops / 64
        cin, h = cout, out
    return flops + cin * classes


@pytest.mark.parametrize("module", ["m1", "m2", "m3"])
def test_joint_flops_equal_an_independent_count(module):
    space = _space(module)
    model = flops_cost_model(space)
    assert isinstance(model, WidthFlopsCostModel)
    rng = random.Random(11)
    costs = []
    for _ in range(25):
        g = space.sample(rng)
        groups, widths = space.split(g)
        expected = _independent_flops(module, widths, groups)
        assert model.cost(g) == pytest.approx(expected, rel=1e-12), space.encode(g)
        costs.append(model.cost(g))
    # the exact minimum (dynamic programme over the blocks) is below every sample and reached by the smallest
    assert model.min_cost() <= min(costs)
    assert model.min_cost() == pytest.approx(model.cost(space.smallest()), rel=1e-12)
    assert model.cost(space.largest()) >= max(costs)
    # a groups-only genotype costs what it cost before width genes
    base = space.uniform(1)
    assert model.cost(base) == pytest.approx(count_costs(space.arch, 1).flops, rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("module", ["m1", "m2", "m3"])
def test_supernet_equals_extracted_subnet_for_joint_genotypes(module):
    space = _space(module)
    supernet = joint_supernet(module)
    x = np.random.default_rng(1).uniform(-1, 1, (32,) + SHAPE).astype(np.float32)
    rng = random.Random(7)
    genotypes = [space.sample(rng) for _ in range(2)] + [space.smallest()]
    predict = tf.function(lambda t: supernet(t, training=False))
    for genotype in genotypes:
        sn.set_genotype(supernet, genotype)
        recalibrate_batchnorm(supernet, [x[:16], x[16:]])
        assert sn.get_genotype(supernet) == genotype
        subnet = sn.extract_subnet(supernet, genotype)
        arch, groups = space.resolve(genotype)
        convs = {l.name: l for l in subnet.layers if isinstance(l, BinaryGroupConv2D)}
        for spec in arch.convs[1:]:  # real layers at the genotype's widths and group counts
            if spec.binary:
                assert convs[spec.name].filters == spec.out_channels
                assert convs[spec.name].groups == (1 if spec.gene is None else groups[spec.gene])
        ref = predict(x).numpy()
        out = subnet(x, training=False).numpy()
        # A sign input within float rounding of 0 may flip between two summation orders. Zero-padded shortcuts
        # (a block wider than its input) make such near ties common (those channels are a BatchNorm of a binary
        # conv's discrete outputs), so: every sample without one must match, and nearly all samples do.
        scale = max(1.0, float(np.abs(ref).max()))
        matches = np.abs(ref - out).max(axis=1) <= 1e-5 * scale
        clear = sign_margins(subnet, x) > 1e-5
        assert matches[clear].all(), space.encode(genotype)
        assert matches.mean() >= 0.9, (space.encode(genotype), matches.mean())
    assert predict.experimental_get_tracing_count() == 1


@pytest.mark.slow
def test_training_steps_with_different_genotypes_trace_once_and_touch_only_the_subnet():
    space = _space("m1")
    supernet = joint_supernet("m1")  # gradients only: no weight changes
    x = np.random.default_rng(0).uniform(-1, 1, (8,) + SHAPE).astype(np.float32)
    y = np.arange(8) % CLASSES
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    kernels = [l.kernel for l in sn.searchable_layers(supernet)]

    @tf.function
    def grads(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, supernet(images, training=True))
        return tape.gradient(loss, kernels)

    rng = random.Random(2)
    for _ in range(4):
        genotype = space.sample(rng)
        sn.set_genotype(supernet, genotype)
        arch, groups = space.resolve(genotype)
        for layer, kernel_grad, spec in zip(sn.searchable_layers(supernet), grads(x, y), arch.gene_layers):
            g = groups[spec.gene]
            cin, cout = spec.in_channels, spec.out_channels
            used = np.zeros(layer.kernel.shape, bool)  # NumPy: the slice's diagonal blocks
            for j in range(g):
                used[:, :, j * cin // g:(j + 1) * cin // g, j * cout // g:(j + 1) * cout // g] = True
            np.testing.assert_array_equal(layer.kernel_mask().numpy().astype(bool), used)
            assert not np.any(kernel_grad.numpy()[~used]), f"gradient outside the subnet in {layer.name}"
            assert np.any(kernel_grad.numpy()[used])
    assert grads.experimental_get_tracing_count() == 1


def test_narrow_joint_genotypes_export_fully_binary_and_match_keras():
    space = _space("m1")
    supernet = joint_supernet("m1")
    r = np.random.default_rng(4)
    calibration = r.normal(size=(64,) + SHAPE).astype(np.float32)
    x = r.normal(size=(32,) + SHAPE).astype(np.float32)
    rng = random.Random(4)
    for _ in range(2):
        genotype = space.sample(rng)
        assert space.split(genotype)[1] != space.widths[-1]  # not the largest widths
        sn.set_genotype(supernet, genotype)
        recalibrate_batchnorm(supernet, [calibration[:32], calibration[32:]])
        model = sn.extract_subnet(supernet, genotype)
        flatbuffer = export_tflite(model)  # raises if any binary conv did not become an LceBconv2d
        lce_logits = lce.testing.Interpreter(flatbuffer, use_indirect_bgemm=True).predict(x)
        keras = model(x, training=False).numpy()
        clear = sign_margins(model, x) > 1e-5  # as the export's numerics gate: near ties set aside
        close = np.abs(lce_logits - keras).max(axis=1) <= 1e-3 * max(1.0, np.abs(keras).max())
        assert clear.sum() >= len(x) // 4 and close[clear].all(), (space.encode(genotype), clear.sum())
        assert (lce_logits[clear].argmax(-1) == keras[clear].argmax(-1)).all()


def test_width_genes_refuse_per_channel_activations():
    with pytest.raises(ValueError, match="RSign and RPReLU"):
        sn.build_supernet(_space("m1"), activation="rsign")
    with pytest.raises(lm.config.ConfigError, match="model.space_genes"):
        lm.config.load_config(overrides=["model.space_genes=joint", "model.activation=rsign"])


@pytest.mark.slow
def test_joint_pipeline_on_digits_learns_and_exports_a_narrowed_winner(tmp_path):
    """`mobisearch run` with width genes at half the FLOPs of uniform g=1: the winner carries widths, fits the
    budget, learned (test top-1 far above the 10% of chance) and exported fully binary."""
    import json

    from click.testing import CliRunner

    from larq_mobisearch.cli import main

    run_dir = tmp_path / "run"
    # Digits at their native 8x8 and base width 0.5 (wider binary nets learn more per epoch; at 8x8 a step costs
    # about the same): 3 supernet + 4 retraining epochs at Adam 1e-2. Measured on the shared 2-core machine:
    # supernet fitness 0.41 (chance 0.1), the retrained winner 0.75 test top-1. No float-twin conversion at export
    # (its size is checked in test_export.py; a second conversion costs seconds).
    settings = ["data.image_size=8", "model.width_multiplier=0.5", "model.space_genes=joint",
                "search.flops_budget_fraction=0.5", "supernet.epochs=3", "supernet.learning_rate=1e-2",
                "retrain.epochs=4", "retrain.learning_rate=1e-2", "search.population=4", "search.top_k=2",
                "search.crossover=1", "search.mutation=1", "search.iterations=2", "search.recalibration_batches=1",
                "search.random_baseline_samples=0", "export.verify_samples=16", "export.float_size=false"]
    args = ["run", "--quiet", "--run-dir", str(run_dir)] + [a for s in settings for a in ("--set", s)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((run_dir / "searches" / "default" / "report.json").read_text())
    final = json.loads((run_dir / "searches" / "default" / "final" / "done.json").read_text())
    search = json.loads((run_dir / "searches" / "default" / "search" / "result.json").read_text())
    assert "_w" in final["genotype"] and final["genotype"] == search["genotype"]
    assert search["costs"]["flops"] <= search["budgets"]["flops"]
    assert search["fitness"] > 0.3  # held-out top-1 of the supernet (chance: 0.1)
    assert final["test_accuracy"] >= 0.6, final  # 4 epochs of a half-FLOPs M1 (base width 0.5, 8x8) on digits
    exported = json.loads((run_dir / "searches" / "default" / "export.json").read_text())
    assert exported["verification"]["passed"] and exported["fully_binary"], exported
    assert exported["tflite_bytes"] > 0 and exported.get("float_tflite_bytes") is None, exported
    assert report


@pytest.mark.parametrize("module", ["m1", "m3"])
def test_assign_genotype_inside_a_function_sets_what_set_genotype_sets(module):
    space = _space(module)
    supernet = joint_supernet(module)
    state = lambda: [(l.groups.numpy(), l.active_in.numpy(), l.active_out.numpy())  # noqa: E731
                     for l in supernet.layers if isinstance(l, sn.ElasticConv)]
    assign = tf.function(lambda row: sn.assign_genotype(supernet, row))
    rng = random.Random(9)
    for _ in range(3):
        genotype = space.sample(rng)
        sn.set_genotype(supernet, genotype)
        expected = state()
        sn.set_genotype(supernet, space.largest())
        assign(tf.constant(genotype, tf.int32))
        assert state() == expected and sn.get_genotype(supernet) == genotype
    assert assign.experimental_get_tracing_count() == 1


def test_repair_sampling_under_a_tight_budget_gives_legal_joint_genotypes():
    """Rejection sampling that finds nothing falls back to bounded repairs; on the joint space those must cost
    and return canonical genotypes (a raw draw can hold a group count its width makes illegal: found by the
    Pareto benchmark's 0.35x search, which crashed in `count_costs`)."""
    from larq_mobisearch.search.problem import Constraint, Problem

    space = _space("m1")
    model = flops_cost_model(space)
    budget = 0.35 * model.cost(space.uniform(1, 1.0))
    problem = Problem(space, (Constraint(model, budget),), max_tries=1)  # one draw: the repair path does the work
    rng, found = random.Random(3), []
    for _ in range(20):
        g = problem.sample(rng, set(found))
        if g is not None:
            found.append(g)
    assert found
    for g in found:
        assert problem.legal(g) and model.cost(g) <= budget
        assert count_costs(*space.resolve(g)).flops == pytest.approx(model.cost(g), rel=1e-12)
