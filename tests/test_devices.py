"""lce_benchmark_model output parsing, device latency tables, and the export/ device scripts.

The fixtures under tests/data are format samples of lce_benchmark_model output with made-up numbers (their
first line says so); device tools (ssh, scp, adb) are replaced by recording fakes on PATH.
"""

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from click.testing import CliRunner

from larq_mobisearch import deploy as D
from larq_mobisearch import deploy as L
from larq_mobisearch.cli import main as cli
from larq_mobisearch.nn.specs import architecture
from larq_mobisearch.search.costs import LatencyCostModel

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
NEW = DATA / "lce_benchmark_m3_32x32_gmax.txt"  # no [start] column, "INFO: " prefixes
OLD = DATA / "lce_benchmark_m3_32x32_g1_start_column.txt"  # [start] column, no prefixes
ARCH = architecture("m3", (32, 32, 3), 10, 1.0)
G_MAX = (1, 2, 4, 4, 8, 8, 16, 16, 16, 16, 16, 16, 32)
G_ONE = (1,) * 13


@pytest.fixture(scope="module")
def new():
    return D.parse_benchmark_output(NEW.read_text())


@pytest.fixture(scope="module")
def old():
    return D.parse_benchmark_output(OLD.read_text())


# ----------------------------------------------------------------------------------------------------------
# Parsing


def test_whole_model_timings(new, old):
    assert new.inference_avg_us == 2336.02 and new.inference_avg_ms == pytest.approx(2.33602)
    assert (new.init_us, new.first_inference_us, new.warmup_avg_us) == (4217.0, 3270.0, 2382.74)
    assert new.warmup == D.RunStats(214, 3270.0, 2359.0, 2265.0, 3270.0, 2382.74, 93.0)
    assert new.regular == D.RunStats(428, 2382.0, 2312.0, 2242.0, 2826.0, 2336.02, 70.0)
    assert new.model_size_mb == 3.66619
    assert (new.num_threads, new.use_indirect_bgemm) == (1, True)
    assert new.graph == "/home/pi/mobisearch/m3_32x32_1-2-4-4-8-8-16-16-16-16-16-16-32.tflite"
    assert old.inference_avg_us == 5964.71 and old.regular.count == 167 and old.regular.std == 178.0
    assert old.params["Min num runs"] == "100" and old.graph.startswith("/data/local/tmp/mobisearch/")
    assert new.errors == [] and old.errors == []


def test_per_op_rows(new, old):
    assert len(new.ops) == 140 == new.profile.nodes_executed == new.profile.nodes_observed
    first = new.ops[0]
    assert (first.node_type, first.first_ms, first.avg_ms, first.percent, first.cdf_percent) == (
        "CONV_2D", 0.294, 0.202, 9.042, 9.042)
    assert (first.mem_kb, first.times_called, first.start_ms) == (0.0, 1, None)
    assert first.name == "[binary_mobilenet_m3/stem_conv/Conv2D1]:0" and first.node_index == 0
    bconv = new.ops[2]
    assert (bconv.node_type, bconv.avg_ms, bconv.node_index) == ("LceBconv2d", 0.113, 2)
    assert bconv.output_names == ("binary_mobilenet_m3/block1_conv3x3_bn/FusedBatchNo",)
    last = new.ops[-1]
    assert (last.node_type, last.avg_ms, last.cdf_percent, last.node_index) == ("FULLY_CONNECTED", 0.014, 100.0, 139)
    assert last.output_names == ("StatefulPartitionedCall:0",)
    assert [r.node_index for r in new.ops] == list(range(140))  # run order
    assert len(new.profile.top_by_time) == 10
    assert new.profile.top_by_time[0].avg_ms == max(r.avg_ms for r in new.ops)
    assert new.profile.timings == D.RunStats(428, 2278.0, 2234.0, 2166.0, 2680.0, 2234.0, 67.0)
    assert new.init_profile.run_order[0].node_type == "AllocateTensors" and new.init_profile.run_order[0].avg_ms == 0.412
    # older layout: the [start] column is read too
    assert old.ops[-1].start_ms == 5.882 and old.ops[-1].avg_ms == 0.014 and old.ops[0].avg_ms == 0.211


