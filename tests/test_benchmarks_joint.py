"""The pure logic of issue 22's proof benchmarks (benchmarks/ranking_variants.py, table1_joint.py) and their
BENCHMARKS.md sections, against independent references: feasible genotypes really within the budget (the
package's own cost counter on the resolved architecture), bootstrap intervals (a monotone relation: tau = 1 in
every resample), the uniform-g1 pick, and the paired gaps computed by hand."""

import math
import sys
from pathlib import Path

import pytest

import larq_mobisearch  # noqa: F401  (Keras 2 before TensorFlow)

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
import elastic_md  # noqa: E402
import ranking_variants as rv  # noqa: E402
import table1_joint as t1  # noqa: E402

from larq_mobisearch.search.costs import count_costs, flops_cost_model  # noqa: E402
from larq_mobisearch.nn.space import SearchSpace  # noqa: E402
from larq_mobisearch.nn.specs import architecture  # noqa: E402


def test_feasible_spread_draws_distinct_genotypes_within_the_budget_sorted_by_flops():
    arch = architecture("m1", (28, 28, 1), 10, 0.5)
    space = SearchSpace(arch, "lce", genes="joint")
    flops = flops_cost_model(space)
    budget = 0.5 * count_costs(arch, 1).flops
    got = rv.feasible_spread(space, flops, budget, 16, seed=0, pool=40)
    assert len(got) == len(set(got)) == 16
    exact = [count_costs(*space.resolve(g)).flops for g in got]  # independent: the architecture's own count
    assert all(f <= budget for f in exact)
    assert exact == sorted(exact)
    assert len({g[space.num_groups:] for g in got}) > 1  # widths vary, not only group counts
    assert got == rv.feasible_spread(space, flops, budget, 16, seed=0, pool=40)  # seeded


def test_bootstrap_intervals_of_a_monotone_relation_and_of_noise():
    x = list(range(12))
    ci = rv.bootstrap_intervals(x, [v ** 3 for v in x], resamples=200, seed=0)
    assert ci["kendall_tau_ci95"] == pytest.approx([1.0, 1.0])
    assert ci["spearman_rho_ci95"] == pytest.approx([1.0, 1.0])
    flipped = rv.bootstrap_intervals(x, [-v for v in x], resamples=200, seed=0)
    assert flipped["kendall_tau_ci95"] == pytest.approx([-1.0, -1.0])
    noise = rv.bootstrap_intervals(x, [5, 1, 9, 3, 7, 0, 11, 2, 8, 4, 10, 6], resamples=500, seed=1)
    lo, hi = noise["kendall_tau_ci95"]
    assert lo < 0 < hi and hi - lo > 0.5


def test_variant_names_are_checked():
    with pytest.raises(SystemExit):
        rv.parse_args(["--variants", "budget,nonsense"])
    with pytest.raises(SystemExit):
        rv.parse_args(["--variant-dir", "budget"])
    args = rv.parse_args(["--variants", "uniform, budget", "--variant-dir", "budget=runs/x"])
    assert args.variants == ["uniform", "budget"] and args.variant_dirs == {"budget": "runs/x"}


def test_widest_uniform_g1_reads_joined_labels():
    uniform = [{"label": "g1w0.5", "genotype": "a", "fitness": 0.8},
               {"label": "g2w0.75/g1w0.75", "genotype": "b", "fitness": 0.7},
               {"label": "g1w1.25x", "genotype": "c", "fitness": 0.9},
               {"label": "g4w1", "genotype": "d", "fitness": 0.95}]
    assert t1.widest_uniform_g1(uniform)["genotype"] == "b"
    assert t1.widest_uniform_g1([{"label": "g2w1", "genotype": "e"}]) is None


def _table1(per_seed, complete=True):
    rows = {name: {"genotype": f"1-1_w{i}", "costs": {"flops": 1e5 * (i + 1)}, "supernet_fitness": 0.9}
            for i, name in enumerate(t1.ROWS)}
    rows["groups_only"] = {"genotype": None, "note": "no groups-only genotype fits"}
    return {"settings": {"supernet_epochs": 8, "population": 16, "iterations": 5, "flops_budget": 5e5,
                         "retrain_epochs": 15, "learning_rate": 5e-3, "schedule": "cosine", "test_size": 10000},
            "rows": rows, "per_seed": per_seed, "complete": complete}


