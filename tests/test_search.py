"""Evolutionary search (Algorithm 1): operators, parent selection, known optima, budgets, baselines, results
and plots, on synthetic evaluators whose optima are known exactly (DP over genes, checked by brute force)."""

import itertools
import json
import math
import os
import random

import pytest

from larq_mobisearch.config import SearchConfig
from larq_mobisearch.search.costs import AdditiveCostModel
from larq_mobisearch.nn.space import encode
from larq_mobisearch import search as S
from larq_mobisearch import plots

from search_helpers import (Recorder, budget_at, exact_knapsack, feasible_set, fit_m1, make_space, small_config,
                            weighted_log_fitness)


# ----------------------------------------------------------------------------------------------------------
# Operators


def test_crossover_takes_each_gene_from_a_parent_and_mixes():
    rng = random.Random(0)
    a, b = (1,) * 20, (2,) * 20
    children = [S.crossover(a, b, rng) for _ in range(50)]
    assert all(set(c) <= {1, 2} and len(c) == 20 for c in children)
    ones = sum(c.count(1) for c in children)
    assert 350 < ones < 650  # uniform: about half the genes from each parent


def test_mutation_changes_genes_only_to_other_candidates():
    space, _ = make_space("m1")
    rng = random.Random(1)
    parent = space.uniform(1)
    assert S.mutate(parent, space.candidates, 0.0, rng) == parent
    child = S.mutate(parent, space.candidates, 1.0, rng)
    for g, c, cands in zip(parent, child, space.candidates):
        assert c in cands
        assert (c != g) == (len(cands) > 1)  # every gene with an alternative changes at p=1
    # p = 0.1: about 10% of the mutable genes change
    mutable = sum(len(c) > 1 for c in space.candidates)
    changed = sum(
        sum(x != y for x, y in zip(parent, S.mutate(parent, space.candidates, 0.1, rng))) for _ in range(400)
    )
    assert 0.06 < changed / (400 * mutable) < 0.14


# ----------------------------------------------------------------------------------------------------------
# Parent selection


def _state_with_three_generations():
    r = random.Random(4)
    cache, generations = {}, []
    for gen in range(3):
        pop = []
        while len(pop) < 6:
            g = tuple(r.choice((1, 2, 4, 8)) for _ in range(5))
            if g not in cache:
                cache[g] = {"fitness": float(r.randint(0, 9)), "costs": {}, "generation": gen}  # with ties
                pop.append(g)
        generations.append(pop)
    return S.SearchState(3, random.Random(0), generations[-1], cache, [{}] * 3), generations


@pytest.mark.parametrize("k", [1, 3, 6, 20])
def test_select_parents_elitist_is_the_top_k_of_every_evaluated_genotype(k):
    state, generations = _state_with_three_generations()
    evaluated = [g for pop in generations for g in pop]
    fitness = {g: state.cache[g]["fitness"] for g in evaluated}
    # reference: by fitness, ties to the earlier evaluated
    elite = sorted(range(len(evaluated)), key=lambda i: (-fitness[evaluated[i]], i))[:k]
    assert S.select_parents(state, k, "elitist") == [evaluated[i] for i in elite]
    last = generations[-1]
    top = sorted(range(len(last)), key=lambda i: (-fitness[last[i]], i))[:k]
    assert S.select_parents(state, k, "generation") == [last[i] for i in top]
    # the best genotype of an earlier generation stays a parent only with elitist selection
    best_earlier = max(generations[0] + generations[1], key=lambda g: fitness[g])
    if fitness[best_earlier] > max(fitness[g] for g in last):
        assert best_earlier in S.select_parents(state, 1, "elitist")
        assert best_earlier not in S.select_parents(state, k, "generation")


def test_selection_is_validated():
    space, flops = make_space("m1")
    with pytest.raises(ValueError, match=r"selection.*'best'.*allowed: .*elitist.*generation"):
        S.evolutionary_search(space, fit_m1, [(flops, None)], small_config(selection="best"), progress=False)


