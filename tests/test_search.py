"""Evolutionary search (Algorithm 1), baselines, state file and plots, on synthetic evaluators with known optima."""

import itertools
import json
import math
import os
import random

import pytest

from larq_mobisearch.config import SearchConfig
from larq_mobisearch.search.costs import AdditiveCostModel, FlopsCostModel
from larq_mobisearch.nn.space import SearchSpace, encode
from larq_mobisearch.nn.specs import architecture
from larq_mobisearch import search as S
from larq_mobisearch import plots


# ----------------------------------------------------------------------------------------------------------
# Helpers


def make_space(module="m1", mode="lce", max_groups=None):
    arch = architecture(module, (224, 224, 3), 1000, 1.0)
    space = SearchSpace(arch, mode, max_groups=max_groups)
    return space, FlopsCostModel(arch, space.candidates)


class Recorder:
    """Evaluator recording every batch; fitness from `fn`."""

    def __init__(self, fn, fail_on_call=None):
        self.fn = fn
        self.batches = []
        self.fail_on_call = fail_on_call

    def score(self, genotypes):
        if self.fail_on_call is not None and len(self.batches) + 1 >= self.fail_on_call:
            raise Killed("simulated kill during evaluation")
        self.batches.append([tuple(g) for g in genotypes])
        return [self.fn(g) for g in genotypes]

    @property
    def all(self):
        return [g for b in self.batches for g in b]


class Killed(Exception):
    pass


def weighted_log_fitness(weights):
    """Fewer groups = 'more accurate', so the optimum sits on the budget (a multiple-choice knapsack)."""
    return lambda g: -sum(w * math.log2(x) for w, x in zip(weights, g))


def exact_knapsack(space, cost_model, weights, budget):
    """Exact max of weighted_log_fitness under cost <= budget by a Pareto-pruned DP over genes."""
    states = [(cost_model.fixed, 0.0, ())]
    for i, cands in enumerate(space.candidates):
        nxt = [
            (c + cost_model.table[i][g], f - weights[i] * math.log2(g), gs + (g,))
            for c, f, gs in states
            for g in cands
        ]
        nxt = sorted((s for s in nxt if s[0] <= budget), key=lambda s: (s[0], -s[1]))
        states, best = [], -math.inf
        for s in nxt:
            if s[1] > best:
                states.append(s)
                best = s[1]
    return max(states, key=lambda s: s[1])


def feasible_set(space, cost_model, budget):
    """All genotypes with cost <= budget (depth-first with a cheapest-completion bound)."""
    cands, table = space.candidates, cost_model.table
    rest = [0.0] * (len(cands) + 1)
    for i in range(len(cands) - 1, -1, -1):
        rest[i] = rest[i + 1] + min(table[i][g] for g in cands[i])
    out = []

    def dfs(i, cost, genes):
        if cost + rest[i] > budget:
            return
        if i == len(cands):
            out.append(tuple(genes))
            return
        for g in cands[i]:
            dfs(i + 1, cost + table[i][g], genes + [g])

    dfs(0, cost_model.fixed, [])
    return out


def budget_at(space, cost_model, fraction):
    lo = cost_model.min_cost(space.candidates)
    hi = cost_model.cost(space.uniform(1))
    return lo + (hi - lo) * fraction


def small_config(**kw):
    base = dict(population=12, top_k=4, crossover=6, mutation=6, iterations=6, seed=0)
    base.update(kw)
    return SearchConfig(**base)


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
    space, flops = make_space(module)
    r = random.Random(seed)
    weights = [r.uniform(0.5, 2.0) for _ in space.candidates]
    budget = budget_at(space, flops, fraction)
    opt_cost, opt_fit, opt_genotype = exact_knapsack(space, flops, weights, budget)
    ev = Recorder(weighted_log_fitness(weights))
    res = S.evolutionary_search(space, ev, [(flops, budget)], SearchConfig(seed=seed), progress=False)
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
# Determinism and resume


