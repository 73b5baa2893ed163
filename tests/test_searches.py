"""One supernet, many searches (issue 14): named searches under FLOPs and latency budgets on one trained
supernet, stage-scoped settings, --restart-from, and the migration of layout-1 run directories."""

import hashlib
import json
import os

import pytest
import larq_mobisearch  # noqa: F401
from larq_mobisearch.cli import _open_run
from larq_mobisearch.pipeline import Run, RunDirError
from run_helpers import RUN_MIN_FITNESS, RUN_MIN_TEST_TOP1, copy_run, invoke  # tests/

#: The later stages of the searches added here stay cheap: one retraining epoch (the shared run's default
#: search is the one whose retraining is checked for learning, in test_cli.py).
CHEAP_RETRAIN = ["--set", "retrain.epochs=1"]


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.slow
def test_one_supernet_three_searches(digits_run, host_latency_table, tmp_path):
    """On a copy of the session's finished run (supernet + the default search, FLOPs budget 0.85x g=1): one
    more FLOPs budget (searched only) and one latency budget (searched, retrained and exported on its own), the
    supernet untouched."""
    run_dir = copy_run(digits_run[0], tmp_path / "run")
    weights = run_dir / "supernet" / "weights.h5"
    digest = sha(weights)
    result = invoke("supernet", "--quiet", "--run-dir", run_dir)
    assert result.exit_code == 0 and "supernet trained already" in result.output, result.output
    result = invoke("run", "--quiet", "--run-dir", run_dir)  # the finished run: every stage is skipped
    assert result.exit_code == 0, result.output
    for stage in ("supernet", "search", "retrain", "export"):
        assert f"[{stage}] done already" in result.output, result.output

    # A second FLOPs budget (the default search has 0.85), searched on the same supernet only.
    result = invoke("search", "--quiet", "--run-dir", run_dir, "--name", "flops-100",
                    "--set", "search.flops_budget_fraction=1.0")
    assert result.exit_code == 0, result.output
    assert sha(weights) == digest

    # A latency budget from the host table measured here, through search / train / export --search.
    from larq_mobisearch.deploy.latency_table import load_latency_table
    from larq_mobisearch.search.costs import LatencyCostModel

    table = host_latency_table
    run = Run.open(str(run_dir), search=None)
    model = LatencyCostModel(load_latency_table(table), run.arch, run.space.candidates, threads=1)
    budget = (model.min_cost(run.space.candidates) + model.cost(run.space.uniform(1))) / 2
    for args in (("search", "--name", "lat", "--latency-table", table, "--latency-budget-ms", budget),
                 ("train", "--search", "lat", *CHEAP_RETRAIN), ("export", "--search", "lat")):
        result = invoke(*args[:1], "--quiet", "--run-dir", run_dir, *args[1:])
        assert result.exit_code == 0, result.output
    assert sha(weights) == digest

    names = ["default", "flops-100", "lat"]
    rows = json.loads(invoke("searches", "--run-dir", run_dir, "--json").output)
    by_name = {r["name"]: r for r in rows}
    assert sorted(by_name) == names, "supernet / latency-table make no search"
    for name in names:
        # every search scored its winner on the shared (trained) supernet: far above chance (0.1)
        assert by_name[name]["fitness"] >= RUN_MIN_FITNESS, (name, by_name[name]["fitness"])
    for name in ("default", "lat"):
        r = by_name[name]
        assert (run_dir / "searches" / name / "model.tflite").exists()
        assert r["test_accuracy"] is not None and r["stages_done"] == ["search", "retrain", "export"]
    assert by_name["flops-100"]["stages_done"] == ["search"] and by_name["flops-100"]["test_accuracy"] is None
    assert not (run_dir / "searches" / "flops-100" / "model.tflite").exists()
    assert by_name["default"]["test_accuracy"] >= RUN_MIN_TEST_TOP1  # retrained 8 epochs (lat: 1)
    assert by_name["default"]["flops"] <= by_name["default"]["flops_budget"] < by_name["flops-100"]["flops_budget"]
    assert by_name["flops-100"]["flops"] <= by_name["flops-100"]["flops_budget"]
    assert by_name["lat"]["latency_ms"] <= budget and by_name["lat"]["latency_budget_ms"] == pytest.approx(budget)
    report = (run_dir / "report.md").read_text()
    for name in names:
        assert f"| {name} |" in report
    search_report = (run_dir / "searches" / "lat" / "report.md").read_text()
    assert "test top-1 of the .tflite (on 16 test images, `export.verify_samples`)" in search_report
    assert (run_dir / "plots" / "searches_flops.png").exists() and (run_dir / "plots" / "searches_latency.png").exists()
    table_text = invoke("searches", "--run-dir", run_dir).output
    assert all(f"| {n} |" in table_text for n in names)


