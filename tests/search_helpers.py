"""Shared helpers of the search tests: spaces, a recording evaluator, and exact references (DP, enumeration)."""

import math

from larq_mobisearch.config import SearchConfig
from larq_mobisearch.nn.space import SearchSpace
from larq_mobisearch.nn.specs import architecture
from larq_mobisearch.search.costs import FlopsCostModel


def make_space(module="m1", mode="lce", max_groups=None, input_shape=(224, 224, 3), num_classes=1000, width=1.0):
    arch = architecture(module, input_shape, num_classes, width)
    space = SearchSpace(arch, mode, max_groups=max_groups)
    return space, FlopsCostModel(arch, space.candidates)


class Killed(Exception):
    pass


class Recorder:
    """Evaluator recording every batch; fitness from `fn`; raises `Killed` on call number `fail_on_call`."""

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


def fit_m1(g):
    return -sum((math.log2(x) - 2.0) ** 2 * (1 + i % 3) for i, x in enumerate(g))
