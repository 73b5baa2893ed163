"""Latency tables: round trip, prediction = fixed + entries, clear errors; host timing of a tiny LCE model."""

import json
import math
import random

import pytest

from click.testing import CliRunner

from larq_mobisearch import deploy as L
from larq_mobisearch.cli import main as cli
from larq_mobisearch.deploy import host_table
from larq_mobisearch.search.costs import AdditiveCostModel, LatencyCostModel
from larq_mobisearch.nn.space import SearchSpace
from larq_mobisearch.nn.specs import architecture


def small_arch(module="m3"):
    return architecture(module, (32, 32, 3), 10, 1.0)


def synthetic_ms(key):
    """A made-up per-layer latency (ms) from the configuration alone."""
    h, w = key["in_size"]
    macs = h * w * key["kernel"] ** 2 * key["in_channels"] * key["out_channels"] / key["groups"] / key["stride"] ** 2
    return round(0.01 + macs / (2e8 if key["kind"] == "binary" else 5e6), 6)


def synthetic_table(arch, allowed=None, fixed=0.75, threads=1):
    table = L.LatencyTable(
        machine=L.machine_info(threads),
        source="host",
        entries={},
        fixed_ms=fixed,
        architecture=L.architecture_info(arch),
    )
    for key, layers in L.table_keys(arch, allowed, threads):
        table.add(key, synthetic_ms(key), layers=layers)
    return table


# ----------------------------------------------------------------------------------------------------------
# Stats


def test_latency_stats_from_times():
    s = L.LatencyStats.from_times([4.0, 1.0, 3.0, 2.0, 5.0], num_threads=2)
    assert (s.median_ms, s.mean_ms, s.min_ms, s.max_ms, s.runs, s.num_threads) == (3.0, 3.0, 1.0, 5.0, 5, 2)
    assert s.q25_ms == 2.0 and s.q75_ms == 4.0 and s.iqr_ms == 2.0
    assert s.p10_ms == pytest.approx(1.4) and s.p90_ms == pytest.approx(4.6)
    assert s.statistic("p10") == pytest.approx(1.4)
    assert json.loads(json.dumps(s.as_dict()))["iqr_ms"] == 2.0
    with pytest.raises(ValueError, match="at least one"):
        L.LatencyStats.from_times([])
    with pytest.raises(ValueError, match="Unknown statistic"):
        s.statistic("max")


# ----------------------------------------------------------------------------------------------------------
# Tables and the cost model


def test_identical_layers_share_one_key():
    arch = small_arch()
    keys = L.table_keys(arch, threads=1)
    # blocks 7-11 have the same 3x3 configuration: one key per group count, listing all five layers
    by_layers = {tuple(layers): key for key, layers in keys}
    shared = [layers for layers in by_layers if "block7_conv3x3" in layers]
    assert shared and all(set(layers) == {f"block{i}_conv3x3" for i in range(7, 12)} for layers in shared)
    n_candidates = sum(len(a) for a in L.default_allowed(arch))
    assert len(keys) < n_candidates
    assert len({L.key_id(k) for k, _ in keys}) == len(keys)


def test_table_round_trip_and_prediction(tmp_path):
    arch = small_arch("m2")  # binary 3x3 genes and float 1x1 genes
    space = SearchSpace(arch, "lce")
    table = synthetic_table(arch, space.candidates)
    path = tmp_path / "sub" / "table.json"
    L.save_latency_table(table, path)
    assert not list(path.parent.glob("*.tmp"))  # atomic write left no temporary file
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["source"] == "host" and data["fixed_ms"] == 0.75
    assert data["architecture"] == {"module": "m2", "input_shape": [32, 32, 3], "num_classes": 10, "width_multiplier": 1.0}
    assert {"platform", "cpu", "lce_version", "threads"} <= set(data["machine"])
    assert all(set(e["key"]) == set(L.KEY_FIELDS) for e in data["entries"])

    loaded = L.load_latency_table(path)
    assert loaded.to_json() == table.to_json()

    model = LatencyCostModel(path, arch, space.candidates, threads=1)
    assert isinstance(model, AdditiveCostModel) and model.name == "latency" and model.unit == "ms"
    rng = random.Random(0)
    for _ in range(20):
        g = space.sample(rng)
        expected = 0.75 + sum(synthetic_ms(L.layer_key(s, x, 1)) for s, x in zip(arch.gene_layers, g))
        assert model.cost(g) == pytest.approx(expected, rel=1e-12)
        assert sum(ms for _, _, ms in model.breakdown(g)) + model.fixed == pytest.approx(expected)
    cheapest = model.cheapest(space.candidates)
    assert model.min_cost(space.candidates) == pytest.approx(model.cost(cheapest))
    assert all(model.cost(space.sample(rng)) >= model.min_cost(space.candidates) for _ in range(20))


