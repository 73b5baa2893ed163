"""The README quotes real output: its example lines are what the code prints for the configuration they name, so
the documentation cannot drift from the code."""

import itertools
import re
from pathlib import Path

import larq_mobisearch  # noqa: F401  (Keras 2 before TensorFlow)
from larq_mobisearch.config import load_config
from larq_mobisearch.pipeline import Run, run_all
from larq_mobisearch.search.costs import FlopsCostModel

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


class _FirstLine(Exception):
    pass


def _first_echo(run):
    """The first line `run_all` prints for `run` (it stops there: nothing trains)."""
    lines = []

    def echo(line):
        lines.append(line)
        raise _FirstLine

    try:
        run_all(run, echo=echo)
    except _FirstLine:
        pass
    return lines


def test_readme_feasible_count_is_what_mobisearch_run_prints_on_digits(tmp_path):
    documented = re.search(r"`mobisearch run` on digits prints\s+`(\[search\] [^`]+)`", README)
    assert documented, "README lost its example of the feasible-genotype line"
    run = Run.open(str(tmp_path / "run"), load_config(preset="digits"))
    assert _first_echo(run) == [documented.group(1)]
    # independent reference: enumerate the whole space against the FLOPs budget
    space, budget = run.space, run.flops_budget()
    model = FlopsCostModel(space.arch, space.candidates)
    genotypes = list(itertools.product(*space.candidates))
    fit = sum(model.cost(g) <= budget for g in genotypes)
    count, size = map(lambda s: int(s.replace(",", "")),
                      re.match(r"\[search\] ([\d,]+) of ([\d,]+) genotypes", documented.group(1)).groups())
    assert (count, size) == (fit, len(genotypes))


def test_readme_fashion_figures_are_those_of_the_json_it_names():
    import json

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    section = README[README.index("### Fashion-MNIST"):README.index("### Related methods")]
    eff = json.loads((results / "efficiency.json").read_text())
    assert "`benchmarks/results/efficiency.json`, `supernet`" in section
    assert f"{eff['supernet']['seconds']:,.0f} s" in section
    assert f"last-epoch training top-1 {100 * eff['supernet']['final_train_accuracy']:.1f}%" in section
    table1 = json.loads((results / "ablation_fashion.json").read_text())["per_seed"]
    evo, rnd = table1[0]["methods"]["evolution"], table1[0]["methods"]["random"]
    uniform = table1[0]["methods"]["uniform"]
    assert f"winner `{evo['genotype']}` at {100 * evo['supernet_fitness']:.2f}% held-out top-1" in section
    assert f"random search's best {100 * rnd['supernet_fitness']:.2f}%" in section
    assert f"best uniform (g=2) {100 * uniform['supernet_fitness']:.2f}%" in section and uniform["label"] == "g2"
    accs = [100 * seed["methods"]["evolution"]["test_accuracy"] for seed in table1]
    assert f"{accs[0]:.2f}% and {accs[1]:.2f}% test top-1 in seeds 0 and 1" in section
    assert all(seed["methods"]["evolution"]["genotype"] == evo["genotype"] for seed in table1)
    assert f"{evo['costs']['flops']:.2e}".replace("e+0", "e") + " FLOPs" in section  # 8.16e5 FLOPs
    assert f"host LCE latency {evo['latency_ms']:.3f} ms" in section
    # no stage time or accuracy of the preset's own (uncommitted) run is quoted: the run's report.json has them
    assert "`stage_seconds`" in section and "`test_accuracy`" in section


def test_readme_fashion_joint_figures_are_those_of_the_runs_report():
    import json

    report = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" /
                         "fashion_joint_run.json").read_text())
    section = README[README.index("### Width genes"):README.index("### Related methods")]
    seconds = report["stage_seconds"]
    assert (f"supernet {seconds['supernet']:,.0f} s (8 epochs), search {seconds['search']:,.0f} s, retraining "
            f"{seconds['retrain']:,.0f} s (15 epochs), export {seconds['export']:,.0f} s: "
            f"{sum(seconds.values()) / 60:.1f} min in all") in " ".join(section.split())
    assert f"`{report['genotype']}`" in section
    assert (f"{100 * report['test_accuracy']:.2f}% test top-1 in Keras and {100 * report['tflite_accuracy']:.2f}% "
            f"as a `.tflite`") in " ".join(section.split())
    assert report["tflite_samples"] == 10000
    flops = lambda x: f"{x:.2e}".replace("e+0", "e")  # noqa: E731
    assert f"{flops(report['costs']['flops'])} FLOPs against the budget's {flops(report['flops_budget'])}" in \
        " ".join(section.split())


def test_readme_joint_latency_table_figures_are_those_of_its_json():
    import json

    data = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" /
                       "latency_joint_28.json").read_text())
    e = data["errors"]
    text = " ".join(README.split())
    assert (f"{data['table']['entries']} configurations, {e['mae']:.2f}% mean error on {e['n']} held-out joint "
            f"genotypes, {e['above']} above / {e['below']} below, Spearman {data['spearman_table']:.3f} against "
            f"{data['spearman_flops']:.3f} for FLOPs") in text