def test_summary_by_node_type(new):
    by_type = {r.node_type: r for r in new.profile.by_type}
    assert by_type["LceBconv2d"] == D.TypeRow("LceBconv2d", 39, 1.245, 55.73, 55.73, 0.0, 39)
    assert by_type["LceQuantize"].count == 26 and by_type["LceQuantize"].avg_ms == 0.311
    assert by_type["MEAN"].avg_ms == 0.008
    assert sum(r.count for r in new.profile.by_type) == 140
    total = sum(r.ms_per_run for r in new.ops)
    assert sum(r.avg_ms for r in new.profile.by_type) == pytest.approx(total, abs=1e-9)


def test_space_separated_copy_parses_like_tabs():
    text = NEW.read_text().replace("\t", "    ")
    out = D.parse_benchmark_output(text)
    assert [(r.node_type, r.avg_ms, r.name) for r in out.ops] == [
        (r.node_type, r.avg_ms, r.name) for r in D.parse_benchmark_output(NEW.read_text()).ops
    ]


def test_failed_or_foreign_output_is_an_error():
    failed = (
        "INFO: STARTING!\nINFO: Graph: [/tmp/m.tflite]\nINFO: Loaded model /tmp/m.tflite\n"
        "ERROR: Grouped binary convolutions are not supported with this kernel.\n"
        "ERROR: Node number 2 (LceBconv2d) failed to prepare.\nERROR: Benchmarking failed.\n"
    )
    with pytest.raises(D.BenchmarkOutputError, match="Grouped binary convolutions are not supported"):
        D.parse_benchmark_output(failed)
    with pytest.raises(D.BenchmarkOutputError, match="No benchmark results"):
        D.parse_benchmark_output("hello\nworld\n")


# ----------------------------------------------------------------------------------------------------------
# Attribution and tables


def test_layer_times_by_names_and_by_order_agree(new, old):
    for out in (new, old):
        by_names, how = D.layer_times(out, ARCH)
        assert how == "names"
        by_order, how = D.layer_times(out, ARCH, mapping="order")
        assert how == "order" and by_order == pytest.approx(by_names)
    t, _ = D.layer_times(new, ARCH)
    assert t["block1_conv3x3"] == pytest.approx(0.013 + 0.113)  # LceQuantize + LceBconv2d (+ fused BN)
    assert t["block2_conv3x3"] == pytest.approx(0.009 + 0.060)
    assert set(t) == {s.name for s in ARCH.gene_layers}


def test_layer_of_names():
    layers = [s.name for s in ARCH.gene_layers]
    assert D.layer_of_names(["m/block1_conv3x3_bn/FusedBatchNormV3;m/block1_conv3x3/Conv2D"], layers) == "block1_conv3x3"
    assert D.layer_of_names(["m/block10_conv3x3/approx_sign_27/Sign"], layers) == "block10_conv3x3"
    assert D.layer_of_names(["m/block1_pw_a_bn/FusedBatchNormV3"], layers) is None
    with pytest.raises(D.BenchmarkOutputError, match="several searchable layers"):
        D.layer_of_names(["m/block1_conv3x3/x;m/block2_conv3x3/y"], layers)


def test_profile_needed_for_a_table(new):
    text = NEW.read_text().split("INFO: Profiling Info for Benchmark Initialization")[0]
    out = D.parse_benchmark_output(text)
    assert out.inference_avg_us == 2336.02 and out.ops == []
    with pytest.raises(D.BenchmarkOutputError, match="--enable_op_profiling=true"):
        D.latency_table_from_benchmark_output(out, ARCH, G_MAX, device="pi")


def test_device_table_from_two_runs(new, old, tmp_path):
    table = D.latency_table_from_benchmark_outputs([(NEW.read_text(), G_MAX), (old, G_ONE)], ARCH, device="rpi4")
    assert table.source == "device:rpi4" and table.threads == 1
    tn, _ = D.layer_times(new, ARCH)
    to, _ = D.layer_times(old, ARCH)
    res_new = new.inference_avg_ms - sum(tn.values())
    res_old = old.inference_avg_ms - sum(to.values())
    assert table.fixed_ms == pytest.approx((res_new + res_old) / 2)
    # blocks 7-11 share a configuration: their entry is the mean of the five layers
    key = L.layer_key(ARCH.gene_layers[6], 16, 1)
    entry = table.entries[L.key_id(key)]
    assert entry["ms"] == pytest.approx(sum(tn[f"block{i}_conv3x3"] for i in range(7, 12)) / 5)
    assert entry["samples"] == 5 and entry["layers"] == [f"block{i}_conv3x3" for i in range(7, 12)]

    path = tmp_path / "device.json"
    L.save_latency_table(table, path)
    allowed = [sorted({a, b}) for a, b in zip(G_ONE, G_MAX)]
    model = LatencyCostModel(path, ARCH, allowed, threads=1)
    for out, g in ((new, G_MAX), (old, G_ONE)):
        times, _ = D.layer_times(out, ARCH)
        per_layer = {s.name: table.entries[L.key_id(L.layer_key(s, x, 1))]["ms"] for s, x in zip(ARCH.gene_layers, g)}
        assert model.cost(g) == pytest.approx(table.fixed_ms + sum(per_layer.values()))
    # the full LCE space is not covered by two runs: asking for it names a missing configuration
    with pytest.raises(L.LatencyTableError, match=r"has no entry for block3_conv3x3 \(gene 2\) at groups=2"):
        LatencyCostModel(table, ARCH)