def test_table1_joint_pairs_gaps_by_seed_and_reads_the_goals():
    seeds = [{"seed": s, "test_accuracy": {"evolution": e, "random": r, "uniform": u, "uniform_g1": g}}
             for s, (e, r, u, g) in enumerate([(0.90, 0.885, 0.87, 0.86), (0.91, 0.90, 0.885, 0.87),
                                               (0.905, 0.895, 0.89, 0.865)])]
    data = _table1(seeds)
    d = elastic_md._paired(data, "evolution", "random")
    diffs = [1.5, 1.0, 1.0]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 2)
    assert d["mean"] == pytest.approx(mean) and d["se"] == pytest.approx(sd / math.sqrt(3))
    text = elastic_md.table1_joint_reading(data)
    assert "best uniform >= +1.0: met (+2.33)" in text
    assert "random > 2 paired SE: met" in text
    md = "\n".join(elastic_md.table1_joint_markdown(data))
    assert "| groups_only | - | - | - | no groups-only genotype fits | 0 |" in md
    assert "90.50 ± 0.50" in md and "Incomplete" not in md
    assert "Incomplete" in "\n".join(elastic_md.table1_joint_markdown(_table1(seeds[:1], complete=False)))
    # a missed goal gets the ranking benchmark's why; a met one does not
    ranking = {"settings": {"epochs": 3, "seed": 0}, "rows": [{}] * 16,
               "standalone_spread": {"min": 0.85, "max": 0.87, "std": 0.005, "test_se_points": 0.34},
               "noise_ceiling": {"repeat_seed": 1, "between_seeds": {"kendall_tau": 0.2},
                                 "mean_abs_seed_difference_points": 0.4}}
    assert elastic_md.table1_joint_why(data, ranking) is None
    missed = _table1([{"seed": s, "test_accuracy": {"evolution": 0.86, "random": 0.86, "uniform": 0.865,
                                                    "uniform_g1": 0.86}} for s in range(3)])
    why = elastic_md.table1_joint_why(missed, ranking)
    assert "spans 2.00 points (std 0.50)" in why and "about 2.0 standard deviations" in why
    assert "Kendall tau +0.20, differing by 0.40 points" in why
    assert why in "\n".join(elastic_md.table1_joint_markdown(missed, ranking=ranking))


def test_ranking_variants_markdown_rows_and_goal():
    ci = {"kendall_tau_ci95": [0.4, 0.9], "spearman_rho_ci95": [0.5, 0.95]}
    corr = lambda t: {"kendall_tau": t, "kendall_p": 0.01, "spearman_rho": t, "spearman_p": 0.01, **ci}  # noqa: E731
    data = {"settings": {"genotypes": 2, "space_genes": "joint", "flops_budget": 5e5, "dataset": "fashion_mnist",
                         "image_size": 28, "module": "m1", "width_multiplier": 0.5, "epochs": 3, "learning_rate": 5e-3,
                         "schedule": "cosine", "seed": 0, "test_size": 10000, "holdout_size": 6000, "bootstrap": 100},
            "rows": [{"genotype": "a", "flops": 1e5, "standalone_test_accuracy": 0.85},
                     {"genotype": "b", "flops": 2e5, "standalone_test_accuracy": 0.87}],
            "standalone_spread": {"min": 0.85, "max": 0.87, "std": 0.014, "mean": 0.86, "test_se_points": 0.35,
                                  "flops": corr(1.0)},
            "variants": [{"name": "budget", "label": "+ budget", "supernet_settings": {"epochs": 8},
                          "scores": [0.8, 0.82], "correlations": corr(0.65)},
                         {"name": "uniform", "label": "uniform", "supernet_settings": {"epochs": 8},
                          "scores": [0.81, 0.8], "correlations": corr(-0.1)}],
            "complete": False}
    md = "\n".join(elastic_md.ranking_variants_markdown(data))
    assert "| + budget | 8 | +0.65 [+0.40, +0.90] (0.01) |" in md
    assert "| `b` | 2e+05 | 87.00 | 82.00 | 80.00 |" in md
    assert "span 2.00 points" in md and "meets the goal of >= 0.6" in md and "Incomplete" in md


