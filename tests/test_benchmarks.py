"""The pure-logic parts of the benchmark scripts (benchmarks/): the uniform cost counter used for peers, the
exact fastest-under-budget check of the search, mean ± std aggregation, winners, verdicts, the BENCHMARKS.md
generator on small synthetic results, and the plain-TFLite runtime of the round-robin timer. Real TensorFlow,
Larq and LCE where they are involved; larq-zoo only if installed (skipped otherwise)."""

import importlib.util
import itertools
import json
import math
import random
import sys
from pathlib import Path

import pytest

import larq_mobisearch  # noqa: F401  (Keras 2 before TensorFlow)

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import common  # noqa: E402
import make_benchmarks_md as md  # noqa: E402

from larq_mobisearch import deploy as L  # noqa: E402
from larq_mobisearch.search.costs import count_costs  # noqa: E402
from larq_mobisearch.nn.space import SearchSpace, encode  # noqa: E402
from larq_mobisearch.nn.specs import architecture  # noqa: E402


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------------------------
# Cost counter applied uniformly to every model


def test_profile_costs_equal_count_costs_on_our_model():
    from larq_mobisearch.nn.models import build_model

    shape = (32, 32, 3)
    arch = architecture("m2", shape, 10, 0.5)
    genes = SearchSpace(arch, "lce").sample(random.Random(3))
    model = build_model("m2", genes, input_shape=shape, num_classes=10, width_multiplier=0.5)
    got = common.profile_costs(model)
    want = count_costs(arch, genes)
    assert got["bops"] == want.bops > 0
    assert got["float_flops"] == want.float_flops > 0
    assert got["other_macs"] == 0
    assert got["flops"] == pytest.approx(want.flops)


def test_profile_costs_counts_float_and_binary_layers():
    import larq as lq
    import tensorflow as tf

    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 3)),
        tf.keras.layers.Conv2D(16, 3, padding="same", use_bias=False),  # 8*8 * 3*3*3*16 float MACs
        tf.keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False),  # 8*8 * 3*3*16
        lq.layers.QuantConv2D(32, 1, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                              kernel_constraint="weight_clip", use_bias=False),  # 8*8 * 16*32 binary MACs
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(10),  # 32*10 (+ bias, not a MAC)
    ])
    c = common.profile_costs(model)
    float_macs = 64 * 27 * 16 + 64 * 9 * 16 + 320
    assert c["bops"] == 64 * 16 * 32
    assert c["float_flops"] == float_macs
    assert c["flops"] == pytest.approx(64 * 16 * 32 / 64 + float_macs)


@pytest.mark.skipif(importlib.util.find_spec("larq_zoo") is None,
                    reason="larq-zoo not installed (pip install --no-deps -r benchmarks/requirements-peers.txt)")
def test_birealnet_flops_match_the_paper():
    """Applied to larq-zoo's Bi-RealNet-18 at 224x224, the counter gives the published costs within 1%: 1.68e9
    BOPs (Bi-Real Net paper) and 1.63e8 FLOPs (Phan et al., Table 3)."""
    import larq_zoo

    model = larq_zoo.literature.BiRealNet(weights=None, input_shape=(224, 224, 3), num_classes=1000)
    c = common.profile_costs(model)
    assert c["bops"] == pytest.approx(1.68e9, rel=0.01)
    assert c["flops"] == pytest.approx(1.63e8, rel=0.01)
    assert c["other_macs"] == 0


# ----------------------------------------------------------------------------------------------------------
# Exact optimum of an additive latency under an additive budget