def test_device_table_checks(new):
    with pytest.raises(D.BenchmarkOutputError, match="used 1 threads, expected 4"):
        D.latency_table_from_benchmark_output(new, ARCH, G_MAX, device="pi", threads=4)
    no_indirect = NEW.read_text().replace("Use indirect BGEMM: [1]", "Use indirect BGEMM: [0]")
    with pytest.raises(D.BenchmarkOutputError, match="without --use_indirect_bgemm=true"):
        D.latency_table_from_benchmark_output(no_indirect, ARCH, G_MAX, device="pi")
    no_threads = NEW.read_text().replace("INFO: Num threads: [1]\n", "").replace(
        "INFO: #threads used for CPU inference: [1]\n", "")
    with pytest.raises(D.BenchmarkOutputError, match="pass threads="):
        D.latency_table_from_benchmark_output(no_threads, ARCH, G_MAX, device="pi")
    assert D.latency_table_from_benchmark_output(no_threads, ARCH, G_MAX, device="pi", threads=1).threads == 1
    with pytest.raises(ValueError, match="Invalid group count 3"):
        D.latency_table_from_benchmark_output(new, ARCH, (3,) * 13, device="pi")
    other = architecture("m1", (32, 32, 3), 10, 1.0)  # same 3x3 names but another op order
    with pytest.raises(D.BenchmarkOutputError, match="Order mapping"):
        D.latency_table_from_benchmark_output(new, other, G_MAX, device="pi", mapping="order")


def test_calibration_genotypes_cover_every_candidate():
    allowed = ARCH.allowed_groups(lce_compatible=True)
    gs = D.calibration_genotypes(ARCH)
    assert gs[0] == G_ONE and gs[-1] == G_MAX and len(gs) == 6
    for i, cands in enumerate(allowed):
        assert {g[i] for g in gs} == set(cands)


# ----------------------------------------------------------------------------------------------------------
# export/ scripts: --dry-run, and fake ssh/scp/adb on PATH


PI = ROOT / "export" / "raspberry_pi" / "run_benchmark.sh"
ANDROID = ROOT / "export" / "android" / "run_benchmark.sh"
FAKE_TOOL = r"""#!/usr/bin/env bash
# Records its argv (one line, shell-quoted) and plays back a captured benchmark output when asked to run one.
{ printf '%q ' "$(basename "$0")" "$@"; printf '\n'; } >> "$FAKE_LOG"
if [[ "$*" == *lce_benchmark_model*--graph=* ]]; then
  if [[ "$*" == *1-1-1-1-1-1-1-1-1-1-1-1-1* ]]; then cat "$FAKE_OUTPUT_G1"; else cat "$FAKE_OUTPUT_GMAX"; fi
fi
"""


#: The `mobisearch` command of this interpreter (the scripts call it to parse outputs and build tables).
_SCRIPT = Path(sys.executable).with_name("mobisearch")
MOBISEARCH = str(_SCRIPT) if _SCRIPT.is_file() else f"{sys.executable} -m larq_mobisearch.cli"


def commands(text):
    return [shlex.split(line[2:].split(" > ")[0]) for line in text.splitlines() if line.startswith("+ ")]