def test_missing_entry_names_the_layer_config():
    arch = small_arch()
    table = synthetic_table(arch)
    spec = arch.gene_layers[4]  # block5_conv3x3: 256 channels at 4x4, groups 1..8
    del table.entries[L.key_id(L.layer_key(spec, 8, 1))]
    with pytest.raises(L.LatencyTableError) as err:
        LatencyCostModel(table, arch)
    msg = str(err.value)
    assert "block5_conv3x3" in msg and "groups=8" in msg and "binary 3x3 conv 4x4x256->256" in msg


def test_table_for_other_architecture_or_threads_is_rejected():
    arch = small_arch()
    table = synthetic_table(arch)
    with pytest.raises(L.LatencyTableError, match=r"M3 32x32x3, 10 classes.*not for M3 224x224x3, 1000 classes"):
        LatencyCostModel(table, architecture("m3", (224, 224, 3), 1000, 1.0))
    with pytest.raises(L.LatencyTableError, match="measured for M3"):
        LatencyCostModel(table, architecture("m1", (32, 32, 3), 10, 1.0))
    with pytest.raises(L.LatencyTableError, match=r"1 thread\(s\), not 4"):
        LatencyCostModel(table, arch, threads=4)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("fixed_ms"), r"fixed_ms: required field missing"),
        (lambda d: d.update(version=2), r"version: unsupported version 2 \(this code reads 1\)"),
        (lambda d: d.update(source="phone"), r"source: must be 'host' or 'device:<name>' \(received 'phone'\)"),
        (lambda d: d["entries"][0].update(ms=-1.0),
         r"entries\.0\.ms \(binary 3x3 conv.*\): must be a finite number >= 0 \(received -1\.0\)"),
        (lambda d: d["entries"][0].update(ms="fast"), r"entries\.0\.ms .*must be a finite number >= 0 \(received 'fast'\)"),
        (lambda d: d["entries"][1]["key"].pop("groups"), r"entries\.1\.key\.groups: required field missing"),
        (lambda d: d["entries"][1]["key"].update(kind="ternary"),
         r"entries\.1\.key\.kind: Input should be 'binary' or 'float' \(received 'ternary'\)"),
        (lambda d: d["entries"][2]["key"].update(threads=4), "measured with 4 threads, the table says 1"),
        (lambda d: d["entries"].append(dict(d["entries"][0])), "duplicate entry"),
        (lambda d: d["architecture"].pop("num_classes"), r"architecture\.num_classes: required field missing"),
        (lambda d: d.update(fixed_ms=None), "fixed_ms: null"),
        (lambda d: d.update(fixed_ms=float("nan")), r"fixed_ms: must be a finite number \(received nan\)"),
        (lambda d: d["machine"].pop("threads"), r"machine\.threads: required field missing"),
        (lambda d: d.update(entries={}), r"entries: Input should be a valid list \(received \{\}\)"),
        (lambda d: d.update(speed="fast"), r"speed: unknown field \(received 'fast'\)"),
        (lambda d: d["entries"][3].update(note=1), r"entries\.3\.note .*unknown field"),
    ],
)
def test_corrupt_tables_fail_clearly(tmp_path, mutate, message):
    data = synthetic_table(small_arch()).to_json()
    data = json.loads(json.dumps(data))
    mutate(data)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(L.LatencyTableError, match=message):
        L.load_latency_table(path)