def _evaluations_to_optimum(res, optimum, cap):
    return next((i + 1 for i, c in enumerate(res.evaluated) if c.fitness >= optimum - 1e-9), cap + 1)


def test_elitist_search_needs_fewer_evaluations_than_random():
    """M1 at 32x32, width 0.5, LCE space (737,280 genotypes), FLOPs budget at 20% of the range (40,156
    feasible): over 10 seeds (fitness weights and search seed), the elitist search reaches the exact optimum
    in fewer evaluations than random search with the same evaluation budget (paper settings, 1000)."""
    space, flops = make_space("m1", input_shape=(32, 32, 3), num_classes=10, width=0.5)
    budget = budget_at(space, flops, 0.2)
    feasible = feasible_set(space, flops, budget)
    assert len(feasible) == 40156 and space.size == 737280
    cfg_evals = SearchConfig().population * SearchConfig().iterations
    elitist, rnd = [], []
    for seed in range(10):
        r = random.Random(1000 + seed)
        weights = [r.uniform(0.5, 2.0) for _ in space.candidates]
        fit = weighted_log_fitness(weights)
        _, optimum, genotype = exact_knapsack(space, flops, weights, budget)
        if seed == 0:  # the DP optimum is the brute-force optimum
            assert max(fit(g) for g in feasible) == pytest.approx(optimum) and genotype in feasible
        evo = S.evolutionary_search(space, fit, [(flops, budget)], SearchConfig(seed=seed), progress=False)
        base = S.random_search(space, fit, [(flops, budget)], SearchConfig(seed=seed), num_samples=cfg_evals,
                               progress=False)
        assert evo.best_fitness <= optimum + 1e-9 and base.best_fitness <= optimum + 1e-9
        elitist.append(_evaluations_to_optimum(evo, optimum, cfg_evals))
        rnd.append(_evaluations_to_optimum(base, optimum, cfg_evals))
    # runs that miss the optimum count as cap + 1 evaluations
    assert sum(elitist) / 10 < sum(rnd) / 10


# ----------------------------------------------------------------------------------------------------------
# Finding known optima


def test_finds_a_known_target_genotype_with_paper_defaults():
    space, flops = make_space("m1")
    # a mixed genotype: gene i takes candidate number (i * 2 + 1) of its list, cyclically
    target = tuple(c[(i * 2 + 1) % len(c)] for i, c in enumerate(space.candidates))
    space.validate(target)
    assert len(set(target)) >= 4

    def fitness(g):
        return -sum((math.log2(x) - math.log2(t)) ** 2 for x, t in zip(g, target))

    res = S.evolutionary_search(space, S.FunctionEvaluator(fitness), [(flops, None)], SearchConfig(), progress=False)
    assert res.best_genotype == target
    assert res.best_fitness == 0.0
    assert res.best_costs == {"flops": flops.cost(target)}
    assert res.num_evaluations == 50 * 20  # paper defaults: 20 generations of 50 unseen genotypes
    assert len(res.history) == 20
    assert [h["population"] for h in res.history] == [50] * 20
    assert res.history[-1]["best_so_far"] == 0.0
    assert res.history[0]["best_so_far"] < -1.0  # the initial random population did not contain it


def test_exact_knapsack_helper_matches_brute_force():
    space, flops = make_space("m1", max_groups=2)
    r = random.Random(3)
    weights = [r.uniform(0.5, 2) for _ in space.candidates]
    budget = budget_at(space, flops, 0.4)
    fit = weighted_log_fitness(weights)
    brute = max((g for g in itertools.product(*space.candidates) if flops.cost(g) <= budget), key=fit)
    cost, fitness, genotype = exact_knapsack(space, flops, weights, budget)
    assert genotype == brute and fitness == pytest.approx(fit(brute)) and cost == flops.cost(brute) <= budget


