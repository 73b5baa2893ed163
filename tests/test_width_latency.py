"""Latency tables for spaces with width genes (scope ``block_convs``): the keys cover every block conv a genotype
can have, a prediction is fixed_ms + every block conv's entry (checked against a layer list written without
`specs`), the minimum is exact (brute force), a host build calibrates fixed_ms on random joint genotypes, and a
table of the wrong scope is refused by name."""

import json
import math
import random

import pytest

from larq_mobisearch import deploy as L
from larq_mobisearch.deploy import host_table
from larq_mobisearch.nn.space import SearchSpace
from larq_mobisearch.nn.specs import architecture
from larq_mobisearch.search.costs import LatencyCostModel, WidthLatencyCostModel

SHAPE = (28, 28, 1)
CLASSES = 10
FIXED = 0.25


def _space(module="m1", genes="joint", width_choices=(0.5, 0.75, 1.0, 1.25, 1.5)):
    return SearchSpace(architecture(module, SHAPE, CLASSES, 0.5), "lce", genes=genes, width_choices=width_choices)


def _independent_block_convs(module, widths, groups):
    """(kind, kernel, input side, in channels, out channels, groups, stride) of every block conv, from the paper's
    layer list, written without `specs`."""
    base = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)] + \
        [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]
    h, cin, float_gene, convs = math.ceil(SHAPE[0] / 2), 16, 13, []
    for i, ((bi, bo, s), cout) in enumerate(zip(base, widths)):
        convs.append(("binary", 3, h, cin, cin, groups[i], s))
        out = math.ceil(h / s)
        if module == "m3":
            convs += [("binary", 1, out, cin, cout // 2, 1, 1)] * 2
        elif bi == bo:
            convs.append(("binary", 1, out, cin, cout, 1, 1))
        else:
            g = groups[float_gene] if module == "m2" else 1
            float_gene += module == "m2"
            convs.append(("float", 1, out, cin, cout, g, 1))
        cin, h = cout, out
    return convs


def _ms(kind, kernel, side, cin, cout, groups, stride):
    """A made-up layer time: MACs, plus a penalty for channel counts that are not a multiple of 64 (so that the
    narrowest network is not automatically the fastest)."""
    out = math.ceil(side / stride)
    macs = out * out * kernel * kernel * cin // groups * cout
    return 0.01 + macs / (2e7 if kind == "binary" else 5e5) + (0.3 if cin % 64 else 0.0)


def _key_ms(key):
    return _ms(key["kind"], key["kernel"], key["in_size"][0], key["in_channels"], key["out_channels"], key["groups"],
               key["stride"])


def _truth(module, space, genotype):
    groups, widths = space.split(genotype)
    return FIXED + sum(_ms(*c) for c in _independent_block_convs(module, widths, groups))


def _table(space, scope=L.SCOPE_BLOCKS, keys=None):
    table = L.LatencyTable(machine=L.machine_info(1), source="host", entries={}, fixed_ms=FIXED,
                           architecture=L.architecture_info(space.arch), scope=scope)
    for key, layers in (L.block_table_keys(space, 1) if keys is None else keys):
        table.add(key, _key_ms(key), layers=layers)
    return table


@pytest.mark.parametrize("module", ["m1", "m2", "m3"])
def test_prediction_is_fixed_plus_every_block_conv_of_the_genotype(module, tmp_path):
    space = _space(module)
    path = tmp_path / "table.json"
    L.save_latency_table(_table(space), path)
    assert json.loads(path.read_text())["scope"] == "block_convs"
    model = WidthLatencyCostModel(path, space)  # the JSON round trip keeps the scope
    rng = random.Random(4)
    for g in [space.sample(rng) for _ in range(20)] + [space.largest(), space.smallest(), space.uniform(1)]:
        assert model.cost(g) == pytest.approx(_truth(module, space, g), rel=1e-12), space.encode(g)
    # a groups-only genotype string means the model's own widths
    assert model.cost(space.expand("-".join(["1"] * space.num_groups))) == pytest.approx(model.cost(space.uniform(1, 1.0)))


def test_minimum_is_exact_against_brute_force():
    space = _space("m1", genes="width", width_choices=(0.5,))  # 2^13 genotypes: 0.5x or 1x per block
    model = WidthLatencyCostModel(_table(space), space)
    groups = (1,) * space.num_groups
    import itertools

    brute = min(_truth("m1", space, groups + w) for w in itertools.product(*space.widths))
    assert model.min_cost() == pytest.approx(brute, rel=1e-12)
    # the penalty makes the narrowest network not the fastest: the minimum is not a trivial corner
    assert model.min_cost() < model.cost(space.smallest()) - 1e-9


def test_host_build_of_a_joint_table_calibrates_on_random_joint_genotypes(tmp_path, monkeypatch):
    space = _space("m1")
    converted, timed = [], []

    def convert(model):
        converted.append(next(iter(model)))
        return json.dumps(model).encode()

    def measure(flatbuffers, *, num_threads, warmup, runs, use_indirect_bgemm, progress):
        out = {}
        for name, fb in flatbuffers.items():
            d = json.loads(fb)
            if "layer" in d:
                ms = _key_ms(d["layer"])
            else:
                ms = FIXED + sum(_ms(*c) for c in _independent_block_convs("m1", d["widths"], d["network"]))
            timed.append(name)
            out[name] = L.LatencyStats.from_times([ms, ms, ms], num_threads)
        return out

    monkeypatch.setattr(host_table, "build_layer_model", lambda key: {"layer": dict(key, threads=1)})
    monkeypatch.setattr(host_table, "build_genotype_model",
                        lambda arch, groups: {"network": list(groups), "widths": list(arch.block_channels)})
    extra = space.sample(random.Random(99))
    result = L.measure_host_table(space.arch, space=space, extra_genotypes=[space.encode(extra)],
                                  cache=L.FlatbufferCache(tmp_path / "cache", convert), measure_fn=measure,
                                  progress=False, log=lambda msg: None)
    table = result.table
    n_keys = len(L.block_table_keys(space, 1))
    refs = [tuple(r["genotype"]) for r in table.calibration["references"]]
    assert refs[:2] == [space.largest(), space.smallest()] and len(refs) == 2 + L.DEFAULT_CALIBRATION_SAMPLES
    assert all(space.contains(g) for g in refs) and len(set(refs)) == len(refs)
    assert [r["calibrates"] for r in table.calibration["references"]] == [False, False] + [True] * (len(refs) - 2)
    assert converted.count("layer") == n_keys and converted.count("network") == len(set(refs) | {extra})
    assert table.scope == "block_convs" and len(table.entries) == n_keys
    assert table.fixed_ms == pytest.approx(FIXED)
    model = WidthLatencyCostModel(table, space)
    assert model.cost(extra) == pytest.approx(result.networks[extra].median_ms)


def test_a_table_of_the_other_scope_or_with_a_missing_width_is_refused():
    space = _space("m1")
    groups_space = _space("m1", genes="groups")
    genes_table = L.LatencyTable(machine=L.machine_info(1), source="host", entries={}, fixed_ms=FIXED,
                                 architecture=L.architecture_info(space.arch))
    for key, layers in L.table_keys(space.arch, groups_space.candidates, 1):
        genes_table.add(key, _key_ms(key), layers=layers)
    with pytest.raises(L.LatencyTableError, match="scope 'gene_layers'; this search space needs scope 'block_convs'"):
        WidthLatencyCostModel(genes_table, space)
    with pytest.raises(L.LatencyTableError, match="scope 'block_convs'; this search space needs scope 'gene_layers'"):
        LatencyCostModel(_table(space), space.arch, groups_space.candidates)
    with pytest.raises(ValueError, match="for spaces with width genes"):
        WidthLatencyCostModel(_table(space), groups_space)
    # a table built for fewer widths names what is missing
    narrow = _space("m1", width_choices=(0.5, 1.0))
    with pytest.raises(L.LatencyTableError, match=r"no entry for block\d+_\w+: .*\(\d+ in all\)"):
        WidthLatencyCostModel(_table(space, keys=L.block_table_keys(narrow, 1)), space)
    # a genotype outside the space is named, with the configuration the table lacks
    model = WidthLatencyCostModel(_table(narrow), narrow)
    outside = space.uniform(1, 1.5)
    with pytest.raises(L.LatencyTableError,
                       match=r"no entry for block1_pw: float 1x1 conv 14x14x16->48"):
        model.cost(outside)
    data = _table(space).to_json()
    data["scope"] = "everything"
    with pytest.raises(L.LatencyTableError, match="scope"):
        L.validate_table_json(data)


def test_a_joint_run_searches_under_a_latency_budget_with_a_block_table(tmp_path):
    """`search.latency_table` on a run with width genes gives the search a `WidthLatencyCostModel` constraint (the
    search itself is the same for every cost model: tests/test_searches.py)."""
    from larq_mobisearch.config import load_config
    from larq_mobisearch.pipeline import Run
    from larq_mobisearch.search.problem import constraints_from_config

    run = Run.open(str(tmp_path / "run"), load_config(preset="digits", overrides=["model.space_genes=joint"]))
    L.save_latency_table(_table(run.space), tmp_path / "table.json")
    cfg = load_config(preset="digits", overrides=["model.space_genes=joint", f"search.latency_table={tmp_path}/table.json",
                                                   "search.latency_budget_ms=0.5"])
    run = Run.open(str(tmp_path / "run"), cfg)
    model = run.latency_model()
    assert isinstance(model, WidthLatencyCostModel)
    (flops, _), (latency, budget) = constraints_from_config(run.space, run.search_config(), latency_model=model)
    assert latency is model and budget == 0.5
    g = run.space.sample(random.Random(0))
    groups, widths = run.space.split(g)
    assert model.cost(g) == pytest.approx(FIXED + sum(
        _key_ms(L.layer_key(c, c.groups if c.gene is None else groups[c.gene], 1))
        for b in run.space.arch.with_widths(widths).blocks for c in b.convs))
