"""What a search is asked to solve: a space, cost budgets and an evaluator, and the checks around them.

The searcher knows nothing about Keras. It sees:

- a search space (`nn.space.SearchSpace`: `.candidates` per gene, `.uniform(g)`),
- an **evaluator**: any object with ``score(genotypes) -> list[float]`` (higher is better, e.g. held-out top-1
  of the supernet after BatchNorm recalibration), called with batches of unseen genotypes,
- **constraints**: ``(cost_model, budget)`` pairs, where a cost model has ``name``, ``unit``,
  ``cost(genotype) -> float`` and optionally ``min_cost(allowed)``. A budget of ``None`` makes the model
  report-only (its cost is recorded and enters the Pareto front, but nothing is rejected).

`Problem` joins a space and its constraints: legality, costs, feasibility, the reachability check (an
impossible budget is refused before anything is evaluated) and bounded random sampling under the budgets.
`score_checked` is the one way the searches call an evaluator.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Protocol, Sequence, Set, Tuple, Union

from ..choices import SELECTIONS, not_allowed
from ..config import SearchConfig
from ..nn.space import Genotype, encode


class Evaluator(Protocol):
    """Scores genotypes; higher is better. Called with a batch of genotypes, returns one float each."""

    def score(self, genotypes: Sequence[Genotype]) -> List[float]:  # pragma: no cover - protocol
        ...


class CostModel(Protocol):
    """Cost of a genotype (FLOPs, latency, ...). `min_cost(allowed)` is optional."""

    name: str
    unit: str

    def cost(self, genotype: Genotype) -> float:  # pragma: no cover - protocol
        ...


class FunctionEvaluator:
    """Wrap a function ``genotype -> fitness`` as an `Evaluator` (one call per genotype)."""

    def __init__(self, fn):
        self.fn = fn

    def score(self, genotypes: Sequence[Genotype]) -> List[float]:
        return [float(self.fn(g)) for g in genotypes]


@dataclass(frozen=True)
class Constraint:
    """A cost model and its budget (``None``: report the cost only, no limit)."""

    model: Any
    budget: Optional[float] = None

    @property
    def name(self) -> str:
        return str(getattr(self.model, "name", type(self.model).__name__))

    @property
    def unit(self) -> str:
        return str(getattr(self.model, "unit", "") or "")


ConstraintLike = Union[Constraint, Tuple[Any, Optional[float]], Any]


def format_cost(value: Optional[float], unit: str = "") -> str:
    """Human-readable number: exact for integral values (``155,428,096 FLOPs``), 6 significant digits else."""
    if value is None:
        return "none"
    v = float(value)
    if math.isfinite(v) and v == round(v) and abs(v) < 1e18:
        text = f"{v:,.0f}"
    else:
        text = f"{v:.6g}"
    return f"{text} {unit}".strip()


def normalize_constraints(constraints: Iterable[ConstraintLike]) -> Tuple[Constraint, ...]:
    """Turn ``(model, budget)`` pairs, `Constraint`s or bare cost models (report-only) into `Constraint`s.

    A budget of ``inf`` means no limit (None); NaN, non-numbers and duplicated model names are refused.
    """
    out: List[Constraint] = []
    for item in constraints or ():
        if isinstance(item, Constraint):
            c = item
        elif isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise ValueError(f"A constraint is a (cost_model, budget) pair, received {item!r}")
            c = Constraint(item[0], item[1])
        else:
            c = Constraint(item, None)
        if not callable(getattr(c.model, "cost", None)):
            raise TypeError(f"Cost model {c.model!r} has no cost(genotype) method")
        budget = c.budget
        if budget is not None:
            try:
                budget = float(budget)
            except (TypeError, ValueError):
                raise ValueError(f"Budget for {c.name} must be a number or None, received {c.budget!r}") from None
            if math.isnan(budget):
                raise ValueError(f"Budget for {c.name} is NaN")
            if budget == math.inf:
                budget = None
        out.append(Constraint(c.model, budget))
    names = [c.name for c in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"Cost model names must be unique; duplicated: {dupes}")
    return tuple(out)


def constraints_from_config(space, config: SearchConfig, latency_model=None) -> List[Tuple[Any, Optional[float]]]:
    """``[(FlopsCostModel, config.flops_budget)]``, plus ``(latency_model, config.latency_budget_ms)`` if given.

    The FLOPs model is always included (report-only when ``flops_budget`` is None) so results carry FLOPs.
    """
    from .costs import flops_cost_model

    constraints: List[Tuple[Any, Optional[float]]] = [(flops_cost_model(space), config.flops_budget)]
    if latency_model is not None:
        constraints.append((latency_model, config.latency_budget_ms))
    elif config.latency_budget_ms is not None:
        raise ValueError(
            f"SearchConfig.latency_budget_ms={config.latency_budget_ms} needs a latency cost model "
            "(pass latency_model=..., e.g. built from SearchConfig.latency_table)"
        )
    return constraints


def check_config(config: SearchConfig) -> None:
    """Raise ValueError for settings Algorithm 1 cannot run with (all problems in one message)."""
    problems = []
    if config.population < 1:
        problems.append(f"population must be >= 1 (got {config.population})")
    if not 1 <= config.top_k <= max(config.population, 1):
        problems.append(f"top_k must be in [1, population={config.population}] (got {config.top_k})")
    if config.crossover < 0 or config.mutation < 0:
        problems.append(f"crossover and mutation must be >= 0 (got {config.crossover}, {config.mutation})")
    if config.crossover + config.mutation > config.population:
        problems.append(
            f"crossover + mutation ({config.crossover} + {config.mutation}) must not exceed population "
            f"({config.population}); the rest of the population is filled by random sampling"
        )
    if not 0.0 <= config.mutation_prob <= 1.0:
        problems.append(f"mutation_prob must be in [0, 1] (got {config.mutation_prob})")
    if config.iterations < 1:
        problems.append(f"iterations must be >= 1 (got {config.iterations})")
    if config.max_tries < 1:
        problems.append(f"max_tries must be >= 1 (got {config.max_tries})")
    if config.selection not in SELECTIONS:
        problems.append(str(not_allowed(f"unknown selection {config.selection!r}", SELECTIONS)))
    if problems:
        raise ValueError("Invalid search config: " + "; ".join(problems))


class Problem:
    """A search space under constraints: legality, costs, feasibility and budget-bounded random sampling.

    # Arguments
        space: the `SearchSpace` (anything with `.candidates`, one tuple of legal values per gene).
        constraints: `Constraint`s (see `normalize_constraints`).
        max_tries: bound on the draws of one `sample` call.
    """

    def __init__(self, space, constraints: Tuple[Constraint, ...], max_tries: int):
        self.space = space
        self.candidates: Tuple[Tuple[int, ...], ...] = tuple(tuple(int(g) for g in c) for c in space.candidates)
        if not self.candidates or any(len(c) == 0 for c in self.candidates):
            raise ValueError("The search space has a gene without candidate values")
        self._allowed = tuple(frozenset(c) for c in self.candidates)
        self.constraints = tuple(constraints)
        self.budgeted = tuple(c for c in self.constraints if c.budget is not None)
        self.max_tries = int(max_tries)
        self.size = 1
        for c in self.candidates:
            self.size *= len(c)
        self._canonical = getattr(space, "canonical", None)

    def canonical(self, g: Genotype) -> Genotype:
        """The space's canonical form of `g` (a joint width x groups space moves group counts its widths make
        illegal; identity otherwise): what crossover, mutation and sampling children become."""
        return tuple(self._canonical(g)) if self._canonical is not None else tuple(g)

    @property
    def cost_names(self) -> List[str]:
        return [c.name for c in self.constraints]

    @property
    def budgets(self) -> Dict[str, Optional[float]]:
        return {c.name: c.budget for c in self.constraints}

    @property
    def units(self) -> Dict[str, str]:
        return {c.name: c.unit for c in self.constraints}

    def legal(self, g: Genotype) -> bool:
        return (len(g) == len(self._allowed) and all(x in a for x, a in zip(g, self._allowed))
                and (self._canonical is None or self.canonical(g) == tuple(g)))

    def costs(self, g: Genotype) -> Dict[str, float]:
        return {c.name: float(c.model.cost(g)) for c in self.constraints}

    def within_budget(self, g: Genotype) -> bool:
        return all(float(c.model.cost(g)) <= c.budget for c in self.budgeted)

    def feasible(self, g: Genotype) -> bool:
        return self.legal(g) and self.within_budget(g)

    def violation(self, g: Genotype) -> float:
        """Sum of relative budget overshoots (0 when within every budget)."""
        total = 0.0
        for c in self.budgeted:
            over = float(c.model.cost(g)) - c.budget
            if over > 0:
                total += over / max(abs(c.budget), 1e-12)
        return total

    def check_reachable(self) -> None:
        """Raise ValueError if a budget is below the cheapest genotype of the space (when the model knows it)."""
        for c in self.budgeted:
            min_cost = getattr(c.model, "min_cost", None)
            if not callable(min_cost):
                continue
            cheapest = float(min_cost(self.candidates))
            if cheapest > c.budget:
                raise ValueError(
                    f"Impossible {c.name} budget: received {format_cost(c.budget, c.unit)}, but the cheapest "
                    f"reachable {c.name} in this search space is {format_cost(cheapest, c.unit)}. Raise the budget "
                    f"to at least {format_cost(cheapest, c.unit)} or widen the search space."
                )

    def sample(self, rng: random.Random, exclude) -> Optional[Genotype]:
        """A random legal genotype within every budget and not in `exclude`, or None.

        Rejection sampling (at most ``max_tries`` draws); if that fails under a tight budget, up to
        ``max_tries // 10`` bounded random repairs (move random genes to values that shrink the overshoot).
        """
        for _ in range(self.max_tries):
            g = self.canonical(tuple(rng.choice(c) for c in self.candidates))
            if g not in exclude and self.within_budget(g):
                return g
        if not self.budgeted:
            return None
        n = len(self.candidates)
        for _ in range(max(1, self.max_tries // 10)):
            # canonical before costing: a joint space's raw draw may hold group counts its widths make illegal
            genes = list(self.canonical(tuple(rng.choice(c) for c in self.candidates)))
            v = self.violation(tuple(genes))
            for _ in range(4 * n):
                if v <= 0:
                    break
                i = rng.randrange(n)
                options = []
                for value in self.candidates[i]:
                    if value == genes[i]:
                        continue
                    trial = list(self.canonical(tuple(genes[:i] + [value] + genes[i + 1 :])))
                    tv = self.violation(tuple(trial))
                    if tv < v:
                        options.append((trial, tv))
                if options:
                    genes, v = options[rng.randrange(len(options))]
            g = tuple(genes)  # canonical: every step above kept it so
            if g not in exclude and self.within_budget(g):
                return g
        return None

    def fill_random(self, rng: random.Random, population: List[Genotype], taken: Set[Genotype], target: int) -> int:
        """Append random feasible genotypes not in `taken` to `population` up to `target` (adding them to
        `taken`); return how many. Stops early when `sample` finds none or the space is exhausted."""
        added = 0
        while len(population) < target:
            if len(taken) >= self.size:
                break
            g = self.sample(rng, taken)
            if g is None:
                break
            population.append(g)
            taken.add(g)
            added += 1
        return added


def check_reachable(space, constraints: Sequence[ConstraintLike]) -> None:
    """Refuse an impossible budget before anything is trained or evaluated (cheap: no evaluator, no sampling).

    # Arguments
        space: the `SearchSpace`.
        constraints: ``(cost_model, budget)`` pairs as for the search.

    # Raises
        ValueError naming the budget received and the cheapest reachable cost, for every cost model that
        knows its minimum (`min_cost`, e.g. `FlopsCostModel` and `LatencyCostModel`). Budgets that are each
        reachable but not jointly are caught by `feasible.count_feasible` (count 0).
    """
    Problem(space, normalize_constraints(constraints), 1).check_reachable()


def as_evaluator(evaluator) -> Any:
    """`evaluator` itself if it has ``score(genotypes)``, a `FunctionEvaluator` around a plain function."""
    if callable(getattr(evaluator, "score", None)):
        return evaluator
    if callable(evaluator):
        return FunctionEvaluator(evaluator)
    raise TypeError(f"The evaluator must have a score(genotypes) method, received {evaluator!r}")


def score_checked(evaluator, problem: Problem, genotypes: List[Genotype]) -> List[float]:
    """One evaluator call: checks every genotype is feasible before, and one finite number per genotype after."""
    for g in genotypes:
        if not problem.feasible(g):  # pragma: no cover - guarded by construction
            raise RuntimeError(f"Internal error: genotype {encode(g)} outside the space or budget reached evaluation")
    scores = list(evaluator.score(list(genotypes)))
    if len(scores) != len(genotypes):
        raise ValueError(f"The evaluator returned {len(scores)} scores for {len(genotypes)} genotypes")
    out = []
    for g, s in zip(genotypes, scores):
        try:
            f = float(s)
        except (TypeError, ValueError):
            raise ValueError(f"The evaluator returned a non-numeric score {s!r} for genotype {encode(g)}") from None
        if not math.isfinite(f):
            raise ValueError(f"The evaluator returned a non-finite score {s!r} for genotype {encode(g)}")
        out.append(f)
    return out