@pytest.mark.parametrize("module,seed,fraction", [("m1", 0, 0.3), ("m1", 1, 0.15), ("m3", 2, 0.45)])
def test_budget_bound_optimum_matches_exact_optimum(module, seed, fraction):
    # Paper selection (top-K of the current generation), paper settings. The elitist default finds these
    # exact optima in 1 of these 3 cases (m1, seed 0) only; see test_elitist_search_needs_fewer_evaluations_than_random.
    space, flops = make_space(module)
    r = random.Random(seed)
    weights = [r.uniform(0.5, 2.0) for _ in space.candidates]
    budget = budget_at(space, flops, fraction)
    opt_cost, opt_fit, opt_genotype = exact_knapsack(space, flops, weights, budget)
    ev = Recorder(weighted_log_fitness(weights))
    res = S.evolutionary_search(space, ev, [(flops, budget)], SearchConfig(seed=seed, selection="generation"),
                                progress=False)
    assert res.best_genotype == opt_genotype
    assert res.best_fitness == pytest.approx(opt_fit, abs=1e-9)
    assert res.best_costs["flops"] == pytest.approx(opt_cost) and opt_cost <= budget
    assert all(flops.cost(g) <= budget for g in ev.all)
    # the optimum needs many evaluations to hit by chance: random search with the same budget misses it
    rnd = S.random_search(space, S.FunctionEvaluator(weighted_log_fitness(weights)), [(flops, budget)],
                          SearchConfig(seed=seed), num_samples=res.num_evaluations, progress=False)
    assert rnd.num_evaluations == res.num_evaluations
    assert rnd.best_fitness < res.best_fitness - 1.0


def test_m2_search_beats_random_search_and_approaches_the_optimum():
    space, flops = make_space("m2")
    weights = [random.Random(7).uniform(0.5, 2.0) for _ in space.candidates]
    budget = budget_at(space, flops, 0.3)
    _, opt_fit, _ = exact_knapsack(space, flops, weights, budget)
    fit = S.FunctionEvaluator(weighted_log_fitness(weights))
    res = S.evolutionary_search(space, fit, [(flops, budget)], SearchConfig(seed=0), progress=False)
    rnd = S.random_search(space, fit, [(flops, budget)], SearchConfig(seed=0), num_samples=res.num_evaluations,
                          progress=False)
    assert res.best_fitness <= opt_fit + 1e-9
    assert res.best_fitness >= opt_fit - 0.1 * abs(opt_fit)
    assert res.best_fitness > rnd.best_fitness + 0.1 * abs(opt_fit)


# ----------------------------------------------------------------------------------------------------------
# Budgets, batching, cache


def test_every_evaluation_respects_all_budgets_and_happens_once_per_genotype():
    space, flops = make_space("m2")
    r = random.Random(5)
    latency = AdditiveCostModel(0.5, [{g: r.uniform(0.01, 0.2) / g**0.5 for g in c} for c in space.candidates])
    latency.name, latency.unit = "latency", "ms"
    flops_budget = budget_at(space, flops, 0.25)
    lat_lo = latency.min_cost(space.candidates)
    lat_budget = lat_lo + 0.6 * (latency.cost(space.uniform(1)) - lat_lo)
    ev = Recorder(lambda g: -sum(math.log2(x) for x in g) + 0.01 * r.random())
    res = S.evolutionary_search(space, ev, [(flops, flops_budget), (latency, lat_budget)], SearchConfig(seed=3),
                                progress=False)
    assert len(ev.batches) == len(res.history) == 20  # one evaluator call per generation
    assert all(0 < len(b) <= 50 for b in ev.batches)
    assert len(ev.all) == len(set(ev.all)) == res.num_evaluations  # each genotype evaluated once
    for g in ev.all:
        assert space.contains(g)
        assert flops.cost(g) <= flops_budget and latency.cost(g) <= lat_budget
    assert res.budgets == {"flops": flops_budget, "latency": lat_budget}
    assert res.units == {"flops": "FLOPs", "latency": "ms"}
    assert set(res.best_costs) == {"flops", "latency"}
    # every evaluated genotype appears once in the result, with its recorded fitness and costs
    assert [c.genotype for c in res.evaluated] == ev.all
    assert all(c.costs["latency"] == latency.cost(c.genotype) for c in res.evaluated)


