"""The `mobisearch` CLI end to end on digits with tiny settings (issue 6): a .tflite the LCE interpreter
runs, stage skipping and resumption, and clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import larq_mobisearch  # noqa: F401
from run_helpers import RUN_MIN_FITNESS, RUN_MIN_TEST_TOP1, TINY, copy_run, invoke  # tests/

# The finished run is the session's shared one (`digits_run` in conftest.py, settings in run_helpers.py).


@pytest.mark.slow
def test_run_end_to_end_to_a_working_tflite(digits_run):
    run_dir, output = digits_run
    search_dir = run_dir / "searches" / "default"
    for name in ("config.json", "run.json", "report.json", "report.md", "plots/supernet_training.png",
                 "supernet/weights.h5", "searches/default/config.json"):
        assert (run_dir / name).exists(), name
    for name in ("search_state.json", "random_search_state.json", "search/result.json", "final/weights.h5",
                 "model.tflite", "export.json",
                 "report.json", "report.md", "plots/pareto.png", "plots/search_progress.png",
                 "plots/final_training.png"):
        assert (search_dir / name).exists(), name
    report = json.loads((search_dir / "report.json").read_text())
    assert f"test top-1      {report['test_accuracy']:.4f}" in output
    assert str(search_dir / "model.tflite") in output
    assert report["flops_budget"] is not None, "the digits preset sets a FLOPs budget"
    assert report["costs"]["flops"] <= report["flops_budget"]
    from larq_mobisearch.pipeline import Run

    # every binary conv of the architecture (from specs) is one LceBconv2d: 21 for M1
    n_binary = sum(c.binary for c in Run.open(str(run_dir)).arch.convs)
    exported = json.loads((search_dir / "export.json").read_text())
    assert report["op_census"]["LceBconv2d"] == exported["num_binary_convs"] == n_binary == 21
    assert exported["verification"]["passed"] is True and exported["verification"]["allowed_mismatch"] is False
    assert exported["verification"]["max_abs_diff_clear"] <= exported["verification"]["tolerance"]
    import larq_compute_engine as lce

    from larq_mobisearch.config import load_config
    from larq_mobisearch.data import load_dataset

    cfg = load_config(str(run_dir / "config.json"))
    images, labels = load_dataset(cfg.data).numpy_samples("test", n=200)
    interpreter = lce.testing.Interpreter((search_dir / "model.tflite").read_bytes(), use_indirect_bgemm=True)
    logits = np.stack([interpreter.predict(images[i : i + 1])[0] for i in range(len(images))])
    assert logits.shape == (200, 10) and np.all(np.isfinite(logits))
    # Something was learned (chance is 0.1; the shared run's settings reach ~0.85, see run_helpers.py): the
    # retrained winner's test top-1, the .tflite's own top-1 on 200 test images counted here from its logits
    # (binomial s.e. ~0.025: the floor less 0.1), and the supernet's fitness of the winner.
    assert report["test_accuracy"] >= RUN_MIN_TEST_TOP1, report["test_accuracy"]
    tflite_top1 = float(np.mean(logits.argmax(axis=1) == labels))
    assert tflite_top1 >= RUN_MIN_TEST_TOP1 - 0.1, tflite_top1
    search_result = json.loads((search_dir / "search" / "result.json").read_text())
    assert search_result["fitness"] >= RUN_MIN_FITNESS, search_result["fitness"]
    assert "| evolutionary search |" in (search_dir / "report.md").read_text()
    assert "| default |" in (run_dir / "report.md").read_text()


def test_report_counts_the_feasible_space_like_brute_force(digits_run):
    import itertools

    from larq_mobisearch.pipeline import Run

    run_dir, output = digits_run
    run = Run.open(str(run_dir))
    result = json.loads((run_dir / "searches" / "default" / "search" / "result.json").read_text())
    flops, budget = run.flops_model(), run.flops_budget()
    brute = sum(flops.cost(g) <= budget for g in itertools.product(*run.space.candidates))
    assert result["feasible"]["exact"] and result["feasible"]["count"] == brute > 0
    assert result["feasible"]["space_size"] == run.space.size
    report = (run_dir / "searches" / "default" / "report.md").read_text()
    assert f"search saw {result['evaluations']} genotypes ({brute:,} feasible of" in report


def test_impossible_budget_is_refused_before_the_supernet_trains(tmp_path):
    result = invoke("run", "--run-dir", tmp_path / "r", *TINY, "--set", "search.flops_budget=1")
    assert result.exit_code != 0
    assert "Impossible flops budget: received 1 FLOPs" in result.output
    assert not (tmp_path / "r" / "supernet").exists()


def test_rerun_skips_finished_stages(digits_run):
    run_dir, _ = digits_run
    before = (run_dir / "searches" / "default" / "model.tflite").stat().st_mtime_ns
    result = invoke("run", "--quiet", "--run-dir", run_dir, *TINY)
    assert result.exit_code == 0, result.output
    assert result.output.count("done already, skipping") == 4
    assert (run_dir / "searches" / "default" / "model.tflite").stat().st_mtime_ns == before


def test_changing_a_finished_stage_is_refused_naming_stage_and_keys(digits_run):
    run_dir, _ = digits_run
    result = invoke("run", "--run-dir", run_dir, *TINY, "--set", "search.population=6")
    assert result.exit_code != 0
    assert "search.population" in result.output and "search stage of search 'default'" in result.output
    assert "--restart-from search" in result.output
    result = invoke("search", "--run-dir", run_dir, "--set", "data.image_size=24")
    assert result.exit_code != 0
    assert "supernet stage of the supernet" in result.output and "data.image_size: 16" in result.output


def test_train_rejects_genotype_of_wrong_length(digits_run):
    run_dir, _ = digits_run
    result = invoke("train", "--run-dir", run_dir, "--genotype", "1-2")
    assert result.exit_code != 0
    assert "13 searchable layers" in result.output and "received 2" in result.output


def test_bad_config_key_is_named():
    result = invoke("run", "--run-dir", "unused", "--set", "search.populaton=3")
    assert result.exit_code != 0
    assert "search.populaton" in result.output and "population" in result.output


def test_missing_dataset_directory(tmp_path):
    missing = tmp_path / "no_such_images"
    result = invoke("run", "--run-dir", tmp_path / "run", "--set", "data.name=folder",
                    "--set", f"data.data_dir={missing}")
    assert result.exit_code != 0
    assert str(missing) in result.output
    assert "Traceback" not in result.output


def test_flops_command_reproduces_table1():
    result = invoke("flops", "--module", "m3", "--groups", "4", "--json")
    assert result.exit_code == 0, result.output
    costs = json.loads(result.output)
    assert set(costs) == {"bops", "float_flops", "flops"}
    assert int(costs["flops"] / 1e6) == 37  # Table 1: M3, groups 4 -> 0.37e8
    bad = invoke("flops", "--module", "m1", "--groups", "16", "--space", "lce")
    assert bad.exit_code != 0 and "block1_conv3x3" in bad.output and "allowed: [1]" in bad.output


def test_latency_table_command_feeds_a_latency_cost_model(digits_run, host_latency_table):
    from larq_mobisearch.deploy.latency_table import load_latency_table
    from larq_mobisearch.search.costs import LatencyCostModel
    from larq_mobisearch.pipeline import Run, searched_genotype

    run_dir, _ = digits_run
    run = Run.open(str(run_dir))
    table = load_latency_table(host_latency_table)  # `mobisearch latency-table --run-dir RUN --runs 3 --output`
    model = LatencyCostModel(table, run.arch, run.space.candidates, threads=1)
    genotype = searched_genotype(run)
    ms = model.cost(genotype)
    # the prediction is the table's fixed part plus one measured (positive) entry per searchable layer
    parts = model.breakdown(genotype)
    assert len(parts) == run.arch.num_genes and all(t > 0 for _, _, t in parts)
    assert ms == pytest.approx(table.fixed_ms + sum(t for _, _, t in parts))
    assert model.min_cost(run.space.candidates) <= ms
    calibrating = [r for r in table.calibration["references"] if r["calibrates"]]  # --calibration-samples 2
    assert len(calibrating) == 2 and table.fixed_ms == pytest.approx(
        sum(r["residual_ms"] for r in calibrating) / 2)  # the median of two residuals


REPO = Path(__file__).resolve().parents[1]
#: What TensorFlow, XLA, MLIR and LCE's converter print on stderr when not silenced.
NOISE = ("Unable to register", "oneDNN", "absl::InitializeLog", "XLA", "I0000", "W0000", "loc(", "tensorflow/")


def run_cli(*args, env=None, timeout=600):
    """`python -m larq_mobisearch.cli ARGS` in a fresh interpreter (TensorFlow's start-up included)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the CLI decides
    return subprocess.run([sys.executable, "-m", "larq_mobisearch.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=timeout)


def test_cli_is_quiet_by_default_and_verbose_on_request():
    proc = run_cli("flops", "--module", "m3", "--groups", "4")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.splitlines() == ["BOPs         1,608,843,264", "float FLOPs  11,862,016",
                                        "FLOPs        37,000,192  (0.3700e8)"]
    # errors are not hidden
    bad = run_cli("flops", "--module", "m1", "--groups", "16", "--space", "lce")
    assert bad.returncode != 0 and "block1_conv3x3" in bad.stderr and "allowed: [1]" in bad.stderr
    assert not any(n in bad.stderr for n in NOISE), bad.stderr


@pytest.fixture
def run_copy(digits_run, tmp_path):
    """A copy of the finished run directory (tests that export again must not touch the shared one)."""
    run_dir, _ = digits_run
    return copy_run(run_dir, tmp_path / "copy")


def test_export_prints_no_converter_noise(run_copy):
    search_dir = run_copy / "searches" / "default"
    before = json.loads((search_dir / "export.json").read_text())
    proc = run_cli("export", "--quiet", "--run-dir", run_copy)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    assert proc.stdout.startswith(f"tflite {search_dir / 'model.tflite'}") and "; verified: max |logit diff|" in proc.stdout
    after = json.loads((search_dir / "export.json").read_text())
    assert after["op_census"] == before["op_census"] and after["verification"]["passed"] is True


def test_report_counts_parameter_memory_also_for_an_export_json_without_it(run_copy):
    """export.json records the model's parameter memory (its figures are checked against the specs in
    test_export.py); one written before it did still gets its report (the retrained model is loaded for it), with
    the same figures."""
    from larq_mobisearch.pipeline import Run, write_search_report

    path = run_copy / "searches" / "default" / "export.json"
    exported = json.loads(path.read_text())
    recorded = exported.pop("parameter_memory")
    assert recorded["binary_params"] > 0 and recorded["real_params"] > 0
    path.write_text(json.dumps(exported))
    report = write_search_report(Run.open(str(run_copy)))
    assert report["parameter_memory"] == recorded


def _wrong_bias(flatbuffer: bytes) -> bytes:
    """The flatbuffer with 0.5 added to the classifier bias of class 0: a deliberately wrong weight."""
    from larq_mobisearch.deploy.flatbuffer import TFLiteModel, constant_array, set_constant_array

    model = TFLiteModel(flatbuffer)
    fc = next(op for op in model.ops(0) if op.name == "FULLY_CONNECTED")
    bias = fc.inputs[2]
    values = constant_array(model, bias)
    values[0] += 0.5
    set_constant_array(model, bias, values)
    return model.to_bytes()


def test_export_refuses_a_mismatching_flatbuffer_unless_allowed(run_copy, monkeypatch):
    from larq_mobisearch.deploy import export as export_module

    real = export_module.export_tflite
    monkeypatch.setattr(export_module, "export_tflite", lambda *a, **k: _wrong_bias(real(*a, **k)))
    search_dir = run_copy / "searches" / "default"
    tflite, exported = search_dir / "model.tflite", search_dir / "export.json"
    before = (tflite.read_bytes(), exported.read_text())

    refused = invoke("export", "--quiet", "--run-dir", run_copy)
    assert refused.exit_code != 0
    assert "Refusing the export" in refused.output and "--allow-mismatch" in refused.output
    assert "max |logit difference| 0.5 on samples that are not near ties exceeds the tolerance" in refused.output
    assert (tflite.read_bytes(), exported.read_text()) == before  # nothing written
    figures = json.loads((search_dir / "export_refused.json").read_text())
    assert figures["verification"]["passed"] is False and figures["tflite"] is None
    assert figures["verify"]["max_abs_diff_clear"] == pytest.approx(0.5, abs=1e-3)

    allowed = invoke("export", "--quiet", "--run-dir", run_copy, "--allow-mismatch")
    assert allowed.exit_code == 0, allowed.output
    assert "MISMATCH (written with --allow-mismatch)" in allowed.output
    report = json.loads(exported.read_text())
    assert report["verification"]["passed"] is False and report["verification"]["allowed_mismatch"] is True
    assert report["allowed_mismatch"] is True and report["verification"]["failures"]
    assert tflite.read_bytes() != before[0] and not (search_dir / "export_refused.json").exists()
    assert json.loads((search_dir / "report.json").read_text())["export_verification"]["allowed_mismatch"] is True