def test_readme_suite_time_is_the_latest_idle_run_of_its_ledger():
    import json
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    import suite_md

    run = suite_md.latest_idle(json.loads((root / "benchmarks" / "results" / "suite_time.json").read_text()))
    assert run is not None, "no idle passing run in benchmarks/results/suite_time.json"
    c = run["counts"]
    quoted = (f"the latest idle run on this 2-core machine: **{run['pytest_seconds']:.0f} s "
              f"({run['pytest_seconds'] / 60:.1f} min; {c['passed']} passed, {c.get('skipped', 0)} skipped)**")
    assert quoted in " ".join(README.split())
    verdict = "within" if run["pytest_seconds"] <= suite_md.GOAL_SECONDS else "over"
    assert f"{quoted}, {verdict} the goal of 8 minutes" in " ".join(README.split())


def test_readme_pareto_figures_are_those_of_its_json():
    import json

    data = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "pareto.json").read_text())
    assert data["complete"] and data["reference"] == "QuickNetSmall"
    text = " ".join(README.split())
    rows = {r["label"]: r for r in data["rows"]}
    point = lambda r: (f"{r['accuracy']['mean']:.2f} ± {r['accuracy']['se']:.2f}% at "  # noqa: E731
                       f"{r['paired_to_reference']['median']:.2f}x")
    fastest = min((r for r in data["rows"] if r["family"] == "searched"),
                  key=lambda r: r["paired_to_reference"]["median"])
    verdict = "dominates" if data["reading"]["goal_met"] else "does not dominate"
    assert f"the searched front {verdict} every uniform and larq-zoo point" in text
    assert f"Its fastest point reaches {point(fastest)} QuickNetSmall's latency" in text
    for label, quoted in (("uniform w0.5 g1", "uniform w0.5 g1"), ("uniform w1 g1", "uniform w1 g1"),
                          ("MobileNetV1 0.5 float", "float MobileNetV1 0.5")):
        assert f"{quoted} ({point(rows[label])})" in text
    qns = rows["QuickNetSmall"]["accuracy"]
    e = next(e for e in data["reading"]["entries"] if e["label"] == "QuickNetSmall")
    assert e["by"] == fastest["label"]
    assert (f"QuickNetSmall ({qns['mean']:.2f} ± {qns['se']:.2f}%) by {-e['margin']:.2f} ± {e['margin_se']:.2f} "
            f"points") in text
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import pareto_md

    neighbours = pareto_md.budget_neighbours(data["rows"], data["supernet_scores"]["scores"])
    assert [n["uniform_feasible"] for n in neighbours] == [False, False, True]
    assert all(n["uniform_predicted_ms"] < 1.01 * n["budget_ms"] for n in neighbours[:2])
    last = neighbours[2]
    assert last["searched"] == "searched <= 0.65x latency" and last["uniform_ratio"] < last["searched_ratio"] and \
        last["uniform_top1"] > last["searched_top1"]
    assert "At two of the three budgets the latency table also put the uniform point nearest the winner over the " \
        "budget by less than 1%; at the third (0.65x) that point, uniform w0.75 g4, was within the budget, ran " \
        "faster and was more accurate than the winner, and the supernet scored it lower" in text
    assert last["uniform"] == "uniform w0.75 g4" and last["uniform_score"] < last["searched_score"]
    sn = data["supernet_scores"]["scores"]
    agreement = pareto_md.score_agreement(data["rows"], sn)
    assert (f"the supernet ranks these eight networks backwards (Kendall tau {agreement['tau']:+.2f}, "
            f"p {agreement['p']:.2f}, between its scores and their test top-1") in text.replace("tau +", "tau ")
    assert agreement["n"] == 8 and agreement["tau"] < 0
    search_batches = data["supernet_scores"]["recalibration_batches"]
    most = max(data["supernet_scores"]["by_recalibration"], key=int)
    soft = pareto_md.score_agreement(data["rows"], data["supernet_scores"]["by_recalibration"][most])
    assert agreement["tau"] < soft["tau"] < 0
    assert (f"soften it (tau {soft['tau']:.2f} with {most} batches instead of the search's {search_batches}) "
            f"without reversing it") in text
    searched = [100 * v for k, v in sn.items() if rows[k]["family"] == "searched"]
    uniform = {k: 100 * v for k, v in sn.items() if rows[k]["family"] == "uniform"}
    assert (f"scores every searched winner above every uniform point ({min(searched):.2f}-{max(searched):.2f}% "
            f"against {min(uniform.values()):.2f}-{max(uniform.values()):.2f}%), and uniform w1 g1, the most "
            f"accurate of the eight, lowest") in text
    assert min(searched) > max(uniform.values()) and min(uniform, key=uniform.get) == "uniform w1 g1"
    assert max((r for r in data["rows"] if r["label"] in sn), key=lambda r: r["accuracy"]["mean"])["label"] == \
        "uniform w1 g1"
    variant = data["supernet_scores"]["by_variant"]["uniform"]
    uniform_agreement = pareto_md.score_agreement(data["rows"], variant["scores"])
    assert (f"ranks the eight with tau {uniform_agreement['tau']:+.2f} (p {uniform_agreement['p']:.2f}) and scores "
            f"uniform w1 g1 "
            f"{100 * variant['scores']['uniform w1 g1']:.2f}% instead of {100 * sn['uniform w1 g1']:.2f}%") in text
    budget = 0.5 * rows["uniform w1 g1"]["costs"]["flops"]
    beyond = [label for label in sn if rows[label]["costs"]["flops"] > budget]
    assert len(beyond) == 4 and "searched <= 0.65x latency" in beyond
    assert "four of the eight, the 0.65x winner among them, lie beyond it" in text