def _brute_force(fixed_c, costs, fixed_l, lats, cands, budget):
    best = None
    for genes in itertools.product(*cands):
        c = fixed_c + sum(t[g] for t, g in zip(costs, genes))
        lat = fixed_l + sum(t[g] for t, g in zip(lats, genes))
        if c <= budget and (best is None or (lat, c) < (best[1], best[0])):
            best = (c, lat, genes)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_pareto_fastest_equals_brute_force(seed):
    rng = random.Random(seed)
    cands = [sorted(rng.sample([1, 2, 4, 8, 16], rng.randint(1, 4))) for _ in range(6)]
    costs = [{g: rng.uniform(0.5, 5.0) / g for g in c} for c in cands]
    lats = [{g: rng.uniform(0.1, 2.0) for g in c} for c in cands]
    lo = sum(min(t.values()) for t in costs)
    hi = sum(max(t.values()) for t in costs)
    budget = 1.0 + lo + rng.uniform(0.1, 0.7) * (hi - lo)
    got = common.pareto_fastest_under_budget(1.0, costs, 0.3, lats, cands, budget)
    want = _brute_force(1.0, costs, 0.3, lats, cands, budget)
    assert got[1] == pytest.approx(want[1])
    assert got[0] <= budget
    assert common.pareto_fastest_under_budget(1.0, costs, 0.3, lats, cands, 1.0 + lo - 1e-3) is None


def test_pareto_fastest_on_the_real_m3_space_beats_every_uniform_genotype():
    from larq_mobisearch.search.costs import FlopsCostModel

    arch = architecture("m3", (224, 224, 3), 1000, 1.0)
    space = SearchSpace(arch, "lce")
    fm = FlopsCostModel(arch, space.candidates)
    # latency stand-in: FLOPs of the gene plus a per-layer overhead that makes more groups not always better
    lat = [{g: fm.table[i][g] / 1e6 + 0.05 * g for g in c} for i, c in enumerate(space.candidates)]
    budget = 0.5e8
    cost, best_lat, genes = common.pareto_fastest_under_budget(fm.fixed, fm.table, 0.0, lat, space.candidates, budget)
    assert fm.cost(genes) == pytest.approx(cost) and cost <= budget
    for g in (1, 2, 4, 8, 16, 32):
        u = space.uniform(g)
        if fm.cost(u) <= budget:
            assert best_lat <= sum(t[x] for t, x in zip(lat, u)) + 1e-12


# ----------------------------------------------------------------------------------------------------------
# Aggregation, winners, verdicts


def test_mean_std():
    m, s = common.mean_std([0.9, 0.92, 0.94])
    assert m == pytest.approx(0.92)
    assert s == pytest.approx(0.02)  # sample std (ddof=1)
    assert common.mean_std([3.0]) == (3.0, 0.0)
    with pytest.raises(ValueError):
        common.mean_std([])
    assert common.fmt_mean_std([0.9, 0.92, 0.94], scale=100) == "92.00 ± 2.00"
    assert common.fmt_mean_std([0.9], scale=100) == "90.00"  # one value: no spread claimed
    assert common.pm(1.23456, 0.1, 2, 3) == "1.235 ± 0.100"


def test_efficiency_markdown_reads_gaps_against_the_holdout_noise():
    import fashion_md

    def row(v):
        return {str(n): {"mean": v, "std": 0.001} for n in (16, 96)}

    eff = {"command": "x", "seconds": 60, "distinct_genotypes_scored": 10,
           "machine": {"cpu": "cpu", "logical_cpus": 2},
           "settings": {"dataset": "fashion_mnist", "image_size": 28, "module": "m1", "width_multiplier": 0.5,
                        "supernet_epochs": 10, "holdout_size": 6000, "recalibration_batches": 8, "population": 16,
                        "iterations": 6, "top_k": 4, "flops_budget": 8.4e5, "seeds": [0, 1]},
           "labels": {"elitist": "E", "generation": "G", "random": "R"}, "checkpoints": [16, 96],
           "summary": {"elitist": row(0.9143), "generation": row(0.9123), "random": row(0.9110)},
           # paired by seed: E - R = +0.004 and +0.002, G (seed 0 only) - R = +0.001
           "curves": {"elitist": {"0": [0.90, 0.914], "1": [0.90, 0.912]}, "generation": {"0": [0.90, 0.911]},
                      "random": {"0": [0.90, 0.910], "1": [0.90, 0.910]}}}
    eff["settings"]["method_seeds"] = {"elitist": [0, 1], "generation": [0], "random": [0, 1]}
    text = "\n".join(fashion_md.efficiency_markdown(eff, None))
    assert "| E | 2 | 91.43 ± 0.10 |" in text and "| G | 1 | 91.23 |" in text
    assert "(generation only [0])" in text
    assert "E +0.30 (2 seeds); G +0.10 (1 seed)" in text
    assert f"{100 * math.sqrt(0.911 * 0.089 / 6000):.2f} points" in text  # binomial standard error, by hand


