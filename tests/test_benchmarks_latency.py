"""The pure logic of the latency benchmarks (benchmarks/latency_md.py, stem_feasibility.py) against independent
references: error summaries by hand, the max-BOPs-under-latency optimum by brute force, and the BENCHMARKS.md
sections rendered from small hand-written results."""

import itertools
import sys
from pathlib import Path

import pytest

import larq_mobisearch  # noqa: F401  (Keras 2 before TensorFlow)

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
import latency_md  # noqa: E402

from larq_mobisearch.nn.space import SearchSpace  # noqa: E402
from larq_mobisearch.nn.specs import architecture  # noqa: E402
from larq_mobisearch.search.costs import count_costs  # noqa: E402


def test_error_summary_and_sign_balance_by_hand():
    s = latency_md.error_summary([1.0, -2.0, 0.5, -0.5, 3.0, 0.0])
    assert s["mae"] == pytest.approx(7.0 / 6) and s["max"] == 3.0 and s["signed"] == pytest.approx(2.0 / 6)
    assert (s["above"], s["below"], s["n"]) == (3, 2, 6)
    assert latency_md.balanced({"above": 8, "below": 12, "n": 20})
    assert not latency_md.balanced({"above": 17, "below": 3, "n": 20})  # one sign: a missing term
    with pytest.raises(ValueError):
        latency_md.error_summary([])


def test_max_bops_under_a_latency_budget_is_the_brute_force_optimum():
    stem_feasibility = pytest.importorskip("stem_feasibility")
    arch = architecture("m3", (64, 64, 3), 10, 1.0, stem="quicknet")
    space = SearchSpace(arch, "lce", max_groups=2)  # 4,096 genotypes: brute force stays fast
    fixed_bops, per_gene = stem_feasibility.bops_table(arch, space.candidates)
    lat = [{g: 1.0 + 3.0 / g + 0.1 * i for g in c} for i, c in enumerate(space.candidates)]  # a made-up table
    budget = 0.5 * (sum(max(t.values()) for t in lat) + sum(min(t.values()) for t in lat))
    exact = common.pareto_fastest_under_budget(0.0, lat, -fixed_bops, [{g: -v for g, v in t.items()} for t in per_gene],
                                               space.candidates, budget)
    best = max((g for g in itertools.product(*space.candidates) if sum(t[x] for t, x in zip(lat, g)) <= budget),
               key=lambda g: count_costs(arch, g).bops)  # the package's own BOPs count of each genotype
    assert -exact[1] == count_costs(arch, best).bops == count_costs(arch, exact[2]).bops


def _latency_result(errors, size=28):
    rows = [{"label": "uniform 1", "measured_ms": 2.0, "predicted_ms": 2.0, "error_pct": 0.0}]
    rows += [{"label": f"random {i}", "measured_ms": 1.0, "predicted_ms": 1.0 + e / 100, "error_pct": e}
             for i, e in enumerate(errors, start=1)]
    return {"command": "latency.py ...", "machine": {"cpu": "x", "cpu_count": 2}, "load_average": [0.1, 0.2, 0.3],
            "settings": {"runs": 1000},
            "results": [{"module": "m3", "arch": {"input_shape": [size, size, 1], "num_classes": 10},
                         "rows": rows, "spearman": 0.99, "fixed_ms": 0.13}]}


def test_latency_section_reports_error_sign_balance_and_goal():
    even = _latency_result([1.0, -1.0] * 10)
    skewed = _latency_result([-3.0] * 18 + [1.0, 1.0], size=224)
    text = "\n".join(latency_md.latency_markdown([even, None, skewed], "plot.png"))
    assert ("| 28x28x1 | 10 | 1000 | random genotypes (the table) | 20 | 1.00% | 1.00% | 10 / 10 | +0.00% | 0.990 | "
            "0.130 | met |") in text
    assert ("| 224x224x1 | 10 | 1000 | random genotypes (the table) | 20 | 2.80% | 3.00% | 2 / 18 | -2.60% | 0.990 | "
            "0.130 | missed |") in text
    assert "![Predicted vs measured latency](plot.png)" in text
    skewed["results"][0]["uniform_fixed_ms"] = 0.2
    for r in skewed["results"][0]["rows"]:
        r["uniform_calibration_error_pct"] = r["error_pct"] + 7.0
    text = "\n".join(latency_md.latency_markdown([skewed]))
    assert ("| uniform genotypes (before) | 20 | 4.40% | 8.00% | 20 / 0 | +4.40% | 0.990 | 0.200 | missed |") in text
    assert latency_md.latency_markdown([None, None]) == []


def test_stem_section_quotes_rows_and_verdicts():
    paired = {"median": 0.95, "p10": 0.9, "p90": 1.0}
    data = {"command": "stem_feasibility.py ...", "settings": {"input_size": 224, "num_classes": 1000, "runs": 60},
            "rows": {"QuickNetSmall": {"costs": {"bops": 1.156e9, "flops": 34e6}, "latency": {"mean_ms": 14.1},
                                       "paired_to_quicknetsmall": {"median": 1.0, "p10": 1.0, "p90": 1.0}},
                     "M3 searched": {"genotype": "1-2", "costs": {"bops": 1.2e9, "flops": 25e6},
                                     "latency": {"mean_ms": 13.4}, "predicted_ms": 13.9,
                                     "paired_to_quicknetsmall": paired}},
            "verdict_lines": ["M3 (QuickNet stem): MET"],
            "searches": {"m3": {"budget_ms": 14.1, "evaluations": 650, "found_exact_optimum": True, "fastest_ms": 9.0}}}
    text = "\n".join(latency_md.stem_markdown(data))
    assert "| M3 searched | `1-2` | 1.200e9 | 25.0M | 13.90 | 13.40 | 0.950x (p10 0.900, p90 1.000) |" in text
    assert "- M3 (QuickNet stem): MET" in text and "budget 14.10 ms, 650 evaluations" in text