def run_script(script, args, env=None, check=True):
    proc = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script.name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def models(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    names = []
    for g in (G_ONE, G_MAX):
        name = f"m3_32x32_{'-'.join(map(str, g))}.tflite"
        (d / name).write_bytes(b"not a real model: never executed here")
        names.append(name)
    binary = tmp_path / "lce_benchmark_model"
    binary.write_bytes(b"#!/bin/false\n")
    return d, names, binary


@pytest.mark.parametrize("script", [PI, ANDROID])
def test_scripts_dry_run(script, models, tmp_path):
    d, names, binary = models
    args = ["--dry-run", "--binary", str(binary), "--threads", "4", "--out", str(tmp_path / "out"), str(d)]
    if script == PI:
        args = ["--host", "pi@raspberrypi.local", "--remote-dir", "/home/pi/ms"] + args
    else:
        args = ["--serial", "EMU123", "--taskset", "f0"] + args
    proc = run_script(script, args)
    cmds = commands(proc.stdout)
    runs = [c for c in cmds if any("--graph=" in a for a in c)]
    assert len(runs) == 2
    work = "/home/pi/ms" if script == PI else "/data/local/tmp/mobisearch"
    for c, name in zip(runs, sorted(names)):
        flat = " ".join(c)
        assert "--use_indirect_bgemm=true" in flat and "--enable_op_profiling=true" in flat
        assert "--num_threads=4" in flat and f"--graph={work}/{name}" in flat
        assert f"{work}/lce_benchmark_model" in flat
    if script == PI:
        assert ["scp", str(binary), f"pi@raspberrypi.local:{work}/lce_benchmark_model"] in cmds
        assert ["scp", str(d / names[0]), f"pi@raspberrypi.local:{work}/{names[0]}"] in cmds
    else:
        assert ["adb", "-s", "EMU123", "push", str(binary), f"{work}/lce_benchmark_model"] in cmds
        assert ["adb", "-s", "EMU123", "push", str(d / names[1]), f"{work}/{names[1]}"] in cmds
        assert all(c[:5] == ["adb", "-s", "EMU123", "shell", "taskset"] for c in runs)
    assert f"{tmp_path / 'out'}/{names[0][:-7]}.txt" in proc.stdout
    parse = [c for c in cmds if "device" in c and c[c.index("device") + 1] == "parse"]
    assert len(parse) == 1, cmds
    assert any(a.endswith("mobisearch") or a == "larq_mobisearch.cli" for a in parse[0])  # the mobisearch CLI
    assert parse[0][-2:] == [f"{tmp_path / 'out'}/{n[:-7]}.txt" for n in sorted(names)]
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_scripts_reject_bad_arguments(models):
    d, _, binary = models
    proc = run_script(PI, ["--binary", str(binary), str(d)], check=False)
    assert proc.returncode != 0 and "--host" in proc.stderr
    proc = run_script(ANDROID, ["--binary", str(binary), "--threads", "zero", str(d)], check=False)
    assert proc.returncode != 0 and "--threads must be a positive integer" in proc.stderr
    proc = run_script(ANDROID, ["--binary", str(d / "missing"), str(d)], check=False)
    assert proc.returncode != 0 and "lce_benchmark_model not found" in proc.stderr


def fake_env(tmp_path):
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    for tool in ("ssh", "scp", "adb"):
        p = bindir / tool
        p.write_text(FAKE_TOOL)
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ)
    env.update(
        PATH=f"{bindir}{os.pathsep}{env['PATH']}",
        FAKE_LOG=str(tmp_path / "calls.log"),
        FAKE_OUTPUT_G1=str(OLD),
        FAKE_OUTPUT_GMAX=str(NEW),
        PYTHON=sys.executable,
        MOBISEARCH=MOBISEARCH,
    )
    return env


def recorded(tmp_path):
    return [shlex.split(line) for line in (tmp_path / "calls.log").read_text().splitlines()]


def test_android_script_with_fake_adb(models, tmp_path):
    d, names, binary = models
    env = fake_env(tmp_path)
    out = tmp_path / "out"
    run_script(ANDROID, ["--serial", "EMU123", "--binary", str(binary), "--out", str(out), "--no-parse", str(d)], env=env)
    calls = recorded(tmp_path)
    assert calls[0] == ["adb", "-s", "EMU123", "shell", "mkdir", "-p", "/data/local/tmp/mobisearch"]
    assert ["adb", "-s", "EMU123", "push", str(binary), "/data/local/tmp/mobisearch/lce_benchmark_model"] in calls
    shells = [c for c in calls if "--use_indirect_bgemm=true" in c]
    assert [c[4] for c in shells] == ["/data/local/tmp/mobisearch/lce_benchmark_model"] * 2
    assert {c[5] for c in shells} == {f"--graph=/data/local/tmp/mobisearch/{n}" for n in names}
    for n in names:  # the captured outputs are what the device printed
        text = (out / (n[:-7] + ".txt")).read_text()
        assert "Inference timings in us" in text