def test_ranking_reading_spreads_and_verdict():
    import fashion_md

    rows = [{"supernet_recalibrated": a, "standalone_test_accuracy": b} for a, b in
            ((0.90, 0.81), (0.905, 0.82), (0.91, 0.815))]
    rank = {"settings": {"holdout_size": 6000, "test_size": 10000, "epochs": 1}, "rows": rows,
            "correlations": {"recalibrated": {"kendall_tau": -0.33, "kendall_p": 0.15}}}
    text = fashion_md.ranking_reading(rank)
    assert "span 1.00 points" in text and "spans 1.00 points" in text
    assert f"standard error {100 * math.sqrt(0.905 * 0.095 / 6000):.2f})" in text
    assert f"standard error {100 * math.sqrt(0.815 * 0.185 / 10000):.2f})" in text
    assert "do not rank these genotypes measurably" in text
    rank["correlations"]["recalibrated"] = {"kendall_tau": 0.6, "kendall_p": 0.01}
    assert "the supernet ranks these genotypes" in fashion_md.ranking_reading(rank)


def test_table1_reading_pairs_gaps_by_seed():
    import fashion_md

    ablation = {"settings": {"dataset": "fashion_mnist", "test_size": 10000}, "load_average_end": [5.0, 4.0, 3.0],
                "per_seed": [_seed_result(0, (0.894, 0.8966, 0.8981), (1, 1, 1)),
                             _seed_result(1, (0.8929, 0.8951, 0.8939), (1, 1, 1))],
                "aggregate": {"evolution": {"test_accuracy": {"mean": 0.896}}}}
    text = fashion_md.table1_reading(ablation)
    assert "+0.02 points over random search (per seed +0.15, -0.12)" in text
    assert "+0.25 points over the best uniform genotype (per seed +0.41, +0.10)" in text
    assert f"standard error of {100 * math.sqrt(0.896 * 0.104 / 10000):.2f} points" in text
    assert "not a demonstrated win" in text and "load average 5.0" in text
    ablation["per_seed"][0]["methods"]["uniform"]["test_accuracy"] = 0.85
    ablation["load_average_end"] = [0.5, 0.5, 0.5]
    text = fashion_md.table1_reading(ablation)
    assert "above twice that" in text and "load average" not in text


def _seed_result(seed, accs, lats, flops=(2.2e5, 2.3e5, 2.33e5), fits=(0.5, 0.6, 0.7)):
    methods = {}
    for m, a, l, f, fit in zip(("uniform", "random", "evolution"), accs, lats, flops, fits):
        methods[m] = {"genotype": f"1-{seed}-{m[0]}", "test_accuracy": a, "latency_ms": l,
                      "costs": {"flops": f, "bops": 0, "float_flops": 0}, "supernet_fitness": fit}
    return {"seed": seed, "methods": methods, "flops_budget": 2.36e5}


def test_ablation_aggregate():
    ablation = _load("ablation")
    per_seed = [_seed_result(0, (0.90, 0.91, 0.93), (0.30, 0.35, 0.33)),
                _seed_result(1, (0.92, 0.93, 0.95), (0.32, 0.37, 0.35))]
    agg = ablation.aggregate(per_seed)
    assert agg["evolution"]["n"] == 2
    assert agg["evolution"]["test_accuracy"]["mean"] == pytest.approx(0.94)
    assert agg["evolution"]["test_accuracy"]["std"] == pytest.approx(math.sqrt(2 * 0.01 ** 2))
    assert agg["uniform"]["latency_ms"]["mean"] == pytest.approx(0.31)
    assert agg["random"]["flops"]["std"] == 0.0