def test_ranking_ledger_resumes_trained_genotypes_and_refuses_other_settings(tmp_path):
    """A fresh checkout (no run directories) takes the stand-alone rows the committed JSON holds instead of
    training them again, and refuses a JSON written with other settings or another genotype draw."""
    import json
    from types import SimpleNamespace

    settings = {"preset": "fashion_joint", "genotypes": 2, "epochs": 3}
    rows = [{"name": "rank-00", "genotype": "(1, 2)", "flops": 1.0, "standalone_test_accuracy": 0.8},
            {"name": "rank-01", "genotype": "(4, 4)", "flops": 2.0, "standalone_test_accuracy": 0.9}]
    path = tmp_path / "ranking_variants.json"
    path.write_text(json.dumps({"settings": settings, "rows": rows, "variants": []}))
    assert common.read_ledger(str(tmp_path / "absent.json"), settings) == {}
    with pytest.raises(SystemExit, match="epochs: 3 there, 4 now"):
        common.read_ledger(str(path), {**settings, "epochs": 4})
    known = {r["name"]: r for r in common.read_ledger(str(path), settings)["rows"]}
    base = SimpleNamespace(space=SimpleNamespace(encode=str), run_dir=None, cfg=None)  # nothing to train: no run
    saved = []
    got = rv.train_standalone(SimpleNamespace(), base, [(1, 2), (4, 4)], None, known, saved.append)
    assert got == rows and saved == []
    with pytest.raises(SystemExit, match="rank-01 is \\(4, 4\\), not \\(8, 8\\)"):
        rv.train_standalone(SimpleNamespace(), base, [(1, 2), (8, 8)], None, known, saved.append)


def test_noise_ceiling_from_two_stand_alone_seeds_and_its_markdown():
    """The repeat seed's ranking against the first (hand-computed Kendall tau), the variants against the two seeds'
    mean, a repeat the ledger holds not trained again, and the section's extra row, column and reading."""
    from types import SimpleNamespace

    rows = [{"name": f"rank-0{i}", "genotype": g, "flops": f, "standalone_test_accuracy": a,
             "repeat_seed": 1, "repeat_test_accuracy": b}
            for i, (g, f, a, b) in enumerate([("a", 1e5, 0.85, 0.86), ("b", 2e5, 0.87, 0.85), ("c", 3e5, 0.86, 0.87),
                                              ("d", 4e5, 0.88, 0.88)])]
    variants = [{"name": "budget", "label": "+ budget", "supernet_settings": {"epochs": 8},
                 "scores": [0.80, 0.81, 0.83, 0.84]}]
    ceiling = rv.noise_ceiling(rows, variants, resamples=50, seed=0)
    # seed 0 ranks a<c<b<d, seed 1 b<a<c<d: pairs (a,b) (b,c) discordant, 4 of 6 concordant -> tau = (4-2)/6
    assert ceiling["between_seeds"]["kendall_tau"] == pytest.approx(1 / 3)
    assert ceiling["mean_abs_seed_difference_points"] == pytest.approx((1 + 2 + 1 + 0) / 4)
    # two-seed means 0.855, 0.86, 0.865, 0.88: the same order as the scores
    assert ceiling["variants_vs_two_seed_mean"]["budget"]["kendall_tau"] == pytest.approx(1.0)
    assert rv.noise_ceiling([{k: v for k, v in rows[0].items() if k != "repeat_test_accuracy"}], variants, 50, 0) \
        is None
    saved = []
    rv.train_repeats(SimpleNamespace(repeat_seed=1, seed=0), None, ["ga", "gb", "gc", "gd"], rows, saved.append)
    assert saved == []  # every repeat is in the ledger: nothing trained (no run directory to train in)

    corr = {"kendall_tau": 0.5, "kendall_p": 0.01, "spearman_rho": 0.6, "spearman_p": 0.01,
            "kendall_tau_ci95": [0.1, 0.8], "spearman_rho_ci95": [0.2, 0.9]}
    data = {"settings": {"genotypes": 4, "space_genes": "joint", "flops_budget": 5e5, "dataset": "fashion_mnist",
                         "image_size": 28, "module": "m1", "width_multiplier": 0.5, "epochs": 3, "learning_rate": 5e-3,
                         "schedule": "cosine", "seed": 0, "test_size": 10000, "holdout_size": 6000, "bootstrap": 50},
            "rows": rows, "variants": [{**variants[0], "correlations": corr}], "complete": True,
            "standalone_spread": {"min": 0.85, "max": 0.88, "std": 0.013, "mean": 0.865, "test_se_points": 0.34,
                                  "flops": None},
            "noise_ceiling": ceiling}
    md = "\n".join(elastic_md.ranking_variants_markdown(data))
    assert "| noise ceiling: stand-alone seed 0 vs seed 1 | - | +0.33 [" in md
    assert "| `b` | 2e+05 | 87.00 | 85.00 | 81.00 |" in md
    assert "| + budget | 8 | +0.50 [+0.10, +0.80] (0.01) | +0.60 [+0.20, +0.90] (0.01) | +1.00 [" in md
    assert "rank each other with Kendall tau +0.33" in md and "the default variant reaches +1.00" in md