def test_pi_script_with_fake_ssh_builds_a_device_table(models, tmp_path):
    d, names, binary = models
    manifest = {
        "version": 1,
        "architecture": L.architecture_info(ARCH),
        "models": [{"file": n, "genotype": list(g)} for n, g in zip(names, (G_ONE, G_MAX))],
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    env = fake_env(tmp_path)
    out = tmp_path / "out"
    proc = run_script(
        PI, ["--host", "pi@rpi", "--binary", str(binary), "--device", "rpi4", "--out", str(out), str(d)], env=env
    )
    calls = recorded(tmp_path)
    assert calls[:3] == [
        ["ssh", "pi@rpi", "mkdir -p /tmp/mobisearch"],
        ["scp", str(binary), "pi@rpi:/tmp/mobisearch/lce_benchmark_model"],
        ["ssh", "pi@rpi", "chmod +x /tmp/mobisearch/lce_benchmark_model"],
    ]
    runs = [shlex.split(c[2]) for c in calls if c[0] == "ssh" and "--graph=" in c[2]]
    assert [r[:2] for r in runs] == [
        ["/tmp/mobisearch/lce_benchmark_model", f"--graph=/tmp/mobisearch/{n}"] for n in sorted(names)
    ]
    assert all("--use_indirect_bgemm=true" in r and "--enable_op_profiling=true" in r for r in runs)
    # the parser ran on the captured outputs and wrote the device table
    assert "inference avg: 5.965 ms" in proc.stdout and "inference avg: 2.336 ms" in proc.stdout
    table = L.load_latency_table(out / "latency_table.json")
    assert table.source == "device:rpi4" and table.architecture == L.architecture_info(ARCH)
    direct = D.latency_table_from_benchmark_outputs(
        [(OLD.read_text(), G_ONE), (NEW.read_text(), G_MAX)], ARCH, device="rpi4")
    assert table.fixed_ms == pytest.approx(direct.fixed_ms)
    assert {k: e["ms"] for k, e in table.entries.items()} == {k: e["ms"] for k, e in direct.entries.items()}


def test_device_cli(tmp_path):
    out = tmp_path / "t.json"
    args = ["device", "table", "--device", "pi4", "--module", "m3", "--input-size", "32", "--num-classes", "10",
            "--run", f"{NEW}={'-'.join(map(str, G_MAX))}", "--run", f"{OLD}=1-1-1-1-1-1-1-1-1-1-1-1-1", "--out", str(out)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    table = L.load_latency_table(out)
    direct = D.latency_table_from_benchmark_outputs([(NEW.read_text(), G_MAX), (OLD.read_text(), G_ONE)], ARCH, device="pi4")
    assert table.to_json() == json.loads(json.dumps(direct.to_json()))
    result = CliRunner().invoke(cli, ["device", "parse", "--json", str(NEW)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["inference_avg_us"] == 2336.02 and summary["profiled_nodes"] == 140
    assert summary["by_type_ms"]["LceBconv2d"] == 1.245


def test_export_calibration_models_writes_a_manifest(tmp_path):
    path = D.export_calibration_models(ARCH, tmp_path, convert_fn=lambda g: ("model " + str(g)).encode(),
                                       build_fn=lambda arch, g, **kw: list(g))
    arch, models, space = D.load_manifest(path)
    assert space is None  # groups only
    assert arch == ARCH and [g for _, g in models] == D.calibration_genotypes(ARCH)
    assert all((tmp_path / name).read_bytes() == f"model {list(g)}".encode() for name, g in models)
    assert models[0][0] == "m3_32x32_1-1-1-1-1-1-1-1-1-1-1-1-1.tflite"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "architecture": L.architecture_info(ARCH),
                               "models": [{"file": "../x.tflite", "genotype": list(G_ONE)}]}))
    with pytest.raises(ValueError, match=r"models\.0\.file: model file names must be plain names .*received '\.\./x\.tflite'"):
        D.load_manifest(bad)
    for mutate, message in [
        (lambda d: d.update(version=2), r"version: Input should be 1 \(received 2\)"),
        (lambda d: d["architecture"].update(module="m4"), r"architecture\.module: .*\(received 'm4'\)"),
        (lambda d: d.update(models=[]), r"models: .*at least 1 item"),
        (lambda d: d["models"][0].update(genotype=[1, "2"]), r"models\.0\.genotype\.1: .*\(received '2'\)"),
        (lambda d: d["models"][0].update(genotype=[1, 2]), r"models\.0\.genotype: .*has 13 searchable layers"),
        (lambda d: d.update(extra=True), r"extra: unknown field"),
    ]:
        data = json.loads(path.read_text())
        mutate(data)
        bad.write_text(json.dumps(data))
        with pytest.raises(ValueError, match=message):
            D.load_manifest(bad)


FAKE_BAZEL = r"""#!/usr/bin/env bash
{ printf '%q ' "$(basename "$0")" "$@"; printf '\n'; } >> "$FAKE_LOG"
mkdir -p bazel-bin/larq_compute_engine/tflite/benchmark
printf 'fake binary\n' > bazel-bin/larq_compute_engine/tflite/benchmark/lce_benchmark_model
"""


@pytest.mark.parametrize(
    "script, args, config",
    [
        (ROOT / "export" / "raspberry_pi" / "build_benchmark.sh", [], "--config=aarch64"),
        (ROOT / "export" / "raspberry_pi" / "build_benchmark.sh", ["--config", "rpi3"], "--config=rpi3"),
        (ROOT / "export" / "android" / "build_benchmark.sh", [], "--config=android_arm64"),
    ],
)
def test_build_scripts_with_fake_bazel(script, args, config, tmp_path):
    lce = tmp_path / "compute-engine"
    (lce / "larq_compute_engine" / "tflite" / "benchmark").mkdir(parents=True)
    (lce / "larq_compute_engine" / "tflite" / "benchmark" / "BUILD").write_text("")
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    (bindir / "bazel").write_text(FAKE_BAZEL)
    (bindir / "bazel").chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", FAKE_LOG=str(tmp_path / "calls.log"))
    out = tmp_path / "bin" / "lce_benchmark_model"
    common = ["--lce-src", str(lce), "--bazel", "bazel", "--out", str(out), *args]
    dry = run_script(script, ["--dry-run", *common])
    expected = ["bazel", "build", "-c", "opt", config, "--copt=-O3",
                "//larq_compute_engine/tflite/benchmark:lce_benchmark_model"]
    assert expected in commands(dry.stdout) and not out.exists()
    run_script(script, common, env=env)
    assert recorded(tmp_path) == [expected]
    assert out.read_text() == "fake binary\n" and os.access(out, os.X_OK)


def test_android_build_configure_dry_run(tmp_path):
    proc = run_script(ROOT / "export" / "android" / "build_benchmark.sh",
                      ["--dry-run", "--configure", "--lce-src", str(tmp_path)],
                      env=dict(os.environ, ANDROID_SDK_HOME="/sdk", ANDROID_NDK_HOME="/sdk/ndk/25.2.9519653"))
    configure = [c for c in commands(proc.stdout) if c[-1] == "./configure.py"]
    assert configure and configure[0][:2] == ["env", "LCE_SET_ANDROID_WORKSPACE=1"]
    assert "ANDROID_NDK_HOME=/sdk/ndk/25.2.9519653" in configure[0]


def _profile_of(specs, arch_ms=0.01):
    """A synthetic parsed profile with one node per exported conv (+ LceQuantize before each binary one)."""
    ops, i = [], 0
    for spec in specs:
        if spec.binary:
            ops.append(D.OpRow("LceQuantize", 0.001, 0.001, 0, 0, 0, 1, f"[{spec.name}/approx_sign/Sign]:{i}"))
            i += 1
        kind = "LceBconv2d" if spec.binary else "CONV_2D"
        ops.append(D.OpRow(kind, arch_ms * (1 + i), arch_ms, 0, 0, 0, 1, f"[x{i}]:{i}"))
        i += 1
    out = D.BenchmarkOutput(params={"Num threads": "1", "Use indirect BGEMM": "1"}, inference_avg_us=5000.0)
    out.profile = D.ProfileSection(run_order=ops)
    return out


def test_order_mapping_accepts_fused_m3_pointwise_pairs():
    fused = D.exported_convs(ARCH)
    unfused = D.exported_convs(ARCH, fuse_pointwise=False)
    assert len(unfused) == len(ARCH.convs) == 40 and len(fused) == 27  # stem + 13 x (3x3 + one fused 1x1)
    assert [s.name for s in fused[1:4]] == ["block1_conv3x3", "block1_pw", "block2_conv3x3"]
    assert fused[2].out_channels == ARCH.blocks[0].out_channels and fused[2].in_channels == ARCH.blocks[0].in_channels
    for specs in (fused, unfused):
        times, how = D.layer_times(_profile_of(specs), ARCH, mapping="order")
        assert how == "order" and set(times) == {s.name for s in ARCH.gene_layers}
        # each 3x3 layer gets its LceBconv2d and the LceQuantize before it, nothing of the pointwise convs
        by_name = {r.name: r for r in _profile_of(specs).ops}
        for s in ARCH.gene_layers:
            k = [r for r in _profile_of(specs).ops if r.name.startswith(f"[{s.name}/")][0].node_index
            assert times[s.name] == pytest.approx(0.001 + by_name[f"[x{k + 1}]:{k + 1}"].avg_ms)
    with pytest.raises(D.BenchmarkOutputError, match=r"found 20 conv nodes .* has 40 \(as built\) or 27 \(pointwise pairs fused\)"):
        D.layer_times(_profile_of(fused[:20]), ARCH, mapping="order")


# ----------------------------------------------------------------------------------------------------------
# Device tables with width genes (scope block_convs): real calibration models, synthetic profiles of them

BLOCK_CONV = __import__("re").compile(r"^(block\d+_(?:conv3x3|pw))(?:_bn)?/")
OVERHEAD_MS, QUANTIZE_MS, OTHER_MS = 0.05, 0.002, 0.003


def true_conv_ms(key) -> float:
    """The made-up device's time of a conv configuration (a smooth function of the key's fields)."""
    h, w = key["in_size"]
    macs = key["in_channels"] * key["out_channels"] * key["kernel"] ** 2 * h * w / key["groups"] / key["stride"] ** 2
    return round(0.01 + macs / 2e6 + 0.001 * key["groups"], 9)


def synthetic_profile(flatbuffer, graph: str, conv_ms) -> str:
    """lce_benchmark_model's output for `flatbuffer` with made-up node times: `conv_ms(conv name)` for a block's
    CONV_2D / LceBconv2d node (told apart by the Keras layer name in its output tensor), QUANTIZE_MS for each
    LceQuantize, OTHER_MS for every other node; the inference average adds OVERHEAD_MS."""
    rows, total = [], OVERHEAD_MS
    for index, (op, names) in sorted(D.tflite_node_outputs(flatbuffer).items()):
        conv = BLOCK_CONV.match(names[0]) if op in ("CONV_2D", "LceBconv2d") else None
        ms = conv_ms(conv.group(1)) if conv else QUANTIZE_MS if op == "LceQuantize" else OTHER_MS
        total += ms
        rows.append(f"\t{op:>40}\t{ms:9.6f}\t{ms:9.6f}\t  1.000%\t  1.000%\t     0.000\t        1\t[{names[0]}]:{index}")
    head = ["INFO: STARTING!", "INFO: Num threads: [1]", f"INFO: Graph: [{graph}]", "INFO: Enable op profiling: [1]",
            "INFO: Use indirect BGEMM: [1]",
            f"INFO: Inference timings in us: Init: 1000, First inference: 2000, Warmup (avg): 1500, "
            f"Inference (avg): {1000 * total:.3f}",
            "INFO: Operator-wise Profiling Info for Regular Benchmark Runs:",
            "============================== Run Order ==============================",
            "\t                             [node type]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]"
            "\t[times called]\t[Name]"]
    return "\n".join(head + rows) + "\n", total


@pytest.mark.slow
def test_width_device_table_from_calibration_models_recovers_every_block_conv(tmp_path):
    from larq_mobisearch.nn.space import SearchSpace
    from larq_mobisearch.search.costs import WidthLatencyCostModel

    # 8x8 inputs and two width choices: 7 calibration models to convert (each conversion is what costs here)
    arch = architecture("m1", (8, 8, 1), 10, 0.5)
    space = SearchSpace(arch, "lce", genes="joint", width_choices=(0.5, 1.0))
    manifest = D.export_calibration_models(arch, tmp_path, space=space)
    loaded_arch, models, loaded_space = D.load_manifest(manifest)
    assert loaded_arch == arch and loaded_space.widths == space.widths
    assert [g for _, g in models] == L.cover_genotypes(space)
    residuals = []
    for name, genotype in models:
        at, groups = space.resolve(genotype)
        convs = {c.name: L.layer_key(c, c.groups if c.gene is None else groups[c.gene], 1)
                 for b in at.blocks for c in b.convs}
        text, total = synthetic_profile(tmp_path / name, name, lambda conv: true_conv_ms(convs[conv]))
        (tmp_path / (name[:-len(".tflite")] + ".txt")).write_text(text)
        residuals.append(total - sum(true_conv_ms(k) + QUANTIZE_MS * (k["kind"] == "binary") for k in convs.values()))
    table = D.table_from_manifest(manifest, tmp_path, device="pi4")
    assert table.scope == "block_convs" and table.source == "device:pi4"
    needed = L.block_table_keys(space)
    assert len(table.entries) == len(needed)  # the cover left no configuration out
    for key, _ in needed:  # a binary conv's entry includes the LceQuantize that binarizes its input
        want = true_conv_ms(key) + QUANTIZE_MS * (key["kind"] == "binary")
        assert table.entries[L.key_id(key)]["ms"] == pytest.approx(want, abs=2e-6), L.describe_key(key)
    assert table.fixed_ms == pytest.approx(sum(residuals) / len(residuals), abs=1e-5)
    # the search's latency model on this table predicts a network as the made-up device would run it
    model = WidthLatencyCostModel(table, space)
    rng = __import__("random").Random(0)
    for _ in range(5):
        g = space.sample(rng)
        at, groups = space.resolve(g)
        want = table.fixed_ms + sum(true_conv_ms(k) + QUANTIZE_MS * (k["kind"] == "binary")
                                    for k, _ in L.block_conv_keys(at, groups))
        assert model.cost(g) == pytest.approx(want, abs=1e-4)
    # a manifest genotype outside the space is refused, naming the model and the width
    data = json.loads(manifest.read_text())
    data["models"][0]["genotype"][-1] = 999
    manifest.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"models\.0\.genotype: Invalid width 999 for block 13"):
        D.load_manifest(manifest)