def test_ablation_winners_pick_best_uniform_within_budget():
    ablation = _load("ablation")
    result = {
        "genotype": "1-2-4", "fitness": 0.8,
        "random_best": {"genotype": "1-1-4", "fitness": 0.7, "costs": {"flops": 10.0}},
        "uniform": [
            {"genotype": "2-2-2", "fitness": 0.6, "costs": {"flops": 9.0}, "label": "g2"},
            {"genotype": "4-4-4", "fitness": 0.65, "costs": {"flops": 7.0}, "label": "g4"},
            {"genotype": "8-8-8", "fitness": 0.65, "costs": {"flops": 5.0}, "label": "g8"},
        ],
    }
    w = ablation.winners(result)
    assert w["uniform"]["genotype"] == "8-8-8"  # ties on fitness go to the cheaper one
    assert w["random"]["genotype"] == "1-1-4" and w["evolution"]["genotype"] == "1-2-4"
    with pytest.raises(SystemExit):
        ablation.winners({**result, "uniform": []})


def _peer_row(label, family, ms, flops=1e8, **extra):
    lat = {"mean_ms": ms, "p10_ms": ms * 0.95, "p90_ms": ms * 1.05}
    return {"label": label, "family": family, "what": extra.pop("what", label), "costs":
            {"flops": flops, "bops": flops * 10, "float_flops": flops / 2}, "tflite_bytes": 4_000_000,
            "lce_bconv2d_ops": 13, "latency": {"1": dict(lat), "2": {k: v * 0.8 for k, v in lat.items()}},
            "genotype": extra.pop("genotype", None), **extra}


def test_peers_verdicts():
    peers = _load("peers")
    rows = [
        _peer_row("M3 searched <= 0.50e8", "ours", 14.0, module="m3", what=peers.SEARCHED_WHAT, genotype="1-2"),
        _peer_row("QuickNetSmall", "larq-zoo", 11.5),
        _peer_row("Bi-RealNet", "larq-zoo", 19.5),
    ]
    label = rows[0]["label"]
    # per-round times: faster than Bi-RealNet in 3 of 4 rounds, slower than QuickNetSmall in every round
    times = {"1": {label: [14, 14, 30, 14], "Bi-RealNet": [19, 19, 20, 20], "QuickNetSmall": [11, 12, 12, 11]}}
    v = peers.verdicts(rows, [1, 2], times)
    assert v["goal"]["1"]["met"] is True and v["moonshot"]["1"]["met"] is False
    assert v["goal"]["1"]["ratio"] == pytest.approx(14.0 / 19.5)
    assert v["goal"]["1"]["paired"]["share_faster"] == 0.75 and v["goal"]["1"]["within_noise"] is False
    assert v["moonshot"]["1"]["paired"]["share_faster"] == 0.0
    assert "paired" not in v["goal"]["2"]  # no per-round times for 2 threads
    assert any("NOT MET" in line and "QuickNetSmall" in line for line in v["lines"])
    assert peers.verdicts(rows[1:], [1])["goal"] == {}


def test_peers_targets_and_fusion_lines():
    peers = _load("peers")
    searched = _peer_row("M3 searched <= 0.50e8", "ours", 14.0, module="m3", what=peers.SEARCHED_WHAT, genotype="1-2")
    unfused = _peer_row(searched["label"] + peers.UNFUSED, "ours", 14.5, module="m3",
                        what=peers.SEARCHED_WHAT + "; pointwise pairs not fused", genotype="1-2")
    rows = [searched, unfused, _peer_row("QuickNetSmall", "larq-zoo", 11.5), _peer_row("Bi-RealNet", "larq-zoo", 19.5)]
    times = {"1": {searched["label"]: [14, 14, 14], unfused["label"]: [14.5, 14.4, 14.0],
                   "QuickNetSmall": [11.5, 11.5, 11.0], "Bi-RealNet": [20, 19, 19]}}
    v = peers.verdicts(rows, [1], times)
    assert v["fusion"]["1"]["median"] == pytest.approx(14 / 14.4)
    t = v["targets"]["1"][searched["label"]]
    assert t["Bi-RealNet"]["met"] is False and t["Bi-RealNet"]["paired_median"] == pytest.approx(14 / 19)
    assert v["targets"]["1"][unfused["label"]]["Bi-RealNet"]["paired_median"] == pytest.approx(14.0 / 19)  # ratios 0.725, 0.758, 0.737
    assert t["QuickNetSmall"]["met"] is False and t["QuickNetSmall"]["paired_median"] == pytest.approx(14 / 11.5)
    assert any(line.startswith("Fusion (1 thread)") for line in v["lines"])
    assert sum(line.startswith("Target (1 thread)") for line in v["lines"]) == 4


