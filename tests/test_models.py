"""M1/M2/M3 models: structure from `specs`, LCE lowering (op census) and LCE-vs-Keras agreement, genotype errors.

One conversion per module (module-scoped fixture) with the library's own `export_tflite` (its lowering check
included): M1, M2 (grouped float 1x1 convs), M3 with its pointwise pairs fused (the default export) and M3
unfused (sliced shortcuts and concatenations). The expected ops are derived from `specs` independently of the
export code; the LCE logits are compared with the (unfused) Keras model's.
"""

import collections
from types import SimpleNamespace

import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.autograph.core import ag_ctx

from larq_mobisearch.nn.batchnorm import recalibrate_batchnorm
from larq_mobisearch.nn.layers import BinaryGroupConv2D, GroupConv2D
from larq_mobisearch.nn.models import build_model
from larq_mobisearch.nn.space import SearchSpace
from larq_mobisearch.nn.specs import architecture

INPUT_SHAPE = (32, 32, 1)
NUM_CLASSES = 10
WIDTH = 0.5
MODULES = ("m1", "m2", "m3")
N_TEST = 32  # random test images compared between LCE and Keras
MIN_CLEAR = N_TEST // 2  # images without a near tie, of N_TEST; see test_lce_matches_keras


def no_autograph():
    """Autograph off while graphs are traced: building and BatchNorm recalibration run 2-3x faster here, with the
    same result (the layers' `call`s have no tensor-dependent Python control flow)."""
    return ag_ctx.ControlStatusCtx(status=ag_ctx.Status.DISABLED)


VARIANTS = ("m1", "m2", "m3", "m3-unfused")


@pytest.fixture(scope="module", params=VARIANTS)
def exported(request, tflite_ops):
    from larq_mobisearch.deploy import export_tflite, sign_margins

    variant = request.param
    module, fused = variant.split("-")[0], not variant.endswith("-unfused")
    arch = architecture(module, INPUT_SHAPE, NUM_CLASSES, WIDTH)
    genes = SearchSpace(arch).uniform(2)
    assert any(g > 1 for g in genes)
    tf.keras.utils.set_random_seed(MODULES.index(module))
    r = np.random.default_rng(MODULES.index(module))
    calibration = r.normal(size=(64, *INPUT_SHAPE)).astype(np.float32)
    x = r.normal(size=(N_TEST, *INPUT_SHAPE)).astype(np.float32)
    with no_autograph():
        model = build_model(module, genes, INPUT_SHAPE, NUM_CLASSES, WIDTH)
        assert recalibrate_batchnorm(model, [calibration[:32], calibration[32:]]) == 64
        flatbuffer = export_tflite(model, fuse_pointwise=fused)  # raises if a conv did not lower as expected
    lce_logits = lce.testing.Interpreter(flatbuffer, use_indirect_bgemm=True).predict(x)
    keras_logits = model(x, training=False).numpy()  # eager: no predict_function to trace
    return SimpleNamespace(
        module=module,
        fused=fused,
        arch=arch,
        genes=genes,
        model=model,
        ops=tflite_ops(flatbuffer),
        lce_logits=lce_logits,
        keras_logits=keras_logits,
        margins=sign_margins(model, x),
    )


def exported_specs(arch, fused):
    """The convolutions the flatbuffer must hold, from `specs` alone: with `fused`, each M3 pair
    blockN_pw_a / blockN_pw_b (Cin -> Cout/2 each) is one binary 1x1 conv Cin -> Cout."""
    out = []
    for spec in arch.convs:
        if fused and spec.name.endswith("_pw_b"):
            a = out.pop()
            out.append(SimpleNamespace(**{**vars(a), "name": spec.name[:-2], "out_channels": 2 * spec.out_channels}))
        else:
            out.append(SimpleNamespace(**{k: getattr(spec, k) for k in spec.__dataclass_fields__},
                                       binary=spec.binary))
    return out


def conv_signature(spec, genes):
    g = 1 if spec.gene is None else genes[spec.gene]
    return (spec.in_channels, spec.out_channels, spec.kernel, spec.stride, g)