def test_later_stage_settings_start_from_the_saved_config_of_a_non_default_preset(tmp_path):
    run_dir = str(tmp_path / "run")
    run = _open_run(run_dir, "cifar10", None, ("retrain.epochs=3",), True, create=True)
    assert run.cfg.data.name == "cifar10"
    # nothing has run: any setting is accepted; a later stage's setting keeps the cifar10 preset's values
    run = _open_run(run_dir, None, None, ("retrain.epochs=5", "search.population=8"), True, create=False)
    assert (run.cfg.data.name, run.cfg.retrain.epochs, run.cfg.search.population) == ("cifar10", 5, 8)
    assert run.cfg.model.width_multiplier == 1.0 and run.cfg.supernet.epochs == 64
    os.makedirs(os.path.join(run_dir, "supernet"))  # the supernet stage has started (a backup would be here)
    run = _open_run(run_dir, None, None, ("retrain.epochs=7", "export.verify_samples=8"), True, create=False)
    assert (run.cfg.retrain.epochs, run.cfg.export.verify_samples, run.cfg.data.name) == (7, 8, "cifar10")
    with pytest.raises(RunDirError) as info:
        _open_run(run_dir, None, None, ("data.image_size=64", "supernet.epochs=2", "retrain.epochs=9"), True,
                  create=False)
    message = str(info.value)
    assert "supernet stage" in message and "data.image_size: 32" in message and "supernet.epochs: 64" in message
    assert "retrain" not in message.split("\n")[1:3][0]
    saved = json.loads(open(os.path.join(run_dir, "searches", "default", "config.json")).read())
    assert saved["retrain"]["epochs"] == 7, "a refused change leaves the saved config as it was"
    # a started retraining refuses retrain changes for that search only; another search may differ
    os.makedirs(os.path.join(run_dir, "searches", "default", "final"))
    with pytest.raises(RunDirError, match=r"retrain stage of search 'default'(.|\n)*retrain.epochs: 7"):
        _open_run(run_dir, None, None, ("retrain.epochs=9",), True, create=False)
    other = _open_run(run_dir, None, None, ("retrain.epochs=9",), True, create=False, search="other")
    assert other.cfg.retrain.epochs == 9 and other.cfg.data.name == "cifar10"
    # --restart-from retrain deletes that search's retraining and accepts the change
    run = _open_run(run_dir, None, None, ("retrain.epochs=9",), True, create=False, restart_from="retrain")
    assert run.cfg.retrain.epochs == 9 and not os.path.exists(os.path.join(run_dir, "searches", "default", "final"))


def test_layout_1_run_directory_is_moved_into_searches_default(tmp_path):
    from larq_mobisearch.config import load_config, save_config

    run_dir = tmp_path / "old"
    (run_dir / "search").mkdir(parents=True)
    (run_dir / "final").mkdir()
    (run_dir / "plots").mkdir()
    (run_dir / "supernet").mkdir()
    save_config(load_config(None), str(run_dir / "config.json"))
    (run_dir / "search" / "result.json").write_text('{"genotype": "1-1-1-1-1-1-1-1-1-1-1-1-1"}')
    (run_dir / "search_state.json").write_text("{}")
    (run_dir / "model.tflite").write_bytes(b"x")
    (run_dir / "plots" / "pareto.png").write_bytes(b"png")
    (run_dir / "plots" / "supernet_training.png").write_bytes(b"png")
    messages = []
    run = Run.open(str(run_dir), echo=messages.append)
    target = run_dir / "searches" / "default"
    assert (target / "search" / "result.json").exists() and (target / "model.tflite").exists()
    assert (target / "plots" / "pareto.png").exists() and (run_dir / "plots" / "supernet_training.png").exists()
    assert not (run_dir / "search").exists() and not (run_dir / "model.tflite").exists()
    assert run.done("search") and "version 1" in messages[0] and "model.tflite" in messages[0]
    assert json.loads((run_dir / "run.json").read_text())["layout"] == 2
    (run_dir / "run.json").write_text('{"layout": 7}')
    with pytest.raises(RunDirError, match="layout 7"):
        Run.open(str(run_dir))


def test_bad_search_name_is_refused(tmp_path):
    result = invoke("run", "--run-dir", tmp_path / "r", "--search", "../escape")
    assert result.exit_code != 0 and "Invalid search name '../escape'" in result.output