def test_paired_ratio():
    p = common.paired_ratio([10, 20, 30, 40, 50], [20, 20, 20, 20, 20])
    assert p["median"] == pytest.approx(1.5) and p["rounds"] == 5
    assert p["share_faster"] == pytest.approx(0.2)
    assert p["p10"] == pytest.approx(0.7) and p["p90"] == pytest.approx(2.3)  # as numpy.percentile
    with pytest.raises(ValueError):
        common.paired_ratio([1, 2], [1])


# ----------------------------------------------------------------------------------------------------------
# BENCHMARKS.md generator


def _synthetic_peers():
    rows = [
        _peer_row("M3 uniform 4", "ours", 16.0, flops=0.37e8, module="m3", what="uniform groups 4", genotype="1-2-4"),
        _peer_row("QuickNetSmall", "larq-zoo", 11.5, flops=0.7e8),
        _peer_row("Bi-RealNet", "larq-zoo", 20.0, flops=1.63e8),
        _peer_row("MobileNetV1 float (TFLite)", "float", 7.6, flops=5.69e8),
    ]
    for r in rows:
        r["ratio_to_birealnet"] = {t: r["latency"][t]["mean_ms"] / rows[2]["latency"][t]["mean_ms"] for t in ("1", "2")}
        r["paired_to_birealnet"] = {"1": {"median": round(r["ratio_to_birealnet"]["1"] * 1.01, 4)}, "2": None}
    return {
        "command": ".venv/bin/python benchmarks/peers.py --json x.json",
        "machine": L.machine_info(1),
        "settings": {"input_size": 224, "num_classes": 1000, "threads": [1, 2], "runs": 60, "warmup": 3,
                     "larq_zoo_version": "2.4.0"},
        "rows": rows,
        "searches": {"m3": {"budget": 0.5e8, "genotype": "1-2-4", "flops": 0.37e8, "predicted_ms": 15.9,
                            "exact_predicted_ms": 15.9, "found_exact_optimum": True}},
        "verdict_lines": ["Goal (1 thread): searched M3 faster than Bi-RealNet? MET: 16.00 ms vs 20.00 ms (0.80x)"],
        "seconds": 600.0,
        "converted_in_run": 0,
        "tables_from_cache": True,
    }


def _synthetic_ablation():
    ablation = _load("ablation")
    per_seed = [_seed_result(0, (0.90, 0.91, 0.93), (0.30, 0.35, 0.33)),
                _seed_result(1, (0.92, 0.93, 0.95), (0.32, 0.37, 0.35))]
    per_seed[1]["methods"]["random"]["same_as"] = "evolution"
    return {
        "command": ".venv/bin/python benchmarks/ablation.py --json y.json",
        "machine": L.machine_info(1),
        "settings": {"preset": "digits", "dataset": "digits", "image_size": 32, "module": "m1",
                     "width_multiplier": 0.25, "space": "lce", "supernet_epochs": 12, "retrain_epochs": 15,
                     "search_population": 12, "search_iterations": 4, "flops_budget_fraction": 0.85,
                     "seeds": [0, 1], "latency_runs": 200, "split_seed": 0},
        "per_seed": per_seed,
        "aggregate": ablation.aggregate(per_seed),
        "seconds": 1500.0,
    }