def test_unreadable_files_fail_clearly(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "entries": [')
    with pytest.raises(L.LatencyTableError, match="is not valid JSON"):
        L.load_latency_table(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(L.LatencyTableError, match=r"expected a JSON object, received list"):
        L.load_latency_table(bad)
    with pytest.raises(FileNotFoundError, match="No latency table"):
        L.load_latency_table(tmp_path / "missing.json")


# ----------------------------------------------------------------------------------------------------------
# Building a table (conversion and timing replaced by a deterministic stand-in)


class FakeHost:
    """Stand-ins for model building, LCE conversion and timing: a layer model 'runs' in synthetic_ms, a
    network in FIXED + the sum of its layers. No Keras model is built and nothing is converted."""

    FIXED = 0.5

    def __init__(self, arch, extra=lambda genotype: 0.0):
        self.arch = arch
        self.extra = extra  # a genotype-dependent part of a network's time that no layer entry holds
        self.converted = []
        self.timed = []

    @staticmethod
    def build_layer(key):
        return {"layer": dict(key, threads=1)}

    @staticmethod
    def build_network(arch, genotype):
        return {"network": [int(g) for g in genotype]}

    def convert(self, model):
        self.converted.append(next(iter(model)))
        return json.dumps(model).encode()

    def measure(self, flatbuffers, *, num_threads, warmup, runs, use_indirect_bgemm, progress):
        assert use_indirect_bgemm is True
        out = {}
        for name, fb in flatbuffers.items():
            d = json.loads(fb)
            if "layer" in d:
                ms = synthetic_ms(d["layer"])
            else:
                ms = self.FIXED + self.extra(tuple(d["network"])) + sum(
                    synthetic_ms(L.layer_key(s, g, num_threads)) for s, g in zip(self.arch.gene_layers, d["network"])
                )
            self.timed.append(name)
            out[name] = L.LatencyStats.from_times([ms, ms, ms], num_threads)
        return out


@pytest.fixture
def fake_models(monkeypatch):
    monkeypatch.setattr(host_table, "build_layer_model", FakeHost.build_layer)
    monkeypatch.setattr(host_table, "build_genotype_model", FakeHost.build_network)


def test_build_table_calibrates_fixed_and_caches_conversions(tmp_path, fake_models):
    arch = small_arch()
    allowed = tuple((a[0], a[-1]) if len(a) > 1 else a for a in L.default_allowed(arch))
    fake = FakeHost(arch)
    out = tmp_path / "host.json"
    kwargs = dict(allowed=allowed, progress=False, measure_fn=fake.measure, log=lambda msg: None,
                  cache_dir=tmp_path / "cache")
    table = L.build_latency_table(arch, out_path=out, convert_fn=fake.convert, **kwargs)
    n_keys = len(L.table_keys(arch, allowed, 1))
    uniform = L.reference_genotypes(arch, allowed)
    assert uniform[0] == tuple(min(a) for a in allowed) and uniform[-1] == tuple(max(a) for a in allowed)
    samples = L.random_references(allowed, exclude=uniform)
    assert len(samples) == len(set(samples)) == L.DEFAULT_CALIBRATION_SAMPLES and not set(samples) & set(uniform)
    refs = uniform + samples
    # each distinct configuration converted and timed once, plus the reference networks, all in one loop
    assert fake.converted.count("layer") == n_keys and fake.converted.count("network") == len(refs)
    assert len(fake.timed) == n_keys + len(refs)
    assert table.fixed_ms == pytest.approx(FakeHost.FIXED)
    assert [tuple(r["genotype"]) for r in table.calibration["references"]] == refs
    assert [r["calibrates"] for r in table.calibration["references"]] == [False] * len(uniform) + [True] * len(samples)
    assert out.exists()
    model = LatencyCostModel(out, arch, allowed)
    rng = random.Random(1)
    for _ in range(5):
        g = tuple(rng.choice(a) for a in allowed)
        exact = FakeHost.FIXED + sum(synthetic_ms(L.layer_key(s, x, 1)) for s, x in zip(arch.gene_layers, g))
        assert model.cost(g) == pytest.approx(exact)

    # A rebuild (e.g. after an interruption) converts nothing: the converted models are cached on disk.
    again = FakeHost(arch)
    L.build_latency_table(arch, convert_fn=again.convert, **kwargs)
    assert again.converted == [] and len(fake.timed) == 2 * (n_keys + len(refs))  # but everything is timed again

    # Extra networks are timed in the same loop and returned, without entering the table.
    extra = tuple(a[-1] for a in allowed[:-1]) + (allowed[-1][0],)
    res = L.measure_host_table(arch, allowed=allowed, extra_genotypes=[extra], measure_fn=fake.measure,
                               cache=L.FlatbufferCache(tmp_path / "cache", fake.convert), progress=False,
                               log=lambda msg: None)
    assert set(res.networks) == set(refs) | {extra}
    assert res.networks[extra].median_ms == pytest.approx(model.cost(extra))


def test_random_genotypes_calibrate_a_residual_that_depends_on_the_genotype(tmp_path, fake_models):
    """A network's time holds a part no layer entry sees, largest for a mix of grouped and ungrouped layers: the
    uniform genotypes (all or nothing grouped) sit at the edges of it, random ones in the middle, where a search
    looks."""
    arch = small_arch()
    allowed = tuple((a[0], a[-1]) if len(a) > 1 else a for a in L.default_allowed(arch))
    n = arch.num_genes

    def extra(g):
        grouped = sum(x > 1 for x in g)
        return 0.02 * grouped * (n - grouped)

    fake = FakeHost(arch, extra=extra)
    table = L.build_latency_table(arch, allowed=allowed, progress=False, measure_fn=fake.measure, log=lambda m: None,
                                  cache_dir=tmp_path / "cache", convert_fn=fake.convert)
    samples = L.random_references(allowed, exclude=L.reference_genotypes(arch, allowed))
    # independent reference: the median of FIXED + extra over the sampled genotypes, by hand
    extras = sorted(FakeHost.FIXED + extra(g) for g in samples)
    middle = len(extras) // 2
    assert table.fixed_ms == pytest.approx((extras[middle - 1] + extras[middle]) / 2 if len(extras) % 2 == 0
                                           else extras[middle])
    uniform_only = L.build_latency_table(arch, allowed=allowed, progress=False, measure_fn=fake.measure,
                                         log=lambda m: None, cache_dir=tmp_path / "cache", convert_fn=fake.convert,
                                         calibration_samples=0)
    assert all(r["calibrates"] for r in uniform_only.calibration["references"])
    # the check, on random genotypes that calibrated nothing: the uniform calibration predicts (nearly) all of them
    # too fast; the random one is off by far less on average
    rng = random.Random(5)
    checks = {tuple(rng.choice(a) for a in allowed) for _ in range(60)} - set(samples)
    truth = {g: FakeHost.FIXED + extra(g) + sum(synthetic_ms(L.layer_key(s, x, 1)) for s, x in zip(arch.gene_layers, g))
             for g in checks}
    new, old = (LatencyCostModel(t, arch, allowed) for t in (table, uniform_only))
    signed = {name: sum(m.cost(g) - truth[g] for g in checks) / len(checks) for name, m in (("new", new), ("old", old))}
    assert sum(old.cost(g) < truth[g] for g in checks) >= 0.9 * len(checks)
    assert abs(signed["new"]) < 0.25 * abs(signed["old"]), signed
    with pytest.raises(ValueError, match="n must be >= 0"):
        L.random_references(allowed, -1)


# ----------------------------------------------------------------------------------------------------------
# Real LCE conversion and host timing (one tiny model)


@pytest.fixture(scope="module")
def tiny_flatbuffer():
    key = {"kind": "binary", "kernel": 3, "in_size": [8, 8], "in_channels": 64, "out_channels": 64,
           "groups": 2, "stride": 1, "threads": 1}
    return L.convert(L.build_layer_model(key))


def test_measure_latency_on_a_tiny_grouped_model(tiny_flatbuffer, tmp_path):
    stats = L.measure_latency(tiny_flatbuffer, warmup=2, runs=20)
    assert stats.runs == 20 and stats.num_threads == 1
    for v in (stats.median_ms, stats.mean_ms, stats.p10_ms, stats.p90_ms, stats.min_ms):
        assert math.isfinite(v) and v > 0
    assert stats.min_ms <= stats.p10_ms <= stats.median_ms <= stats.p90_ms <= stats.max_ms
    path = tmp_path / "tiny.tflite"
    path.write_bytes(tiny_flatbuffer)
    assert L.measure_latency(path, warmup=0, runs=3, num_threads=2).num_threads == 2
    with pytest.raises(ValueError, match="runs must be >= 1"):
        L.measure_latency(tiny_flatbuffer, runs=0)
    with pytest.raises(FileNotFoundError):
        L.measure_latency(tmp_path / "nope.tflite")


def test_tiny_model_lowers_to_lce_ops(tiny_flatbuffer):
    ops = [op for op, _ in L.node_outputs(tiny_flatbuffer).values()]
    assert ops == ["LceQuantize", "LceBconv2d"]  # BatchNorm fused into the binary conv, grouped conv lowered


def test_latency_cli_show_and_predict(tmp_path):
    arch = small_arch()
    table = synthetic_table(arch)
    path = tmp_path / "t.json"
    L.save_latency_table(table, path)
    result = CliRunner().invoke(cli, ["latency", "show", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "source: host; architecture: M3 32x32x3, 10 classes, width 1; threads: 1" in out
    assert "fixed_ms: 0.7500" in out and out.count(" ms  binary 3x3 conv ") == len(table.entries)
    result = CliRunner().invoke(cli, ["latency", "predict", "--module", "m3", "--input-size", "32", "--num-classes",
                                      "10", str(path), "1", "1-2-4-4-8-8-16-16-16-16-16-16-32"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    model = LatencyCostModel(table, arch)
    assert lines[0] == f"1-1-1-1-1-1-1-1-1-1-1-1-1: {model.cost((1,) * 13):.3f} ms"
    assert lines[1].startswith("1-2-4-4-8-8-16-16-16-16-16-16-32: ")