def test_tight_budget_evaluates_exactly_the_feasible_set_and_stops():
    space, flops = make_space("m1")
    budget = budget_at(space, flops, 0.01)
    feasible = feasible_set(space, flops, budget)
    assert 5 < len(feasible) < 50  # rare for rejection sampling: about 1 in 10^6 random genotypes
    weights = [1.0 + 0.1 * i for i in range(len(space.candidates))]
    ev = Recorder(weighted_log_fitness(weights))
    res = S.evolutionary_search(space, ev, [(flops, budget)], SearchConfig(seed=0), progress=False)
    assert sorted(ev.all) == sorted(feasible)
    assert res.stopped_early and "no new genotype" in res.stopped_early
    assert res.best_genotype == max(feasible, key=weighted_log_fitness(weights))


def test_impossible_budget_names_budget_and_cheapest_flops(tmp_path):
    space, flops = make_space("m1")
    cheapest = flops.min_cost(space.candidates)
    assert cheapest == flops.cost(flops.cheapest(space.candidates))
    budget = cheapest - 1000.0
    ev = Recorder(lambda g: 0.0)
    state = tmp_path / "search_state.json"
    with pytest.raises(ValueError) as info:
        S.evolutionary_search(space, ev, [(flops, budget)], SearchConfig(), state_path=str(state), progress=False)
    message = str(info.value)
    assert f"{cheapest:,.0f} FLOPs" in message
    assert f"{budget:,.0f} FLOPs" in message
    assert ev.batches == [] and not state.exists()
    with pytest.raises(ValueError, match=f"{cheapest:,.0f}"):
        S.random_search(space, ev, [(flops, budget)], progress=False)
    # exactly the cheapest cost is reachable
    res = S.evolutionary_search(space, Recorder(lambda g: 0.0), [(flops, cheapest)], small_config(), progress=False)
    assert res.best_genotype == flops.cheapest(space.candidates) and res.num_evaluations == 1


def test_invalid_config_is_rejected():
    space, flops = make_space("m1")
    with pytest.raises(ValueError, match="crossover.*mutation"):
        S.evolutionary_search(space, lambda g: 0.0, [(flops, None)], SearchConfig(population=40), progress=False)
    with pytest.raises(ValueError, match="top_k"):
        S.evolutionary_search(space, lambda g: 0.0, [(flops, None)], small_config(top_k=0), progress=False)


def test_evaluator_returning_wrong_number_of_scores_is_an_error():
    space, flops = make_space("m1")

    class Bad:
        def score(self, genotypes):
            return [0.0]

    with pytest.raises(ValueError, match="returned 1 scores for 12 genotypes"):
        S.evolutionary_search(space, Bad(), [(flops, None)], small_config(), progress=False)


# ----------------------------------------------------------------------------------------------------------
# Pareto front and result


def test_pareto_front_small_example():
    C = S.Candidate
    pts = [
        C((1,), 0.5, {"flops": 10.0}),
        C((2,), 0.6, {"flops": 20.0}),
        C((3,), 0.55, {"flops": 25.0}),  # dominated by (2,)
        C((4,), 0.6, {"flops": 30.0}),  # dominated by (2,) (same fitness, more FLOPs)
        C((5,), 0.7, {"flops": 40.0}),
        C((6,), 0.4, {"flops": 10.0}),  # dominated by (1,)
    ]
    assert [c.genotype for c in S.pareto_front(pts)] == [(1,), (2,), (5,)]