def test_markdown_tables_come_from_the_json():
    text = md.build_markdown(_synthetic_peers(), _synthetic_ablation(), "results/p.png", "results/a.png")
    # peers: the ratio to Bi-RealNet is computed from the JSON's latencies (16.0 / 20.0)
    assert "| M3 uniform 4 | 0.370e8 |" in text
    assert "16.00 (15.20-16.80) | 0.80x / 0.81x |" in text
    assert "12.80 (12.16-13.44) | 0.80x / - |" in text  # 2 threads: no paired statistic in this JSON
    assert "| Bi-RealNet | 1.630e8 |" in text and "| 1.00x / 1.01x |" in text
    assert "`.venv/bin/python benchmarks/peers.py --json x.json`" in text
    assert "MET: 16.00 ms vs 20.00 ms" in text
    assert "![peers latency](results/p.png)" in text
    # ablation: mean ± std of the synthetic seeds, in percent
    assert "| evolutionary search (ours) | 94.00 ± 1.41 |" in text
    assert "| uniform groups (best within budget) | 91.00 ± 1.41 |" in text
    assert "(same genotype as evolution)" in text
    assert "wall time 25.0 min" in text
    assert "wall time 10.0 min (0 models converted in this run; latency tables read from the cache" in text
    assert "Host x86" in text


def test_markdown_without_results_names_the_commands():
    text = md.build_markdown(None, None)
    assert "Not run yet" in text and md.PEERS_CMD in text and md.ABLATION_CMD in text


def test_make_benchmarks_md_writes_file_and_pngs(tmp_path):
    peers_json, abl_json = tmp_path / "peers.json", tmp_path / "ablation.json"
    peers_json.write_text(json.dumps(_synthetic_peers()))
    abl_json.write_text(json.dumps(_synthetic_ablation()))
    out = tmp_path / "BENCHMARKS.md"
    assert md.main(["--peers", str(peers_json), "--ablation", str(abl_json), "--out", str(out)]) == 0
    for png in ("peers_latency.png", "ablation_accuracy_latency.png"):
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        assert f"]({png})" in out.read_text()
    assert md.main(["--peers", str(tmp_path / "none.json"), "--ablation", str(tmp_path / "none2.json"),
                    "--out", str(tmp_path / "x.md")]) == 2


def _results_state():
    results = BENCH / "results"
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in results.iterdir()}


def test_committed_benchmarks_md_is_what_the_committed_results_generate(capsys):
    """BENCHMARKS.md is regenerated from benchmarks/results/*.json (without writing anything) and must match."""
    committed = (BENCH.parent / "BENCHMARKS.md").read_text(encoding="utf-8")
    before = _results_state()
    assert md.main(["--check"]) == 0, capsys.readouterr().out
    assert _results_state() == before  # --check draws no plot and writes no file
    assert (BENCH.parent / "BENCHMARKS.md").read_text(encoding="utf-8") == committed
    # the generated text carries numbers of the JSON (not a file compared with itself)
    table = json.loads((BENCH / "results" / "ablation_fashion.json").read_text())
    assert f"Command: `{table['command']}`" in committed


def test_check_reports_a_stale_benchmarks_md(tmp_path, capsys):
    text = md.render(str(BENCH / "results" / "peers.json"), str(BENCH / "results" / "ablation.json"),
                     str(BENCH / "results" / "measured.json"), str(tmp_path / "BENCHMARKS.md"), write_plots=False)
    stale = tmp_path / "BENCHMARKS.md"
    stale.write_text(text)
    assert md.main(["--check", "--out", str(stale)]) == 0
    first = next(line for line in text.splitlines() if line.startswith("|") and any(c.isdigit() for c in line))
    stale.write_text(text.replace(first, first + " 99.99 |", 1))
    assert md.main(["--check", "--out", str(stale)]) == 1
    out = capsys.readouterr().out
    assert f"-{first} 99.99 |" in out and "differs from what the results generate" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BENCHMARKS.md"]  # no plots drawn


# ----------------------------------------------------------------------------------------------------------
# Plain TFLite runtime in the round-robin timer (the float reference of peers.py)


