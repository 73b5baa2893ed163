"""Feasible genotypes under budgets (issue 17): the exact count equals brute-force enumeration with the cost
models' own ``cost(g) <= budget`` (also at the budget boundary and with float rounding), the sampling
estimate lies within its error bars, and the plain warnings."""

import itertools
import math
import random
from types import SimpleNamespace

import pytest

from larq_mobisearch import search as S
from larq_mobisearch.config import SearchConfig
from larq_mobisearch.search.costs import AdditiveCostModel

from search_helpers import Recorder, budget_at, feasible_set, make_space


def brute_force(space, constraints):
    """Number of genotypes with cost(g) <= budget for every (model, budget), by enumerating the space."""
    return sum(
        all(model.cost(g) <= budget for model, budget in constraints) for g in itertools.product(*space.candidates)
    )


def latency_model(space, seed, name="latency"):
    """A latency-like additive model with arbitrary (non-dyadic) float entries."""
    r = random.Random(seed)
    model = AdditiveCostModel(r.uniform(0.1, 1.0), [{g: r.uniform(0.01, 0.2) / g**0.5 for g in c}
                                                     for c in space.candidates])
    model.name, model.unit = name, "ms"
    return model


SMALL_SPACES = {
    "m1-32x32x1-w0.25-lce": dict(module="m1", input_shape=(32, 32, 1), num_classes=10, width=0.25),
    "m3-paper-max2": dict(module="m3", mode="paper", max_groups=2),
}


