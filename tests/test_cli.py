"""The `mobisearch` CLI end to end on digits with tiny settings (issue 6): a .tflite the LCE interpreter
runs, stage skipping and resumption, and clear errors."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import larq_mobisearch  # noqa: F401
from larq_mobisearch.cli import main

TINY = [
    "--set", "data.image_size=16",
    "--set", "model.width_multiplier=0.25",
    "--set", "supernet.epochs=1",
    "--set", "retrain.epochs=2",
    "--set", "search.population=4",
    "--set", "search.top_k=2",
    "--set", "search.iterations=2",
    "--set", "search.recalibration_batches=1",
    "--set", "search.random_baseline_samples=3",
    "--set", "export.verify_samples=16",
]


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "digits"
    result = invoke("run", "--quiet", "--run-dir", run_dir, *TINY)
    assert result.exit_code == 0, result.output
    return run_dir, result.output


def test_run_end_to_end_to_a_working_tflite(finished_run):
    run_dir, output = finished_run
    for name in ("config.json", "search_state.json", "search/result.json", "final/weights.h5", "model.tflite",
                 "export.json", "report.json", "report.md", "plots/pareto.png", "plots/search_progress.png",
                 "plots/supernet_training.png", "plots/final_training.png"):
        assert (run_dir / name).exists(), name
    report = json.loads((run_dir / "report.json").read_text())
    assert f"test top-1      {report['test_accuracy']:.4f}" in output
    assert str(run_dir / "model.tflite") in output
    assert report["flops_budget"] is not None, "the digits preset sets a FLOPs budget"
    assert report["costs"]["flops"] <= report["flops_budget"]
    assert report["op_census"]["LceBconv2d"] >= 13
    import larq_compute_engine as lce

    from larq_mobisearch.config import load_config
    from larq_mobisearch.data import load_dataset

    cfg = load_config(str(run_dir / "config.json"))
    images, labels = load_dataset(cfg.data).numpy_samples("test", n=32)
    interpreter = lce.testing.Interpreter((run_dir / "model.tflite").read_bytes(), use_indirect_bgemm=True)
    logits = np.stack([interpreter.predict(images[i : i + 1])[0] for i in range(len(images))])
    assert logits.shape == (32, 10) and np.all(np.isfinite(logits))
    assert "| evolutionary search |" in (run_dir / "report.md").read_text()


def test_rerun_skips_finished_stages(finished_run):
    run_dir, _ = finished_run
    before = (run_dir / "model.tflite").stat().st_mtime_ns
    result = invoke("run", "--quiet", "--run-dir", run_dir, *TINY)
    assert result.exit_code == 0, result.output
    assert result.output.count("done already, skipping") == 4
    assert (run_dir / "model.tflite").stat().st_mtime_ns == before


def test_run_dir_of_another_config_is_refused(finished_run):
    run_dir, _ = finished_run
    result = invoke("run", "--run-dir", run_dir, *TINY, "--set", "search.population=6")
    assert result.exit_code != 0
    assert "search.population" in result.output and "different config" in result.output


def test_train_rejects_genotype_of_wrong_length(finished_run):
    run_dir, _ = finished_run
    result = invoke("train", "--run-dir", run_dir, "--genotype", "1-2")
    assert result.exit_code != 0
    assert "13 searchable layers" in result.output and "received 2" in result.output


def test_supernet_stage_resumes_after_interruption(tmp_path):
    from larq_mobisearch.config import load_config
    from larq_mobisearch.pipeline import Run, train_supernet
    from larq_mobisearch.training import read_history

    overrides = [TINY[i + 1] for i in range(0, len(TINY), 2)] + ["supernet.epochs=2"]
    run = Run.open(str(tmp_path / "run"), load_config(None, overrides=overrides), verbose=0)

    class Crash(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt("simulated kill after the first epoch")

    with pytest.raises(KeyboardInterrupt):
        train_supernet(run, callbacks=[Crash()])
    assert not run.done("supernet")
    assert len(read_history(run.path("supernet", "history.csv"))["loss"]) == 1

    epochs_run = []

    class Count(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs_run.append(epoch)

    train_supernet(run, callbacks=[Count()])
    assert epochs_run == [1], "the resumed run must continue at the second epoch"
    assert run.done("supernet")
    assert len(read_history(run.path("supernet", "history.csv"))["loss"]) == 2


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


def test_latency_table_command_feeds_a_latency_cost_model(finished_run, tmp_path):
    from larq_mobisearch.deploy.latency_table import load_latency_table
    from larq_mobisearch.search.costs import LatencyCostModel
    from larq_mobisearch.pipeline import Run, searched_genotype

    run_dir, _ = finished_run
    out = tmp_path / "host_table.json"
    result = invoke("latency-table", "--quiet", "--run-dir", tmp_path / "lat", *TINY, "--runs", "3",
                    "--output", out)
    assert result.exit_code == 0, result.output
    run = Run.open(str(run_dir))
    table = load_latency_table(out)
    model = LatencyCostModel(table, run.arch, run.space.candidates, threads=1)
    genotype = searched_genotype(run)
    ms = model.cost(genotype)
    # the prediction is the table's fixed part plus one measured (positive) entry per searchable layer
    parts = model.breakdown(genotype)
    assert len(parts) == run.arch.num_genes and all(t > 0 for _, _, t in parts)
    assert ms == pytest.approx(table.fixed_ms + sum(t for _, _, t in parts))
    assert model.min_cost(run.space.candidates) <= ms