def _fit_m1(g):
    return -sum((math.log2(x) - 2.0) ** 2 * (1 + i % 3) for i, x in enumerate(g))


def test_same_seed_same_result_different_seed_different_run():
    space, flops = make_space("m1")
    budget = budget_at(space, flops, 0.2)
    runs = [
        S.evolutionary_search(space, S.FunctionEvaluator(_fit_m1), [(flops, budget)], small_config(seed=s),
                              progress=False)
        for s in (4, 4, 5)
    ]
    assert runs[0].to_json() == runs[1].to_json()
    assert [c.genotype for c in runs[0].evaluated] != [c.genotype for c in runs[2].evaluated]


def test_killed_and_resumed_search_equals_uninterrupted_run(tmp_path):
    space, flops = make_space("m1")
    budget = budget_at(space, flops, 0.2)
    cfg = small_config(iterations=8, seed=11)
    full_dir, resumed_dir = tmp_path / "full", tmp_path / "resumed"  # run directories, created on first save
    full = S.evolutionary_search(space, Recorder(_fit_m1), [(flops, budget)], cfg, state_path=str(full_dir),
                                 context="ckpt-1", progress=False)

    killed = Recorder(_fit_m1, fail_on_call=4)
    with pytest.raises(Killed):
        S.evolutionary_search(space, killed, [(flops, budget)], cfg, state_path=str(resumed_dir), context="ckpt-1",
                              progress=False)
    state = json.loads((resumed_dir / "search_state.json").read_text())
    assert state["version"] == 1 and state["generation"] == 3 and len(state["history"]) == 3
    assert len(state["cache"]) == len(killed.all) == 3 * 12

    fresh = Recorder(_fit_m1)
    resumed = S.evolutionary_search(space, fresh, [(flops, budget)], cfg, state_path=str(resumed_dir),
                                    context="ckpt-1", progress=False)
    assert resumed.to_json() == full.to_json()
    assert len(fresh.batches) == 5  # generations 4..8 only
    assert not set(fresh.all) & set(killed.all)  # nothing evaluated twice across the kill
    # the final state files are identical as well (same RNG state, cache, history)
    assert json.loads((resumed_dir / "search_state.json").read_text()) == json.loads(
        (full_dir / "search_state.json").read_text()
    )
    assert not [p for p in os.listdir(resumed_dir) if p != "search_state.json"]  # no temp files left behind


def test_finished_search_is_not_reevaluated_and_can_be_extended(tmp_path):
    space, flops = make_space("m1")
    cons = [(flops, budget_at(space, flops, 0.3))]
    path = str(tmp_path / "search_state.json")
    first = S.evolutionary_search(space, Recorder(_fit_m1), cons, small_config(iterations=4), state_path=path,
                                  progress=False)
    again = Recorder(_fit_m1)
    rerun = S.evolutionary_search(space, again, cons, small_config(iterations=4), state_path=path, progress=False)
    assert again.batches == [] and rerun.to_json() == first.to_json()
    extended = S.evolutionary_search(space, Recorder(_fit_m1), cons, small_config(iterations=7), state_path=path,
                                     progress=False)
    straight = S.evolutionary_search(space, Recorder(_fit_m1), cons, small_config(iterations=7), progress=False)
    assert extended.to_dict() == straight.to_dict()
    assert len(extended.history) == 7


@pytest.mark.parametrize(
    "content,expected",
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"version": 1}', "missing keys"),
        ('{"version": 2, "config_hash": "x"}', "unsupported state version 2"),
    ],
)
def test_corrupted_state_file_is_a_clear_error_and_left_untouched(tmp_path, content, expected):
    path = tmp_path / "search_state.json"
    path.write_text(content)
    before = path.read_bytes()
    space, flops = make_space("m1")
    ev = Recorder(_fit_m1)
    with pytest.raises(ValueError) as info:
        S.evolutionary_search(space, ev, [(flops, None)], small_config(), state_path=str(path), progress=False)
    message = str(info.value)
    assert str(path) in message and expected in message and "delete it" in message
    assert path.read_bytes() == before
    assert ev.batches == []