def test_measure_latencies_times_plain_tflite_and_lce_models_together():
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input((16, 16, 3)), tf.keras.layers.Conv2D(8, 3), tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(4)])
    spec = tf.TensorSpec([1, 16, 16, 3], tf.float32)
    fn = tf.function(lambda x: model(x)).get_concrete_function(spec)
    fb = tf.lite.TFLiteConverter.from_concrete_functions([fn], model).convert()
    stats = L.measure_latencies({"tflite": fb, "lce": fb}, runs=5, warmup=1, runtimes={"tflite": "tflite"})
    assert set(stats) == {"tflite", "lce"}
    assert all(s.runs == 5 and s.mean_ms > 0 for s in stats.values())
    with pytest.raises(ValueError, match="runtimes"):
        L.measure_latencies({"a": fb}, runs=1, runtimes={"a": "onnx"})
    with pytest.raises(ValueError, match="runtimes"):
        L.measure_latencies({"a": fb}, runs=1, runtimes={"b": "tflite"})


def test_command_line_is_relative_to_the_repo():
    cmd = common.command_line([str(BENCH / "peers.py"), "--json", "a b.json"])
    assert cmd == ".venv/bin/python benchmarks/peers.py --json 'a b.json'"
    assert encode((1, 2)) == "1-2"


def test_peers_without_larq_zoo_names_the_install_command(monkeypatch):
    peers = _load("peers")
    monkeypatch.setitem(sys.modules, "larq_zoo", None)  # makes `import larq_zoo` raise ImportError
    with pytest.raises(SystemExit) as exc:
        peers.import_zoo()
    assert "pip install --no-deps -r benchmarks/requirements-peers.txt" in str(exc.value)
    assert (BENCH / "requirements-peers.txt").read_text().count("==") == 3


def test_markdown_profiles_qns_column_and_measured_section():
    peers = _synthetic_peers()
    for r in peers["rows"]:
        r["ratio_to_quicknetsmall"] = {"1": r["latency"]["1"]["mean_ms"] / 11.5, "2": None}
        r["paired_to_quicknetsmall"] = {"1": {"median": 1.25}, "2": None}
    op = lambda i, name, ms, shape: {"index": i, "name": name, "ms": ms, "output_shape": shape,  # noqa: E731
                                     "single_op_ms": ms + 0.01, "overhead_ms": 0.01, "output_name": ""}
    peers["profiles"] = {
        "M3 uniform 4": {"runs": 10, "network_ms": 15.0, "sum_ops_ms": 17.0, "load_average": [[1, 1, 1], [1, 1, 1]],
                         "by_type": {"LceBconv2d": {"count": 26, "ms": 14.0, "share": 14 / 17},
                                     "ADD": {"count": 26, "ms": 3.0, "share": 3 / 17}},
                         "by_stage": {"112x112": {"ms": 5.0, "count": 6}, "7x7": {"ms": 1.0, "count": 4}},
                         "top": [op(3, "LceBconv2d", 2.05, [1, 56, 56, 128])]},
        "QuickNetSmall": {"runs": 10, "network_ms": 11.0, "sum_ops_ms": 12.0, "load_average": None,
                          "by_type": {"LceBconv2d": {"count": 16, "ms": 11.0, "share": 11 / 12},
                                      "MAX_POOL_2D": {"count": 3, "ms": 1.0, "share": 1 / 12}},
                          "by_stage": {"56x56": {"ms": 4.0, "count": 9}}, "top": []},
    }
    measured = {"note": "Figures from docstrings.", "items": [{"what": "conversion", "figure": "5x", "source": "x"}]}
    text = md.build_markdown(peers, None, measured=measured)
    assert "vs QuickNetSmall 1 thr: mean ratio / paired |" in text and "| 1.39x / 1.25x |" in text  # 16.0 / 11.5
    assert "### Per-op time breakdown (1 thread)" in text
    assert "| LceBconv2d | 14.00 (26, 82%) | 11.00 (16, 92%) |" in text
    assert "| ADD | 3.00 (26, 18%) | - |" in text and "| MAX_POOL_2D | - | 1.00 (3, 8%) |" in text
    assert "| **sum of ops** / network | **17.00** / 15.00 | **12.00** / 11.00 |" in text
    assert text.index("| 112x112 |") < text.index("| 56x56 |") < text.index("| 7x7 |")
    assert "Slowest ops of M3 uniform 4: LceBconv2d 56x56x128 2.05 ms." in text
    assert "## Measured" in text and "| conversion | 5x | x |" in text