@pytest.mark.parametrize("module, models, configs", [("m1", 30, 301), ("m2", 230, 912), ("m3", 29, 263)])
def test_cover_genotypes_contain_every_block_conv_configuration_as_export_readme_says(module, models, configs):
    from larq_mobisearch.nn.space import SearchSpace

    space = SearchSpace(architecture(module, (28, 28, 1), 10, 0.5), "lce", genes="joint")
    cover = L.cover_genotypes(space)
    needed = {L.key_id(k) for k, _ in L.block_table_keys(space)}
    contained = set()
    for g in cover:
        at, groups = space.resolve(space.validate(g))
        contained |= {L.key_id(k) for k, _ in L.block_conv_keys(at, groups)}
    # independent check of the table's configurations: every (conv, widths, legal group count) of every block
    by_hand = set()
    for i, outs in enumerate(space.widths, start=1):
        for prev in ((None,) if i == 1 else space.widths[i - 2]):
            for w in outs:
                for c in space.block_at(i, prev, w).convs:
                    for g in (d for d in range(1, c.in_channels + 1) if c.in_channels % d == 0):
                        if c.gene is None and g == c.groups or c.gene is not None and space.contains(
                                _with(space, i, prev, w, c.gene, g)):
                            by_hand.add(L.key_id(L.layer_key(c, g, 1)))
    assert contained == needed == by_hand and len(needed) == configs and len(cover) == models
    text = " ".join((ROOT / "export" / "README.md").read_text().split())
    names = {"m1": "M1 at 28x28 width 0.5 with widths 0.5-1.5x: ", "m3": "M3: ", "m2": "M2, whose float 1x1 convs "
             "are searched too: "}
    assert f"{names[module]}{models} " in text and f"{models} networks for {configs} configurations" in text or \
        f"{names[module]}{models} for {configs}" in text


def _with(space, block, prev, width, gene, groups):
    """A genotype of `space` with block `block` at `width`, the block before at `prev` and gene `gene` at
    `groups`, every other gene at 1 group and every other block at its largest width."""
    widths = [c[-1] for c in space.widths]
    widths[block - 1] = width
    if prev is not None:
        widths[block - 2] = prev
    genes = [1] * space.num_groups
    genes[gene] = groups
    return tuple(genes) + tuple(widths)
