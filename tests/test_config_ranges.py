"""Every numeric setting has its range in the schema and is refused at config load, naming the dotted key
(issue 24, part 4): a sweep over every numeric field of every preset, discovered from the pydantic models so
that a new field is swept too; and at the command line, before anything trains."""

import os
import typing

import pytest
from click.testing import CliRunner

from larq_mobisearch.config import PRESETS, ConfigError, load_config
from larq_mobisearch.config.schema import section_models

#: Fields where 0 is a legitimate value (seeds; "none of these children"; a probability; "no random
#: baseline"; RPReLU's slope 0 is a ReLU). The sweep asserts 0 is accepted there and refused everywhere else.
ZERO_ALLOWED = {
    "data.seed", "data.split_seed", "model.rprelu_init_slope", "supernet.seed", "search.crossover",
    "search.mutation", "search.mutation_prob", "search.random_baseline_samples", "search.seed", "retrain.seed",
    "teacher.seed", "supernet.sandwich_random",
}
#: Budgets have no upper bound: a huge budget never binds, it cannot fail later. Everything else must refuse
#: an absurd value.
NO_UPPER_BOUND = {"search.flops_budget", "search.latency_budget_ms"}
ABSURD = {int: "1000000000000", float: "1e12"}


def _base_type(annotation):
    """int / float / None for a field annotation (Optional and Annotated unwrapped; bool is not numeric)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _base_type(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) is typing.Union:
        types = {_base_type(a) for a in typing.get_args(annotation) if a is not type(None)}
        return types.pop() if len(types) == 1 else None
    return annotation if annotation in (int, float) else None


def numeric_fields():
    """``{dotted key: int or float}`` of every numeric field of every section."""
    found = {}
    for section, model in section_models().items():
        for name, field in model.model_fields.items():
            kind = _base_type(field.annotation)
            if kind is not None:
                found[f"{section}.{name}"] = kind
    return found


NUMERIC = numeric_fields()


def test_the_sweep_sees_the_numeric_fields():
    # A hand list of some fields the discovery must find (and no booleans or strings).
    assert {"data.image_size": int, "data.holdout_fraction": float, "search.recalibration_batches": int,
            "search.latency_threads": int, "retrain.step1_epochs": int, "export.verify_samples": int,
            "distribute.cpu_devices": int, "supernet.learning_rate": float}.items() <= NUMERIC.items()
    assert not {"data.augment", "data.name", "export.allow_mismatch", "search.latency_table"} & set(NUMERIC)
    assert ZERO_ALLOWED <= set(NUMERIC) and NO_UPPER_BOUND <= set(NUMERIC)  # the explicit lists are not stale


def _refused(preset, key, value):
    with pytest.raises(ConfigError) as info:
        load_config(preset=preset, overrides=[f"{key}={value}"])
    lines = str(info.value).splitlines()
    assert any(line.startswith(f"{key}: received {value}") for line in lines), (key, value, str(info.value))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_numeric_setting_has_a_range(preset):
    for key, kind in NUMERIC.items():
        _refused(preset, key, "-1")
        if key in ZERO_ALLOWED:
            section, name = key.split(".")
            assert getattr(getattr(load_config(preset=preset, overrides=[f"{key}=0"]), section), name) == 0, key
        else:
            _refused(preset, key, "0")
        if key in NO_UPPER_BOUND:
            cfg = load_config(preset=preset, overrides=[f"{key}={ABSURD[kind]}"])
            assert getattr(cfg.search, key.split(".")[1]) == 1e12
        else:
            _refused(preset, key, ABSURD[kind])


def test_recalibration_batches_at_least_one():
    _refused("digits", "search.recalibration_batches", "0")
    assert load_config(overrides=["search.recalibration_batches=1"]).search.recalibration_batches == 1


def test_verify_samples_zero_needs_allow_mismatch(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["export.verify_samples=0"])
    msg = str(info.value)
    assert msg.startswith("export.verify_samples: received 0;") and "export.allow_mismatch=true" in msg
    cfg = load_config(overrides=["export.verify_samples=0", "export.allow_mismatch=true"])
    assert (cfg.export.verify_samples, cfg.export.allow_mismatch) == (0, True)
    path = tmp_path / "cfg.yaml"
    path.write_text("export:\n  verify_samples: 0\n")
    with pytest.raises(ConfigError, match=r"^export\.verify_samples: received 0;"):
        load_config(str(path))


# ---- at the command line: refused at load, nothing trained ----


def _invoke(*args):
    from larq_mobisearch.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_refuses_zero_recalibration_batches_before_training(tmp_path):
    run_dir = tmp_path / "run"
    result = _invoke("run", "--quiet", "--run-dir", run_dir, "--set", "search.recalibration_batches=0")
    assert result.exit_code != 0
    assert "search.recalibration_batches: received 0; must be in [1, " in result.output
    assert "Traceback" not in result.output and "[supernet]" not in result.output
    assert not run_dir.exists()  # refused before the run directory, let alone the supernet


def test_cli_export_allow_mismatch_admits_unverified_export(tmp_path):
    from larq_mobisearch.pipeline import Run

    run_dir = tmp_path / "run"
    Run.open(str(run_dir), load_config(), verbose=0)  # a run directory, nothing trained
    refused = _invoke("export", "--quiet", "--run-dir", run_dir, "--set", "export.verify_samples=0")
    assert refused.exit_code != 0 and "export.verify_samples: received 0" in refused.output
    # --allow-mismatch admits it (recorded as export.allow_mismatch); the export then needs a retrained model.
    allowed = _invoke("export", "--quiet", "--run-dir", run_dir, "--set", "export.verify_samples=0",
                      "--allow-mismatch")
    assert allowed.exit_code != 0 and "export.verify_samples" not in allowed.output, allowed.output
    assert os.path.exists(run_dir / "config.json")
