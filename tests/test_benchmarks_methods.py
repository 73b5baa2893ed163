"""The pure-logic parts of benchmarks/methods.py (issue 15) and its BENCHMARKS.md section: the configs of the
rows, the op-census difference, the aggregation, and the markdown table built from a synthetic JSON."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

import larq_mobisearch  # noqa: F401  (Keras 2 before TensorFlow)

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import make_benchmarks_md as md  # noqa: E402
import methods_md  # noqa: E402

from larq_mobisearch import deploy as L  # noqa: E402


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


methods = _load("methods")


def test_rows_set_the_documented_options():
    args = methods.parse_args(["--preset", "digits", "--epochs", "6"])
    cfg = {key: methods.method_config(args, key, 1, "/t/model.h5") for key in methods.METHOD_KEYS}
    assert (cfg["baseline"].model.activation, cfg["baseline"].model.nonlinearity) == ("approx_sign", "none")
    assert cfg["baseline"].retrain.optimizer == "adam" and cfg["baseline"].retrain.loss == "cross_entropy"
    assert cfg["rsign"].model.activation == "rsign" and cfg["rsign"].model.nonlinearity == "none"
    assert cfg["rsign_rprelu"].model.nonlinearity == "rprelu"
    assert cfg["distill"].retrain.loss == "distributional" and cfg["distill"].teacher.path == "/t/model.h5"
    two = cfg["two_step"].retrain
    assert two.two_step and (two.step1_epochs, two.epochs) == (3, 3)  # the same 6 epochs in total
    assert cfg["bop"].retrain.optimizer == "bop" and cfg["bop"].model.activation == "approx_sign"
    assert all(c.data.seed == 1 and c.retrain.seed == 1 for c in cfg.values())
    assert all(c.retrain.epochs == 6 for k, c in cfg.items() if k != "two_step")
    full = methods.method_config(methods.parse_args(["--preset", "digits", "--epochs", "6", "--two-step-full"]),
                                 "two_step", 0, "/t")
    assert (full.retrain.step1_epochs, full.retrain.epochs) == (6, 6)
    with pytest.raises(SystemExit):
        methods.parse_args(["--methods", "baseline,nope"])


def test_census_delta_lists_what_a_method_adds():
    base = {"LceBconv2d": 21, "LceQuantize": 21, "ADD": 21}
    react = {"LceBconv2d": 21, "LceQuantize": 21, "ADD": 47, "SUB": 42, "PRELU": 26}
    assert methods.census_delta(react, base) == {"ADD": 26, "PRELU": 26, "SUB": 42}
    assert methods.census_delta({"LceBconv2d": 8, "CONV_2D": 13}, {"LceBconv2d": 21}) == {"CONV_2D": 13,
                                                                                         "LceBconv2d": -13}


def _row(seed, acc, ms, census, genotype="1-1", ratio=None):
    return {"seed": seed, "genotype": genotype, "test_accuracy": acc, "latency_ms": ms, "tflite_accuracy": acc,
            "op_census": census, "costs": {"flops": 2.78e5, "bops": 1, "float_flops": 1}, "epochs": 4,
            "paired_to_baseline": {"median": ratio} if ratio else None}


def _synthetic():
    base = {"LceBconv2d": 21, "ADD": 21}
    react = {"LceBconv2d": 21, "ADD": 47, "SUB": 42, "PRELU": 26}
    rows = {"baseline": [_row(0, 0.80, 0.20, base, ratio=1.0), _row(1, 0.82, 0.22, base, ratio=1.0)],
            "rsign_rprelu": [_row(0, 0.84, 0.30, react, ratio=1.5), _row(1, 0.86, 0.32, react, ratio=1.46)],
            "mobinet": [_row(0, 0.70, 0.40, {"LceBconv2d": 8, "CONV_2D": 13}, "8-16", 2.0),
                        _row(1, 0.72, 0.41, {"LceBconv2d": 8, "CONV_2D": 13}, "8-16", 2.0)]}
    return methods.summarize(rows)


def test_summarize_aggregates_per_method():
    summary = _synthetic()
    assert [e["method"] for e in summary] == ["baseline", "rsign_rprelu", "mobinet"]  # METHODS order
    react = summary[1]
    assert react["test_accuracy"]["mean"] == pytest.approx(0.85) and react["latency_ms"]["mean"] == pytest.approx(0.31)
    assert react["latency_ratio_to_baseline"] == pytest.approx(1.48)
    assert react["ops_added"] == {"ADD": 26, "PRELU": 26, "SUB": 42}
    assert summary[2]["baseline"] == "mobinet" and summary[2]["genotype"] == "8-16"


def _synthetic_json():
    return {"command": ".venv/bin/python benchmarks/methods.py --json m.json", "machine": L.machine_info(1),
            "settings": {"preset": "fashion", "dataset": "fashion_mnist", "image_size": 28, "module": "m1",
                         "width_multiplier": 0.5, "genotype": None, "groups": 1, "retrain_epochs": 4,
                         "two_step_full": False, "seeds": [0, 1], "latency_runs": 200},
            "teacher": {"epochs": 4, "test_accuracy": 0.91},
            "methods": _synthetic(), "seconds": 3000.0}


def test_methods_markdown_comes_from_the_json(tmp_path):
    text = "\n".join(methods_md.methods_markdown(_synthetic_json(), "results/m.png"))
    assert "## Related methods" in text
    assert "| + RSign + RPReLU | 4 | 85.00 ± 1.41 | 2.78e+05 | 0.310 ± 0.014 | 1.480x | ADD +26, PRELU +26, SUB +42 |" \
        in text
    assert "| MoBiNet-style (depthwise) | 4 | 71.00 ± 1.41 |" in text and "--allow-float-fallback" in text
    assert "test top-1 91.00%" in text and "wall time 50.0 min" in text
    assert "![related methods: accuracy vs latency](results/m.png)" in text
    assert "Not run yet: `" + methods_md.METHODS_CMD in "\n".join(methods_md.methods_markdown(None, None))
    # make_benchmarks_md reads results/methods.json next to the other results and adds the section and its plot
    (tmp_path / "methods.json").write_text(json.dumps(_synthetic_json()))
    out = tmp_path / "B.md"
    ablation = _load("ablation")
    per_seed = [{"seed": 0, "flops_budget": 2.36e5, "methods": {
        m: {"genotype": "1-1", "test_accuracy": 0.9, "latency_ms": 0.3, "supernet_fitness": 0.5,
            "costs": {"flops": 2.2e5, "bops": 0, "float_flops": 0}} for m in ("uniform", "random", "evolution")}}]
    abl = {"command": "x", "machine": L.machine_info(1), "per_seed": per_seed, "aggregate": ablation.aggregate(per_seed),
           "settings": {"preset": "digits", "dataset": "digits", "image_size": 32, "module": "m1",
                        "width_multiplier": 0.25, "space": "lce", "supernet_epochs": 1, "retrain_epochs": 1,
                        "search_population": 4, "search_iterations": 1, "flops_budget_fraction": 0.85, "seeds": [0],
                        "latency_runs": 10, "split_seed": 0}, "seconds": 60.0}
    (tmp_path / "ablation.json").write_text(json.dumps(abl))
    assert md.main(["--peers", str(tmp_path / "peers.json"), "--ablation", str(tmp_path / "ablation.json"),
                    "--measured", str(tmp_path / "none.json"), "--out", str(out)]) == 0
    assert (tmp_path / "methods_accuracy_latency.png").read_bytes()[:4] == b"\x89PNG"
    text = out.read_text()
    assert "](methods_accuracy_latency.png)" in text and "| + RSign + RPReLU | 4 | 85.00 ± 1.41 |" in text
    assert methods_md.METHODS_CMD in text


def test_ablation_reports_the_mobinet_row():
    ablation = _load("ablation")
    assert "mobinet" in ablation.METHODS and ablation.BASELINE_METHODS == ("mobinet",)
    per_seed = [{"seed": s, "methods": {"mobinet": {"genotype": "8-16", "test_accuracy": a, "latency_ms": 0.4,
                                                    "supernet_fitness": None, "costs": {"flops": 1.9e5}}}}
                for s, a in ((0, 0.7), (1, 0.72))]
    agg = ablation.aggregate(per_seed)
    assert "supernet_fitness" not in agg["mobinet"] and agg["mobinet"]["test_accuracy"]["mean"] == pytest.approx(0.71)
    lines = methods_md.ablation_baselines_markdown({"aggregate": agg})
    assert any(line.startswith("| MoBiNet-style (depthwise) | 71.00 ± 1.41 | 1.9e+05 |") for line in lines)