def test_result_pareto_front_is_the_non_dominated_set():
    space, flops = make_space("m2")
    r = random.Random(2)
    latency = AdditiveCostModel(0.0, [{g: r.random() for g in c} for c in space.candidates])
    latency.name, latency.unit = "latency", "ms"
    res = S.evolutionary_search(space, S.FunctionEvaluator(lambda g: -sum(math.log2(x) for x in g)),
                                [(flops, budget_at(space, flops, 0.3)), (latency, None)], small_config(),
                                progress=False)

    def dominates(a, b):
        better_or_equal = a.fitness >= b.fitness and all(a.costs[k] <= b.costs[k] for k in a.costs)
        return better_or_equal and (a.fitness > b.fitness or any(a.costs[k] < b.costs[k] for k in a.costs))

    brute = [c.genotype for c in res.evaluated if not any(dominates(o, c) for o in res.evaluated)]
    assert sorted(c.genotype for c in res.pareto_front) == sorted(brute)
    assert res.best_genotype in brute
    flops_front = res.front_points("flops")
    assert all(not any(f2 >= f and c2 <= c and (f2, c2) != (f, c) for c2, f2 in res.points("flops"))
               for c, f in flops_front)


def test_result_to_json_round_trips():
    space, flops = make_space("m1")
    res = S.evolutionary_search(space, S.FunctionEvaluator(fit_m1), [(flops, budget_at(space, flops, 0.3))],
                                small_config(iterations=3), progress=False)
    data = json.loads(res.to_json())
    assert data["method"] == "evolution"
    assert data["best_genotype"] == encode(res.best_genotype)
    assert data["best_fitness"] == res.best_fitness == max(c.fitness for c in res.evaluated)
    assert data["best_costs"] == {"flops": flops.cost(res.best_genotype)}
    assert data["num_evaluations"] == len(data["evaluated"]) == 36
    assert len(data["history"]) == 3 and {"best", "mean", "generation"} <= set(data["history"][0])
    assert all(h["mean"] <= h["best"] <= h["best_so_far"] for h in data["history"])
    assert data["pareto_front"]


# ----------------------------------------------------------------------------------------------------------
# Baselines


def test_random_search_respects_budget_and_evaluation_count():
    space, flops = make_space("m2")
    budget = budget_at(space, flops, 0.2)
    ev = Recorder(lambda g: -sum(math.log2(x) for x in g))
    res = S.random_search(space, ev, [(flops, budget)], small_config(), num_samples=30, progress=False)
    assert res.num_evaluations == len(ev.all) == len(set(ev.all)) == 30
    assert [len(b) for b in ev.batches] == [12, 12, 6]  # batches of `population`
    assert all(flops.cost(g) <= budget for g in ev.all)
    assert res.best_fitness == max(-sum(math.log2(x) for x in g) for g in ev.all)
    # default: as many evaluations as the evolutionary search's maximum
    default = S.random_search(space, Recorder(lambda g: 0.0), [(flops, budget)], small_config(iterations=2),
                              progress=False)
    assert default.num_evaluations == 24
    assert S.random_search(space, Recorder(lambda g: 0.0), [(flops, budget)],
                           small_config(random_baseline_samples=5), progress=False).num_evaluations == 5


def test_random_search_of_zero_samples_is_an_empty_result(tmp_path):
    space, flops = make_space("m1")
    ev = Recorder(fit_m1)
    res = S.random_search(space, ev, [(flops, None)], small_config(), num_samples=0, state_path=str(tmp_path),
                          progress=False)
    assert ev.batches == [] and res.best is None and res.evaluated == [] and res.num_evaluations == 0
    assert res.markers("flops") == {} and json.loads(res.to_json())["best_genotype"] is None
    assert os.listdir(tmp_path) == []  # no state file for no baseline
    assert S.random_search(space, ev, [(flops, None)], small_config(random_baseline_samples=0),
                           progress=False).num_evaluations == 0
    with pytest.raises(ValueError, match="num_samples must be an integer >= 0.*received -1"):
        S.random_search(space, ev, [(flops, None)], small_config(), num_samples=-1, progress=False)