@pytest.mark.parametrize("space_name", sorted(SMALL_SPACES))
def test_exact_flops_count_equals_brute_force_including_the_boundary(space_name):
    space, flops = make_space(**SMALL_SPACES[space_name])
    costs = sorted(flops.cost(g) for g in itertools.product(*space.candidates))
    assert len(costs) == space.size
    # budgets: inside the range, exactly at genotype costs (float FLOPs, e.g. x.5 from BOPs/64), and one ulp
    # on either side of such a cost
    budgets = [budget_at(space, flops, f) for f in (0.0, 0.05, 0.5, 1.0)]
    for at in (costs[0], costs[len(costs) // 3], costs[len(costs) // 2], costs[-1]):
        budgets += [at, math.nextafter(at, -math.inf), math.nextafter(at, math.inf)]
    assert any(b != int(b) for b in budgets[4:]), "no fractional FLOPs cost on the boundary"
    for budget in budgets:
        got = S.count_feasible(space, [(flops, budget)])
        expected = sum(c <= budget for c in costs)
        assert got.exact and got.method == "meet-in-the-middle"
        assert got.count == expected and got.space_size == space.size
        assert got.fraction == expected / space.size


def test_exact_count_with_rounding_sensitive_float_costs():
    # Ten genes with entries 0.1, 0.2, 0.3: thousands of genotypes have the mathematical total 2.0, and their
    # float totals differ by the summation order. The count must follow cost(g) <= budget exactly.
    space = SimpleNamespace(candidates=((1, 2, 4),) * 10)
    model = AdditiveCostModel(0.0, [{1: 0.1, 2: 0.2, 4: 0.3}] * 10)
    totals = [model.cost(g) for g in itertools.product(*space.candidates)]
    near = [t for t in totals if abs(t - 2.0) < 1e-9]
    assert len(set(near)) > 1  # the float totals of equal sums do differ
    for budget in sorted(set(near)) + [2.0, 1.9999999999999996]:
        got = S.count_feasible(space, [(model, budget)])
        assert got.exact and got.count == sum(t <= budget for t in totals)


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_count_with_two_budgets_equals_brute_force(seed):
    space, flops = make_space(module="m2", mode="paper", max_groups=2)
    latency = latency_model(space, seed)
    genotypes = list(itertools.product(*space.candidates))
    f = [flops.cost(g) for g in genotypes]
    t = [latency.cost(g) for g in genotypes]
    r = random.Random(seed)
    for _ in range(4):
        i, j = r.randrange(len(genotypes)), r.randrange(len(genotypes))
        fb, tb = f[i], t[j]  # budgets exactly at genotype costs
        got = S.count_feasible(space, [(flops, fb), (latency, tb)])
        expected = sum(a <= fb and b <= tb for a, b in zip(f, t))
        assert got.exact and got.method == "meet-in-the-middle" and got.count == expected
    # a report-only constraint counts nothing
    assert S.count_feasible(space, [(flops, fb), (latency, None)]).count == sum(a <= fb for a in f)


def test_jointly_impossible_budgets_count_zero():
    space, flops = make_space(**SMALL_SPACES["m1-32x32x1-w0.25-lce"])
    # a latency that grows with the group count: the cheapest genotypes of the two models are opposite
    latency = AdditiveCostModel(0.0, [{g: float(g) for g in c} for c in space.candidates])
    latency.name, latency.unit = "latency", "ms"
    cheapest_flops, cheapest_latency = flops.min_cost(space.candidates), latency.min_cost(space.candidates)
    cons = [(flops, cheapest_flops), (latency, cheapest_latency)]
    S.check_reachable(space, cons)  # each budget alone is reachable...
    got = S.count_feasible(space, cons)
    assert got.exact and got.count == brute_force(space, cons) == 0  # ...but not both at once
    assert "No genotype of the 11,664 in the search space is within flops <= " in S.evaluation_budget_note(
        got, SearchConfig())
    relaxed = [(flops, cheapest_flops * 1.2), (latency, cheapest_latency + 20)]
    assert S.count_feasible(space, relaxed).count == brute_force(space, relaxed) > 0


def test_unconstrained_space_is_counted_without_enumeration():
    space, flops = make_space("m2", mode="paper")  # 7.2e16 genotypes
    got = S.count_feasible(space, [(flops, None)])
    assert got.exact and got.count == space.size and got.fraction == 1.0 and got.method == "unconstrained"


def test_estimate_lies_within_its_error_bars_on_a_large_space():
    space, flops = make_space("m2")  # 8.2e11 genotypes: exact by meet-in-the-middle, far too many to enumerate
    for fraction in (0.1, 0.3):
        budget = budget_at(space, flops, fraction)
        exact = S.count_feasible(space, [(flops, budget)])
        assert exact.exact and exact.space_size == space.size
        for seed in (0, 1, 2):
            est = S.count_feasible(space, [(flops, budget)], method="sample", samples=20000, seed=seed)
            assert not est.exact and est.method == "sampling" and est.samples == 20000
            p = est.fraction
            assert est.standard_error == pytest.approx(math.sqrt(p * (1 - p) / 20000) * space.size)
            assert 0 < est.standard_error and abs(est.count - exact.count) <= 4 * est.standard_error
        assert "estimate from 20,000 seeded samples" in est.describe()
        assert S.count_feasible(space, [(flops, budget)], method="sample", seed=0) == S.count_feasible(
            space, [(flops, budget)], method="sample", seed=0)  # seeded


def test_non_additive_models_are_estimated_and_exact_is_refused():
    space, flops = make_space(**SMALL_SPACES["m1-32x32x1-w0.25-lce"])

    class Wrapped:  # a cost model that is not additive as far as the counter knows
        name, unit = "flops", "FLOPs"

        def cost(self, g):
            return flops.cost(g)

    budget = budget_at(space, flops, 0.5)
    est = S.count_feasible(space, [(Wrapped(), budget)], samples=20000)
    assert not est.exact and abs(est.count - brute_force(space, [(flops, budget)])) <= 4 * est.standard_error
    with pytest.raises(ValueError, match="not an AdditiveCostModel.*method='sample'"):
        S.count_feasible(space, [(Wrapped(), budget)], method="exact")
    with pytest.raises(ValueError, match=r"Unknown counting method 'fast'; allowed: \['auto', 'exact', 'sample'\]"):
        S.count_feasible(space, [(flops, budget)], method="fast")


def test_note_when_the_feasible_set_is_smaller_than_the_evaluation_budget():
    space, flops = make_space("m1")
    budget = budget_at(space, flops, 0.01)
    got = S.count_feasible(space, [(flops, budget)])
    feasible = feasible_set(space, flops, budget)
    assert got.exact and got.count == len(feasible) < 50 * 20
    note = S.evaluation_budget_note(got, SearchConfig())
    assert f"Only {len(feasible)} genotypes are within flops <=" in note
    assert "fewer than the search's 1,000 evaluations (population 50 x iterations 20)" in note
    assert "exhaustive evaluation, or loosen the budget" in note
    # and so it is: the search evaluates exactly the feasible set
    ev = Recorder(lambda g: -sum(g))
    S.evolutionary_search(space, ev, [(flops, budget)], SearchConfig(), progress=False)
    assert sorted(ev.all) == sorted(feasible)
    loose = S.count_feasible(space, [(flops, budget_at(space, flops, 0.5))])
    assert S.evaluation_budget_note(loose, SearchConfig()) is None
    assert f"{int(loose.count):,} of {space.size:,} genotypes" in loose.describe() and "(exact" in loose.describe()


def test_check_reachable_refuses_an_impossible_budget_without_an_evaluator():
    space, flops = make_space("m1")
    cheapest = flops.min_cost(space.candidates)
    S.check_reachable(space, [(flops, cheapest)])
    with pytest.raises(ValueError, match=f"received {cheapest - 1:,.0f} FLOPs.*cheapest reachable.*{cheapest:,.0f}"):
        S.check_reachable(space, [(flops, cheapest - 1)])
    assert S.count_feasible(space, [(flops, cheapest - 1)]).count == 0