@pytest.mark.slow
def test_op_census(exported):
    arch, genes, ops = exported.arch, exported.genes, exported.ops
    census = collections.Counter(op.name for op in ops)
    specs = exported_specs(arch, exported.fused)
    binary = [c for c in specs if c.binary]
    floats = [c for c in specs if not c.binary]
    expected = {"m1": 21, "m2": 21, "m3": 26 if exported.fused else 39}[exported.module]
    assert census["LceBconv2d"] == len(binary) == expected
    assert census["CONV_2D"] == len(floats) == (1 if exported.module == "m3" else 6)
    # No binary conv fell back to float (LCE's fallback goes through LceDequantize + float conv).
    for name in ("LceDequantize", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"):
        assert census[name] == 0, census
    assert census["LceQuantize"] >= 1 and census["FULLY_CONNECTED"] == 1
    if exported.module == "m3":
        # unfused: one concatenation per block, two input slices per block with Cout = Cin; fused: only the
        # duplicated input of the 5 blocks with Cout = 2 Cin (shortcut concat(x, x)), no slices
        n_double = sum(b.out_channels == 2 * b.in_channels for b in arch.blocks)
        assert census["CONCATENATION"] == (n_double if exported.fused else 13)
        assert census["STRIDED_SLICE"] + census["SLICE"] == (0 if exported.fused else 2 * (13 - n_double))

    # Each LceBconv2d is one binary conv of the model: (channels in, out, kernel, stride, groups) multisets agree.
    # Filters are bit-packed (Cout, k, k, ceil(Cin/groups/32)); channels_in is in the custom options.
    lce_convs = []
    for op in ops:
        if op.name == "LceBconv2d":
            cout, kh, kw, packed = op.inputs[1]
            cin = op.options["channels_in"]
            assert kh == kw and op.options["stride_height"] == op.options["stride_width"]
            assert op.options["pad_values"] == 1 and op.options["padding"] == 0  # SAME, padded with +1
            groups = max(1, cin // (32 * packed))  # exact: grouped LceBconv2d need a multiple of 32 per group
            lce_convs.append((cin, cout, kh, op.options["stride_height"], groups))
    assert sorted(lce_convs) == sorted(conv_signature(c, genes) for c in binary)

    float_convs = []
    for op in ops:
        if op.name == "CONV_2D":
            cout, kh, kw, cin_per_group = op.inputs[1]
            cin = op.inputs[0][-1]
            float_convs.append((cin, cout, kh, op.options.strideH, cin // cin_per_group))
    assert sorted(float_convs) == sorted(conv_signature(c, genes) for c in floats)
    # The genotype really has grouped convs that LCE lowered.
    assert any(sig[-1] > 1 for sig in lce_convs)
    if exported.module == "m2":
        assert any(sig[-1] > 1 for sig in float_convs)


def test_lce_matches_keras(exported):
    """LCE's interpreter (fused flatbuffer for M3) gives the unfused Keras model's logits within 1e-4 x logit
    scale after BatchNorm recalibration, on every image without a near tie.

    Not on every random image: a binarized activation within float rounding (~1e-6..1e-5 here) of zero can
    take different signs in the two runtimes, and one flipped bit changes the logits by O(1) (measured: about
    1 image in 16, with the flipped activation at |x| ~ 3e-8). Such images (`sign_margins` < 1e-5) are
    excluded (measured: 23-30 of 32 images are clear at 1e-5); at least MIN_CLEAR must be.
    """
    lce_logits, keras_logits = exported.lce_logits, exported.keras_logits
    assert lce_logits.shape == keras_logits.shape == (N_TEST, NUM_CLASSES)
    assert np.all(np.isfinite(lce_logits))
    assert np.abs(keras_logits).max() > 0.1  # a non-degenerate network
    per_image = np.abs(lce_logits - keras_logits).max(axis=1)
    tol = 1e-4 * max(1.0, np.abs(keras_logits).max())
    clear = exported.margins >= 1e-5
    assert clear.sum() >= MIN_CLEAR, exported.margins
    bad = [(int(i), float(per_image[i]), float(exported.margins[i])) for i in np.nonzero(clear & (per_image > tol))[0]]
    print(f"{exported.module}: {clear.sum()}/{N_TEST} clear images, max |diff| {per_image[clear].max():.3g} (tol {tol:.3g})")
    assert not bad, f"(image, max |diff|, min |pre-sign activation|) of clear images beyond {tol:.3g}: {bad}"
    assert np.all(lce_logits[clear].argmax(-1) == keras_logits[clear].argmax(-1))


def test_layer_names_and_structure_follow_specs(exported):
    arch, genes, model = exported.arch, exported.genes, exported.model
    for spec in arch.convs:
        layer = model.get_layer(spec.name)
        groups = 1 if spec.gene is None else genes[spec.gene]
        if spec.binary:
            assert type(layer) is BinaryGroupConv2D and layer.lce_compatible
        else:
            assert isinstance(layer, tf.keras.layers.Conv2D) and not isinstance(layer, BinaryGroupConv2D)
            if spec.gene is not None:
                assert type(layer) is GroupConv2D
        assert layer.groups == groups
        assert tuple(layer.kernel.shape) == (spec.kernel, spec.kernel, spec.in_channels // groups, spec.out_channels)
        assert layer.strides == (spec.stride, spec.stride)
        assert tuple(layer.output_shape[1:]) == (*spec.out_size, spec.out_channels)
        bn_name = "stem_bn" if spec is arch.stem else f"{spec.name}_bn"
        assert isinstance(model.get_layer(bn_name), tf.keras.layers.BatchNormalization)
    gene_names = [spec.name for spec in arch.gene_layers]
    assert len(gene_names) == len(genes) == (18 if exported.module == "m2" else 13)
    assert [model.get_layer(n).groups for n in gene_names] == list(genes)
    assert model.output_shape == (None, NUM_CLASSES)
    n_convs = sum(isinstance(l, tf.keras.layers.Conv2D) for l in model.layers)
    assert n_convs == len(arch.convs)


# ----------------------------------------------------------------------------------------------------------
# Genotype errors (raised before any layer is built)


def test_uniform_int_groups_take_the_largest_legal_count_per_layer():
    # Width 0.5: block 1's 3x3 conv has 16 input channels, so no LCE-legal grouping exists there: an int
    # means "uniform up to g", as SearchSpace.uniform does.
    arch = architecture("m1", INPUT_SHAPE, NUM_CLASSES, WIDTH)
    model = build_model("m1", 2, INPUT_SHAPE, NUM_CLASSES, WIDTH)
    expected = SearchSpace(arch).uniform(2)
    assert expected[0] == 1 and expected[-1] == 2
    got = tuple(int(model.get_layer(c.name).groups) for c in arch.gene_layers)
    assert got == expected
    with pytest.raises(ValueError, match="integer >= 1, received 0"):
        build_model("m1", 0, INPUT_SHAPE, NUM_CLASSES, WIDTH)


def test_invalid_sequence_groups_names_layer_and_allowed_values():
    with pytest.raises(ValueError) as err:
        build_model("m1", (2,) * 13, INPUT_SHAPE, NUM_CLASSES, WIDTH)
    msg = str(err.value)
    assert "block1_conv3x3" in msg and "gene 0" in msg and "allowed: [1]" in msg and "multiple of 32" in msg


@pytest.mark.parametrize(
    "module, gene, value, layer, allowed",
    [
        ("m1", 5, 16, "block6_conv3x3", "[1, 2, 4]"),  # 128 channels: at most 4 groups of 32
        ("m3", 12, 3, "block13_conv3x3", "[1, 2, 4, 8, 16]"),
        ("m2", 13, 3, "block1_pw", "[1, 2, 4, 8, 16]"),  # float grouped 1x1, 16 -> 32: divisors of 16
        ("m2", 17, 512, "block12_pw", "[1, 2, 4, 8, 16, 32, 64, 128, 256]"),
    ],
)
def test_invalid_gene_names_layer_and_allowed_values(module, gene, value, layer, allowed):
    arch = architecture(module, INPUT_SHAPE, NUM_CLASSES, WIDTH)
    genes = list(SearchSpace(arch).uniform(2))
    genes[gene] = value
    with pytest.raises(ValueError) as err:
        build_model(module, genes, INPUT_SHAPE, NUM_CLASSES, WIDTH)
    msg = str(err.value)
    assert f"Invalid group count {value} for layer {layer} (gene {gene})" in msg
    assert msg.endswith(f"allowed: {allowed}")


def test_paper_space_groups_rejected_unless_lce_compatible_false():
    arch = architecture("m1", INPUT_SHAPE, NUM_CLASSES, WIDTH)
    genes = SearchSpace(arch, "paper").uniform(4)
    with pytest.raises(ValueError, match="block1_conv3x3"):
        build_model("m1", genes, INPUT_SHAPE, NUM_CLASSES, WIDTH)
    assert arch.check_groups(genes, lce_compatible=False) == genes


@pytest.mark.parametrize("module, n", [("m1", 13), ("m2", 18), ("m3", 13)])
def test_wrong_genotype_length(module, n):
    for wrong in (n - 1, n + 1):
        with pytest.raises(ValueError) as err:
            build_model(module, (1,) * wrong, INPUT_SHAPE, NUM_CLASSES, WIDTH)
        msg = str(err.value)
        assert f"has {n} searchable layers" in msg and f"received {wrong} group counts" in msg
        assert "block1_conv3x3" in msg


@pytest.mark.parametrize("bad", [True, 2.0, [1.5] * 13, ["1"] * 13, None])
def test_genotype_type_errors(bad):
    with pytest.raises(TypeError):
        build_model("m1", bad, INPUT_SHAPE, NUM_CLASSES, WIDTH)


def test_unknown_module():
    with pytest.raises(ValueError, match=r"Unknown module 'm4'; allowed: \['m1', 'm2', 'm3'\]"):
        build_model("m4", 1, INPUT_SHAPE, NUM_CLASSES, WIDTH)
