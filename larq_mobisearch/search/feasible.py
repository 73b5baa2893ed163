"""How many genotypes fit the budgets: exact counting for additive costs, seeded sampling otherwise.

A search under a tight budget may have fewer feasible genotypes than its evaluation budget (population x
iterations); it then degenerates into evaluating all of them. `count_feasible` says how many there are,
before any supernet training, and `evaluation_budget_note` says so plainly.

Exact counting (FLOPs and latency are `costs.AdditiveCostModel`s: fixed + one table entry per gene) is a
meet-in-the-middle count: the genes are split into two halves, the partial cost sums of each half are
enumerated (NumPy), and the pairs whose total is within every budget are counted by binary search (one
budget) or by an offline 2-D dominance count (two budgets, merge-sort levels). Float rounding is handled
exactly: totals within a rigorous rounding bound of a budget are re-checked with the model's own
``cost(genotype) <= budget``, the test the search applies. Other cases (non-additive models, more than
two budgets, halves too large to enumerate) are estimated from seeded uniform samples with a standard error.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import List, Optional, Sequence, Set, Tuple

import numpy as np

from ..config import SearchConfig
from .costs import AdditiveCostModel
from .problem import Constraint, ConstraintLike, Problem, format_cost, normalize_constraints

#: Most partial sums enumerated per half (memory ~ 8 bytes x this x 4 arrays per budget).
DEFAULT_MAX_ENUMERATION = 1 << 21
#: Most totals near a budget (within the float rounding bound) re-checked one by one with ``cost()``.
DEFAULT_MAX_BORDERLINE = 100_000
DEFAULT_SAMPLES = 20_000
_METHODS = ("auto", "exact", "sample")
_U = 2.0**-53  # unit roundoff of float64


@dataclass(frozen=True)
class FeasibleCount:
    """Genotypes within every budget. `count` is an int when `exact`, else an estimate with `standard_error`."""

    count: float
    space_size: int
    fraction: float
    exact: bool
    method: str  # "unconstrained", "meet-in-the-middle" or "sampling"
    standard_error: float = 0.0  # of `count`
    samples: int = 0
    budgets: Tuple[Tuple[str, float, str], ...] = ()  # (name, budget, unit) of the budgeted constraints

    def describe(self) -> str:
        """One line, e.g. ``"1,234 of 737,280 genotypes (0.167%) are within flops <= 2e6 FLOPs (exact)"``."""
        within = " and ".join(f"{n} <= {format_cost(b, u)}" for n, b, u in self.budgets) or "no budget"
        if self.exact:
            head = f"{int(self.count):,} of {self.space_size:,} genotypes ({100 * self.fraction:.3g}%)"
            return f"{head} are within {within} (exact, {self.method})"
        return (
            f"about {self.count:.4g} ± {self.standard_error:.2g} of {self.space_size:.4g} genotypes "
            f"({100 * self.fraction:.3g}%) are within {within} (estimate from {self.samples:,} seeded samples)"
        )


def count_feasible(
    space,
    constraints: Sequence[ConstraintLike],
    *,
    method: str = "auto",
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    max_enumeration: int = DEFAULT_MAX_ENUMERATION,
    max_borderline: int = DEFAULT_MAX_BORDERLINE,
) -> FeasibleCount:
    """Number of genotypes of `space` within every budget of `constraints`.

    # Arguments
        space: the `SearchSpace` (anything with `.candidates`).
        constraints: ``(cost_model, budget)`` pairs as for the search (budget None: not counted against).
        method: "auto" (exact when possible, else sampling), "exact" (ValueError when not possible) or "sample".
        samples, seed: the uniform samples of an estimate (with replacement; standard error of a proportion).
        max_enumeration: largest half enumerated by the exact count.
        max_borderline: largest number of totals near a budget re-checked with ``cost()`` by the exact count.

    # Returns
        A `FeasibleCount`: count, space size, fraction, whether it is exact, and the standard error if not.
    """
    if method not in _METHODS:
        raise ValueError(f"Unknown counting method {method!r}; allowed: {list(_METHODS)}")
    problem = Problem(space, normalize_constraints(constraints), 1)
    budgets = tuple((c.name, float(c.budget), c.unit) for c in problem.budgeted)
    size = problem.size
    if not problem.budgeted:
        return FeasibleCount(size, size, 1.0, True, "unconstrained", budgets=budgets)
    if method != "sample":
        why = _exact_obstacle(problem, max_enumeration)
        if why is None:
            count = _count_exact(problem, max_enumeration, max_borderline)
            if count is not None:
                return FeasibleCount(count, size, count / size, True, "meet-in-the-middle", budgets=budgets)
            why = f"more than {max_borderline:,} totals lie within float rounding of a budget"
        if method == "exact":
            raise ValueError(f"Cannot count the feasible genotypes exactly: {why}; use method='sample'")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, received {samples!r}")
    rng = random.Random(seed)
    hits = sum(problem.within_budget(problem.canonical(tuple(rng.choice(c) for c in problem.candidates)))
               for _ in range(samples))
    p = hits / samples
    se = math.sqrt(p * (1.0 - p) / samples) * size
    return FeasibleCount(p * size, size, p, False, "sampling", standard_error=se, samples=samples, budgets=budgets)


def evaluation_budget_note(feasible: FeasibleCount, config: SearchConfig) -> Optional[str]:
    """A plain warning when fewer genotypes fit the budgets than the search would evaluate, else None.

    # Arguments
        feasible: from `count_feasible`.
        config: the `SearchConfig` (its ``population * iterations`` is the search's evaluation budget).
    """
    evaluations = config.population * config.iterations
    within = " and ".join(f"{n} <= {format_cost(b, u)}" for n, b, u in feasible.budgets)
    if feasible.exact and feasible.count == 0:
        return (f"No genotype of the {feasible.space_size:,} in the search space is within {within}: "
                "raise the budgets.")
    if feasible.count >= evaluations:
        return None
    if feasible.exact:
        n = f"{int(feasible.count):,}"
    else:
        n = f"about {feasible.count:.3g} (± {feasible.standard_error:.2g})"
    return (
        f"Only {n} genotypes are within {within}, fewer than the search's {evaluations:,} evaluations "
        f"(population {config.population} x iterations {config.iterations}): the search becomes an exhaustive "
        "evaluation, or loosen the budget."
    )


# --------------------------------------------------------------------------------------------------------
# Exact count


def _additive(c: Constraint) -> bool:
    m = c.model
    return isinstance(m, AdditiveCostModel) and type(m).cost is AdditiveCostModel.cost


def _exact_obstacle(problem: Problem, max_enumeration: int) -> Optional[str]:
    """Why the exact count cannot run, or None."""
    if len(problem.budgeted) > 2:
        return f"{len(problem.budgeted)} budgets (at most 2 are counted exactly)"
    for c in problem.budgeted:
        if not _additive(c):
            return f"the {c.name} cost model is not an AdditiveCostModel"
        if len(c.model.table) != len(problem.candidates) or any(
            g not in t for t, cands in zip(c.model.table, problem.candidates) for g in cands
        ):
            return f"the {c.name} cost table does not cover every candidate of the search space"
    if max(_split(problem.candidates)[1:]) > max_enumeration:
        return f"a half of the space has more than {max_enumeration:,} partial sums"
    return None


def _split(candidates) -> Tuple[int, int, int]:
    """(k, size of genes[:k], size of genes[k:]) with the larger half as small as possible."""
    sizes = [len(c) for c in candidates]
    best = None
    for k in range(len(sizes) + 1):
        a, b = math.prod(sizes[:k]), math.prod(sizes[k:])
        if best is None or max(a, b) < max(best[1], best[2]):
            best = (k, a, b)
    return best


def _sums(values: List[np.ndarray], start: float) -> np.ndarray:
    """Partial sums over all combinations (first gene slowest), each summed left to right from `start`."""
    s = np.array([start], dtype=np.float64)
    for v in values:
        s = (s[:, None] + v[None, :]).ravel()
    return s


def _count_exact(problem: Problem, max_enumeration: int, max_borderline: int) -> Optional[int]:
    cands = problem.candidates
    k = _split(cands)[0]
    shape_a, shape_b = [len(c) for c in cands[:k]], [len(c) for c in cands[k:]]
    A, B, T, E = [], [], [], []  # per budget: half sums, budget, rounding bound
    for c in problem.budgeted:
        m = c.model
        vals = [np.array([m.table[i][g] for g in cs], dtype=np.float64) for i, cs in enumerate(cands)]
        A.append(_sums(vals[:k], m.fixed))
        B.append(_sums(vals[k:], 0.0))
        scale = abs(m.fixed) + sum(float(np.abs(v).max()) for v in vals) + abs(c.budget)
        # |computed test - exact total| <= (2n+3)u*scale, and |cost() - exact| <= (n+1)u*scale: 4(n+2)u covers both.
        E.append(4.0 * (len(cands) + 2) * _U * scale)
        T.append(c.budget)
    order = [np.argsort(b, kind="stable") for b in B]
    sorted_b = [b[o] for b, o in zip(B, order)]
    if len(A) == 1:
        sure = int(np.searchsorted(sorted_b[0], (T[0] - E[0]) - A[0], side="right").sum())
    else:
        sure = _dominance_count(T[0] - E[0] - A[0], T[1] - E[1] - A[1], B[0], B[1])
    # Totals within the rounding bound of a budget (and at most that bound over the others) are re-checked.
    border: Set[Tuple[int, int]] = set()
    for j in range(len(A)):
        lo = np.searchsorted(sorted_b[j], (T[j] - E[j]) - A[j], side="right")
        hi = np.searchsorted(sorted_b[j], (T[j] + E[j]) - A[j], side="right")
        if int((hi - lo).sum()) > max_borderline:
            return None
        for i in np.nonzero(hi > lo)[0]:
            for jb in order[j][lo[i]:hi[i]]:
                if all(A[o][i] + B[o][jb] <= T[o] + E[o] for o in range(len(A)) if o != j):
                    border.add((int(i), int(jb)))
    extra = 0
    for i, jb in sorted(border):
        ia = np.unravel_index(i, shape_a) if shape_a else ()
        ib = np.unravel_index(jb, shape_b) if shape_b else ()
        g = tuple(c[int(x)] for c, x in zip(cands, tuple(ia) + tuple(ib)))
        extra += problem.within_budget(g)
    return sure + extra


def _dominance_count(q1: np.ndarray, q2: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> int:
    """Number of pairs (i, j) with p1[j] <= q1[i] and p2[j] <= q2[i] (offline, merge-sort levels).

    Points and queries are ordered by the first coordinate (a point before a query at equal value); a query
    then counts the earlier points whose second-coordinate rank is below its own. Every (earlier point,
    query) pair is counted once, at the level where both fall in one block but in different halves.
    """
    ys = np.sort(p2)
    rank = np.concatenate([np.searchsorted(ys, p2, side="left"), np.searchsorted(ys, q2, side="right")])
    is_query = np.concatenate([np.zeros(len(p1), dtype=bool), np.ones(len(q1), dtype=bool)])
    order = np.lexsort((is_query, np.concatenate([p1, q1])))
    rank, is_query = rank[order].astype(np.int64), is_query[order]
    n, K = len(order), len(ys) + 1
    pos = np.arange(n, dtype=np.int64)
    total, w = 0, 1
    while w < n:  # ceil(log2 n) levels
        block, right = pos // (2 * w), (pos // w) % 2 == 1
        left_points = np.sort(block[~right & ~is_query] * K + rank[~right & ~is_query])
        qb = block[right & is_query] * K
        total += int((np.searchsorted(left_points, qb + rank[right & is_query], side="left")
                      - np.searchsorted(left_points, qb, side="left")).sum())
        w *= 2
    return total