def test_uniform_baselines_deduplicate_and_respect_budget():
    space, flops = make_space("m1")
    expected = {}
    for g in (1, 2, 4, 8, 16, 32):
        expected.setdefault(space.uniform(g), []).append(g)
    budget = (flops.cost(space.uniform(4)) + flops.cost(space.uniform(2))) / 2  # g=1, 2 are over budget
    ev = Recorder(lambda g: -sum(g))
    res = S.uniform_baselines(space, ev, [(flops, budget)])
    assert len(ev.batches) == 1
    fits = {g for g in expected if flops.cost(g) <= budget}
    assert set(ev.all) == fits and len(ev.all) == len(fits)
    assert {s["label"] for s in res.skipped} == {"g1", "g2"}
    assert all(s["costs"]["flops"] > budget for s in res.skipped)
    assert all(c.costs["flops"] <= budget for c in res.evaluated)
    assert res.best_genotype == space.uniform(4)  # least total groups among those that fit
    markers = res.markers("flops")
    assert set(markers) == {c.label for c in res.evaluated} and "g4" in markers
    # labels merge the group counts that clamp to the same genotype
    merged = [c.label for c in res.evaluated if "/" in c.label]
    assert merged == ["/".join(f"g{g}" for g in v) for k, v in expected.items() if len(v) > 1 and k in fits]


def test_uniform_baselines_with_nothing_in_budget():
    space, flops = make_space("m1", mode="paper")  # the cheapest genotype is not uniform in paper mode
    cheapest = flops.min_cost(space.candidates)
    assert flops.cost(space.uniform(32)) > cheapest
    ev = Recorder(lambda g: 0.0)
    res = S.uniform_baselines(space, ev, [(flops, cheapest)])
    assert res.best is None and res.best_genotype is None and res.num_evaluations == 0 and ev.batches == []
    assert [s["label"] for s in res.skipped] == ["g1", "g2", "g4", "g8", "g16", "g32"]
    assert json.loads(res.to_json())["best_genotype"] is None
    with pytest.raises(ValueError, match="cheapest reachable"):
        S.uniform_baselines(space, ev, [(flops, cheapest - 1)])


# ----------------------------------------------------------------------------------------------------------
# Plots


def _assert_png(path):
    with open(path, "rb") as f:
        head = f.read(8)
    assert head == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 5000


def test_plots_write_png_files(tmp_path):
    space, flops = make_space("m1")
    cons = [(flops, budget_at(space, flops, 0.3))]
    res = S.evolutionary_search(space, S.FunctionEvaluator(fit_m1), cons, small_config(), progress=True)
    uni = S.uniform_baselines(space, S.FunctionEvaluator(fit_m1), cons)
    rnd = S.random_search(space, S.FunctionEvaluator(fit_m1), cons, small_config(), num_samples=20, progress=False)
    baselines = {**uni.markers("flops", prefix="uniform "), **rnd.markers("flops")}
    assert "random best" in baselines
    p1 = plots.plot_search_history(res.history, str(tmp_path / "plots" / "history.png"))
    p2 = plots.plot_pareto(res.points("flops"), res.front_points("flops"), str(tmp_path / "pareto.png"), "FLOPs",
                           baselines, budget=cons[0][1])
    keras_history = {
        "loss": [2.0, 1.5, 1.2],
        "accuracy": [0.3, 0.5, 0.6],
        "val_loss": [2.1, 1.7, 1.4],
        "val_accuracy": [0.25, 0.45, 0.55],
        "lr": [1e-3, 5e-4, 1e-4],
    }
    p3 = plots.plot_training_history(keras_history, str(tmp_path / "train.png"), "Supernet training")
    p4 = plots.plot_training_history({"loss": [1.0, 0.5]}, str(tmp_path / "loss_only.png"), "Loss only")
    for p in (p1, p2, p3, p4):
        _assert_png(p)
    with pytest.raises(ValueError):
        plots.plot_search_history([], str(tmp_path / "empty.png"))
    assert not (tmp_path / "empty.png").exists()