def test_state_with_matching_hash_but_broken_content_is_refused(tmp_path):
    space, flops = make_space("m1")
    path = tmp_path / "search_state.json"
    S.evolutionary_search(space, Recorder(_fit_m1), [(flops, None)], small_config(iterations=2), state_path=str(path),
                          progress=False)
    for breakage in ("rng", "population", "cache"):
        data = json.loads(path.read_text())
        if breakage == "rng":
            data["rng_state"] = [3, [1, 2], None]
        elif breakage == "population":
            data["population"] = ["1-2-3"]
        else:
            data["cache"] = {"1-1-1": {"fitness": 0.0, "costs": {}}}
        broken = json.dumps(data)
        path.write_text(broken)
        with pytest.raises(S.SearchStateError, match="corrupted"):
            S.evolutionary_search(space, Recorder(_fit_m1), [(flops, None)], small_config(iterations=3),
                                  state_path=str(path), progress=False)
        assert path.read_text() == broken


@pytest.mark.parametrize(
    "change,expected",
    [
        (dict(config=small_config(seed=1)), "search.seed: 0 in the file, 1 now"),
        (dict(config=small_config(mutation_prob=0.2)), "search.mutation_prob"),
        (dict(context="supernet-ckpt-2"), "context"),
        (dict(budget_fraction=0.5), "budget"),
        (dict(module="m3"), "module"),
    ],
)
def test_state_from_a_different_config_is_refused_and_not_overwritten(tmp_path, change, expected):
    path = tmp_path / "search_state.json"

    def run(config=None, context="supernet-ckpt-1", budget_fraction=0.3, module="m1"):
        space, flops = make_space(module)
        return S.evolutionary_search(space, Recorder(_fit_m1), [(flops, budget_at(space, flops, budget_fraction))],
                                     config or small_config(iterations=2), state_path=str(path), context=context,
                                     progress=False)

    run()
    before = path.read_bytes()
    with pytest.raises(ValueError) as info:
        run(**change)
    message = str(info.value)
    assert str(path) in message and "different search configuration" in message
    assert expected in message and "delete the file or use another run directory" in message
    assert path.read_bytes() == before


def test_state_file_content(tmp_path):
    space, flops = make_space("m1")
    path = tmp_path / "run" / "search_state.json"
    res = S.evolutionary_search(space, Recorder(_fit_m1), [(flops, budget_at(space, flops, 0.3))],
                                small_config(iterations=3), state_path=str(path), context="ckpt", progress=False)
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["generation"] == 3
    assert data["config"]["context"] == "ckpt"
    assert data["config"]["space"]["candidates"] == [list(c) for c in space.candidates]
    assert data["best"]["genotype"] == encode(res.best_genotype)
    assert data["best"]["fitness"] == res.best_fitness
    assert len(data["cache"]) == res.num_evaluations
    entry = data["cache"][encode(res.best_genotype)]
    assert entry["fitness"] == res.best_fitness and entry["costs"] == {"flops": flops.cost(res.best_genotype)}
    assert [h["best"] for h in data["history"]] == [h["best"] for h in res.history]
    assert data["population"] == [encode(g) for g in [c.genotype for c in res.evaluated][-12:]]
    random.Random().setstate((data["rng_state"][0], tuple(data["rng_state"][1]), data["rng_state"][2]))


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
    res = S.evolutionary_search(space, S.FunctionEvaluator(_fit_m1), [(flops, budget_at(space, flops, 0.3))],
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
    res = S.evolutionary_search(space, S.FunctionEvaluator(_fit_m1), cons, small_config(), progress=True)
    uni = S.uniform_baselines(space, S.FunctionEvaluator(_fit_m1), cons)
    rnd = S.random_search(space, S.FunctionEvaluator(_fit_m1), cons, small_config(), num_samples=20, progress=False)
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
