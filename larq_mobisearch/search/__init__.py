"""Evolutionary group-count search (Algorithm 1 of Phan et al., CVPR 2020), baselines and resumable state.

The searcher knows nothing about Keras. It sees:

- a search space (`space.SearchSpace`: `.candidates` per gene, `.uniform(g)`),
- an **evaluator**: any object with ``score(genotypes) -> list[float]`` (higher is better, e.g. held-out top-1
  of the supernet after BatchNorm recalibration), called once per generation with only unseen genotypes,
- **constraints**: ``(cost_model, budget)`` pairs, where a cost model has ``name``, ``unit``,
  ``cost(genotype) -> float`` and optionally ``min_cost(allowed)``. A budget of ``None`` makes the model
  report-only (its cost is recorded and enters the Pareto front, but nothing is rejected).

Algorithm 1 (paper §3.2.1), with the paper's defaults in `config.SearchConfig`:

1. The initial population (50) is sampled at random under the budgets.
2. Every generation (``iterations`` = 20 evaluated generations, the initial one included): the unseen
   genotypes of the population are scored in one batch; the top-K (10) of the population become parents;
   25 children come from uniform per-gene crossover of two random parents and 25 from mutation of a random
   parent (each gene, with probability 0.1, takes a uniformly chosen *other* candidate value). Children must
   be legal, within every budget and never evaluated before; missing children are filled in by random
   sampling under the budgets. Every loop is bounded by ``max_tries``; a short population is logged and
   the search continues with it (it stops when no new genotype can be produced).

Budgets are checked before any evaluation: an impossible budget (below the cheapest genotype, from
``min_cost``) raises ValueError naming both numbers, and every evaluated genotype satisfies all budgets.

State (``search_state.json``, versioned, written atomically after every generation) holds the config hash,
the RNG state after the generation, the population, the fitness cache, the best genotype and the history.
Re-running with the same path resumes; a run killed mid-search and resumed gives exactly the same result as
an uninterrupted one (the evaluator never touches the search RNG). Raising ``iterations`` and re-running
extends a finished search (``iterations`` is not part of the config hash).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import random
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Iterable, List, Mapping, Optional, Protocol, Sequence, Set, Tuple, Union

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..config import SearchConfig
from ..nn.space import Genotype, decode, encode
from ..fileio import atomic_write_text

logger = logging.getLogger(__name__)

STATE_VERSION = 1
STATE_FILENAME = "search_state.json"
#: Uniform group counts of the uniform baselines (each clamped per layer with `SearchSpace.uniform`).
DEFAULT_UNIFORM_GROUPS = (1, 2, 4, 8, 16, 32)
#: SearchConfig fields that do not change the search's result (kept out of the config hash).
#: `iterations` only says when to stop, so a finished search can be extended by raising it.
HASH_EXCLUDED_FIELDS = ("iterations", "random_baseline_samples")

_STATE_KEYS = ("version", "config_hash", "generation", "rng_state", "population", "cache", "history")


# --------------------------------------------------------------------------------------------------------
# Interfaces


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


def _fmt(value: Optional[float], unit: str = "") -> str:
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
    """Turn ``(model, budget)`` pairs, `Constraint`s or bare cost models (report-only) into `Constraint`s."""
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
    from .costs import FlopsCostModel

    constraints: List[Tuple[Any, Optional[float]]] = [
        (FlopsCostModel(space.arch, space.candidates), config.flops_budget)
    ]
    if latency_model is not None:
        constraints.append((latency_model, config.latency_budget_ms))
    elif config.latency_budget_ms is not None:
        raise ValueError(
            f"SearchConfig.latency_budget_ms={config.latency_budget_ms} needs a latency cost model "
            "(pass latency_model=..., e.g. built from SearchConfig.latency_table)"
        )
    return constraints


def check_config(config: SearchConfig) -> None:
    """Raise ValueError for settings Algorithm 1 cannot run with."""
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
    if problems:
        raise ValueError("Invalid search config: " + "; ".join(problems))


# --------------------------------------------------------------------------------------------------------
# Genetic operators


def crossover(parent_a: Sequence[int], parent_b: Sequence[int], rng: random.Random) -> Genotype:
    """Uniform crossover: each gene from either parent with probability 1/2."""
    return tuple(a if rng.random() < 0.5 else b for a, b in zip(parent_a, parent_b))


def mutate(
    genotype: Sequence[int], candidates: Sequence[Sequence[int]], prob: float, rng: random.Random
) -> Genotype:
    """Each gene, with probability `prob`, takes a uniformly chosen other value among its candidates."""
    child = []
    for g, cands in zip(genotype, candidates):
        if len(cands) > 1 and rng.random() < prob:
            g = rng.choice([c for c in cands if c != g])
        child.append(g)
    return tuple(child)


# --------------------------------------------------------------------------------------------------------
# Results


@dataclass
class Candidate:
    """One evaluated genotype."""

    genotype: Genotype
    fitness: float
    costs: Dict[str, float]
    generation: Optional[int] = None
    label: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"genotype": encode(self.genotype), "fitness": self.fitness, "costs": dict(self.costs)}
        if self.generation is not None:
            d["generation"] = self.generation
        if self.label is not None:
            d["label"] = self.label
        return d


def pareto_front(candidates: Sequence[Candidate], cost_names: Optional[Sequence[str]] = None) -> List[Candidate]:
    """Non-dominated candidates (maximize fitness, minimize each cost in `cost_names`; default: all costs).

    Returned by ascending first cost. Candidates with identical objectives are all kept.
    """
    if not candidates:
        return []
    names = list(cost_names) if cost_names is not None else list(candidates[0].costs)

    def objectives(c: Candidate) -> Tuple[float, ...]:
        return tuple(float(c.costs[n]) for n in names)

    # Sorted by (-fitness, costs), a candidate can only be dominated by an earlier one, and if it is, then by
    # a member of the front built so far (dominance is transitive), so comparing to the front suffices.
    order = sorted(candidates, key=lambda c: (-c.fitness, objectives(c)))
    front: List[Tuple[Candidate, Tuple[float, ...]]] = []
    for c in order:
        oc = objectives(c)
        dominated = False
        for f, of in front:
            if f.fitness >= c.fitness and all(x <= y for x, y in zip(of, oc)) and (
                f.fitness > c.fitness or of != oc
            ):
                dominated = True
                break
        if not dominated:
            front.append((c, oc))
    return sorted((f for f, _ in front), key=lambda c: (objectives(c), -c.fitness))


def _best(candidates: Sequence[Candidate], cost_names: Sequence[str]) -> Optional[Candidate]:
    """Highest fitness; ties go to the cheaper (costs in order), then to the earlier evaluated."""
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c.fitness, tuple(-float(c.costs[n]) for n in cost_names)))


@dataclass
class SearchResult:
    """Outcome of a search or baseline: best candidate, all evaluated candidates, Pareto front, history."""

    method: str
    best: Optional[Candidate]
    evaluated: List[Candidate]
    pareto_front: List[Candidate]
    history: List[Dict[str, Any]]
    num_evaluations: int
    budgets: Dict[str, Optional[float]]
    units: Dict[str, str]
    config_hash: Optional[str] = None
    skipped: List[Dict[str, Any]] = field(default_factory=list)
    stopped_early: Optional[str] = None

    @property
    def best_genotype(self) -> Optional[Genotype]:
        return None if self.best is None else self.best.genotype

    @property
    def best_fitness(self) -> Optional[float]:
        return None if self.best is None else self.best.fitness

    @property
    def best_costs(self) -> Optional[Dict[str, float]]:
        return None if self.best is None else dict(self.best.costs)

    def _cost_name(self, cost_name: Optional[str]) -> str:
        if cost_name is None:
            if not self.units:
                raise ValueError("This result has no cost models")
            return next(iter(self.units))
        if cost_name not in self.units:
            raise ValueError(f"Unknown cost {cost_name!r}; this result has {list(self.units)}")
        return cost_name

    def points(self, cost_name: Optional[str] = None) -> List[Tuple[float, float]]:
        """(cost, fitness) of every evaluated genotype (cost: the first cost model by default)."""
        name = self._cost_name(cost_name)
        return [(c.costs[name], c.fitness) for c in self.evaluated]

    def front_points(self, cost_name: Optional[str] = None) -> List[Tuple[float, float]]:
        """(cost, fitness) of the Pareto front over this one cost (for a 2-D plot)."""
        name = self._cost_name(cost_name)
        return [(c.costs[name], c.fitness) for c in pareto_front(self.evaluated, [name])]

    def markers(self, cost_name: Optional[str] = None, prefix: str = "") -> Dict[str, Tuple[float, float]]:
        """``{label: (cost, fitness)}`` of labelled candidates (uniform baselines), or of the best one."""
        name = self._cost_name(cost_name)
        labelled = {prefix + c.label: (c.costs[name], c.fitness) for c in self.evaluated if c.label}
        if labelled:
            return labelled
        if self.best is None:
            return {}
        return {prefix + f"{self.method} best": (self.best.costs[name], self.best.fitness)}

    def to_dict(self, include_evaluated: bool = True) -> Dict[str, Any]:
        d: Dict[str, Any] = {
            "method": self.method,
            "best_genotype": None if self.best is None else encode(self.best.genotype),
            "best_fitness": self.best_fitness,
            "best_costs": self.best_costs,
            "num_evaluations": self.num_evaluations,
            "budgets": dict(self.budgets),
            "units": dict(self.units),
            "config_hash": self.config_hash,
            "history": [dict(h) for h in self.history],
            "pareto_front": [c.to_dict() for c in self.pareto_front],
        }
        if self.skipped:
            d["skipped"] = [dict(s) for s in self.skipped]
        if self.stopped_early:
            d["stopped_early"] = self.stopped_early
        if include_evaluated:
            d["evaluated"] = [c.to_dict() for c in self.evaluated]
        return d

    def to_json(self, indent: Optional[int] = 2, include_evaluated: bool = True) -> str:
        return json.dumps(self.to_dict(include_evaluated), indent=indent, allow_nan=False)

    def save(self, path: str, include_evaluated: bool = True) -> str:
        """Write `to_json()` atomically to `path`."""
        _atomic_write_text(path, self.to_json(include_evaluated=include_evaluated) + "\n")
        return path


# --------------------------------------------------------------------------------------------------------
# Problem: space + constraints


class _Problem:
    """Legality, budgets, costs and budget-bounded sampling over one space."""

    def __init__(self, space, constraints: Tuple[Constraint, ...], max_tries: int):
        self.space = space
        self.candidates: Tuple[Tuple[int, ...], ...] = tuple(tuple(int(g) for g in c) for c in space.candidates)
        if not self.candidates or any(len(c) == 0 for c in self.candidates):
            raise ValueError("The search space has a gene without candidate values")
        self._allowed = tuple(frozenset(c) for c in self.candidates)
        self.constraints = constraints
        self.budgeted = tuple(c for c in constraints if c.budget is not None)
        self.max_tries = int(max_tries)
        self.size = 1
        for c in self.candidates:
            self.size *= len(c)

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
        return len(g) == len(self._allowed) and all(x in a for x, a in zip(g, self._allowed))

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
                    f"Impossible {c.name} budget: received {_fmt(c.budget, c.unit)}, but the cheapest reachable "
                    f"{c.name} in this search space is {_fmt(cheapest, c.unit)}. Raise the budget to at least "
                    f"{_fmt(cheapest, c.unit)} or widen the search space."
                )

    def sample(self, rng: random.Random, exclude) -> Optional[Genotype]:
        """A random legal genotype within every budget and not in `exclude`, or None.

        Rejection sampling (at most ``max_tries`` draws); if that fails under a tight budget, up to
        ``max_tries // 10`` bounded random repairs (move random genes to values that shrink the overshoot).
        """
        for _ in range(self.max_tries):
            g = tuple(rng.choice(c) for c in self.candidates)
            if g not in exclude and self.within_budget(g):
                return g
        if not self.budgeted:
            return None
        n = len(self.candidates)
        for _ in range(max(1, self.max_tries // 10)):
            genes = [rng.choice(c) for c in self.candidates]
            v = self.violation(tuple(genes))
            for _ in range(4 * n):
                if v <= 0:
                    break
                i = rng.randrange(n)
                options = []
                for value in self.candidates[i]:
                    if value == genes[i]:
                        continue
                    trial = genes[:i] + [value] + genes[i + 1 :]
                    tv = self.violation(tuple(trial))
                    if tv < v:
                        options.append((value, tv))
                if options:
                    genes[i], v = options[rng.randrange(len(options))]
            g = tuple(genes)
            if v <= 0 and g not in exclude and self.within_budget(g):
                return g
        return None

    def fill_random(self, rng: random.Random, population: List[Genotype], taken: Set[Genotype], target: int) -> int:
        """Append random feasible unseen genotypes to `population` up to `target`; return how many."""
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


def _as_evaluator(evaluator) -> Any:
    if callable(getattr(evaluator, "score", None)):
        return evaluator
    if callable(evaluator):
        return FunctionEvaluator(evaluator)
    raise TypeError(f"The evaluator must have a score(genotypes) method, received {evaluator!r}")


def _score(evaluator, problem: _Problem, genotypes: List[Genotype]) -> List[float]:
    """One evaluator call; checks budgets before and the returned scores after."""
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


# --------------------------------------------------------------------------------------------------------
# State file


class SearchStateError(ValueError):
    """A search state file that cannot be resumed (corrupted, other version, or another config)."""


def config_fingerprint(
    space, constraints: Sequence[ConstraintLike], config: SearchConfig, context: str = ""
) -> Dict[str, Any]:
    """Everything that determines a search's result, as a JSON-able dict (hashed by `config_hash`)."""
    cons = normalize_constraints(constraints)
    candidates = [list(int(g) for g in c) for c in space.candidates]
    arch = getattr(space, "arch", None)
    arch_info = None
    if arch is not None:
        arch_info = {
            "module": getattr(arch, "module", None),
            "input_shape": list(getattr(arch, "input_shape", ()) or ()),
            "num_classes": getattr(arch, "num_classes", None),
            "width_multiplier": getattr(arch, "width_multiplier", None),
        }
    # Two reference costs per model catch a changed cost model (e.g. another latency table) with the same name.
    probes = [tuple(c[0] for c in candidates), tuple(c[-1] for c in candidates)]
    fingerprint = {
        "search": {k: v for k, v in config.model_dump().items() if k not in HASH_EXCLUDED_FIELDS},
        "space": {"mode": getattr(space, "mode", None), "arch": arch_info, "candidates": candidates},
        "constraints": [
            {
                "name": c.name,
                "unit": c.unit,
                "budget": c.budget,
                "reference_costs": [float(c.model.cost(p)) for p in probes],
            }
            for c in cons
        ],
        "context": str(context),
    }
    # Normalized to plain JSON so the copy stored in the state file compares equal to a fresh one.
    return json.loads(json.dumps(fingerprint, default=str))


def config_hash(fingerprint: Mapping[str, Any]) -> str:
    text = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _flatten(obj: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(obj, dict):
        out: Dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: obj}


def _describe_differences(saved: Any, current: Mapping[str, Any], limit: int = 6) -> str:
    if not isinstance(saved, dict):
        return ""
    a, b = _flatten(saved), _flatten(json.loads(json.dumps(current, default=str)))
    diffs = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<missing>") != b.get(key, "<missing>"):
            va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
            if key.endswith("candidates"):
                diffs.append(f"{key} (search space changed)")
            else:
                diffs.append(f"{key}: {va!r} in the file, {vb!r} now")
    if not diffs:
        return ""
    more = f" (and {len(diffs) - limit} more)" if len(diffs) > limit else ""
    return " Differences: " + "; ".join(diffs[:limit]) + more + "."


def _rng_state_to_json(state) -> List[Any]:
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]


def _rng_state_from_json(data) -> Tuple[Any, ...]:
    if not (isinstance(data, list) and len(data) == 3 and isinstance(data[1], list)):
        raise ValueError("rng_state must be [version, [ints], gauss_next]")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in data[1]):
        raise ValueError("rng_state internal state must be integers")
    state = (data[0], tuple(data[1]), data[2])
    random.Random().setstate(state)  # raises on a malformed state
    return state


_atomic_write_text = atomic_write_text


def resolve_state_path(state_path: Optional[str]) -> Optional[str]:
    """A path ending in ``.json`` is the state file; any other path is a run directory holding
    ``search_state.json`` (created when the first generation is saved). None disables the state file."""
    if state_path is None:
        return None
    state_path = os.fspath(state_path)
    if state_path.lower().endswith(".json") and not os.path.isdir(state_path):
        return state_path
    return os.path.join(state_path, STATE_FILENAME)


@dataclass
class _State:
    generation: int  # generations completed (evaluated)
    rng: random.Random
    population: List[Genotype]
    cache: Dict[Genotype, Dict[str, Any]]  # genotype -> {"fitness", "costs", "generation"}
    history: List[Dict[str, Any]]
    stopped_early: Optional[str] = None


# --------------------------------------------------------------------------------------------------------
# Evolutionary search


class EvolutionarySearch:
    """Algorithm 1: evolutionary search for group counts under cost budgets. See the module docstring.

    # Arguments
        space: the `SearchSpace` (anything with `.candidates`; `.arch`/`.mode` enter the config hash).
        evaluator: object with `score(genotypes) -> list[float]` (or a function genotype -> float).
        constraints: `(cost_model, budget)` pairs; budget None = report-only. Checked before evaluation.
        config: `SearchConfig` (paper defaults when None).
        state_path: `search_state.json` path (or its directory) to save after every generation and resume
            from; None keeps no state.
        context: caller string entering the config hash, e.g. the supernet checkpoint id and the held-out
            data settings: anything that changes fitness values must be in it.
        progress: show a tqdm bar over generations.
        write_state: False reads (resumes from) `state_path` but never writes it: the non-chief workers of
            a distributed search, which run the same deterministic loop as the chief.
    """

    method = "evolution"

    def __init__(
        self,
        space,
        evaluator,
        constraints: Sequence[ConstraintLike] = (),
        config: Optional[SearchConfig] = None,
        *,
        state_path: Optional[str] = None,
        context: str = "",
        progress: bool = True,
        write_state: bool = True,
    ):
        self.config = config if config is not None else SearchConfig()
        self.write_state = bool(write_state)
        check_config(self.config)
        self.space = space
        self.evaluator = _as_evaluator(evaluator)
        self.constraints = normalize_constraints(constraints)
        self.problem = _Problem(space, self.constraints, self.config.max_tries)
        self.problem.check_reachable()
        self.context = str(context)
        self.state_path = resolve_state_path(state_path)
        self.progress = progress
        self.fingerprint = config_fingerprint(space, self.constraints, self.config, self.context)
        self.config_hash = config_hash(self.fingerprint)

    # ---- state ----

    def _fresh_state(self) -> _State:
        return _State(0, random.Random(self.config.seed), [], {}, [])

    def _state_error(self, why: str) -> SearchStateError:
        return SearchStateError(
            f"Cannot resume the search from {self.state_path}: {why}. The file was left untouched; delete it "
            f"or use another run directory to start a new search."
        )

    def load_state(self) -> Optional[_State]:
        """The saved state, None if there is no file; SearchStateError if it cannot be resumed."""
        path = self.state_path
        if path is None or not os.path.exists(path):
            return None
        try:
            with open(path, "r", encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, UnicodeDecodeError) as exc:
            raise self._state_error(f"the file cannot be read ({exc})") from exc
        except json.JSONDecodeError as exc:
            raise self._state_error(f"the file is corrupted (not valid JSON: {exc})") from exc
        if not isinstance(data, dict):
            raise self._state_error("the file is corrupted (the top level is not a JSON object)")
        if data.get("version") != STATE_VERSION:
            raise self._state_error(
                f"unsupported state version {data.get('version')!r} (this code reads version {STATE_VERSION})"
            )
        missing = [k for k in _STATE_KEYS if k not in data]
        if missing:
            raise self._state_error(f"the file is corrupted (missing keys: {', '.join(missing)})")
        if data["config_hash"] != self.config_hash:
            raise SearchStateError(
                f"The search state {path} belongs to a different search configuration (config hash "
                f"{str(data['config_hash'])[:12]}..., this run has {self.config_hash[:12]}...)."
                + _describe_differences(data.get("config"), self.fingerprint)
                + " It was not overwritten. To start a new search, delete the file or use another run "
                "directory; to resume it, re-run with the same search config, budgets, search space and context."
            )
        try:
            generation = data["generation"]
            if not isinstance(generation, int) or isinstance(generation, bool) or generation < 0:
                raise ValueError(f"generation must be a non-negative integer, found {generation!r}")
            rng = random.Random()
            rng.setstate(_rng_state_from_json(data["rng_state"]))
            if not isinstance(data["cache"], dict):
                raise ValueError("cache must be an object")
            cache: Dict[Genotype, Dict[str, Any]] = {}
            names = set(self.problem.cost_names)
            for key, entry in data["cache"].items():
                g = decode(key)
                if not self.problem.legal(g):
                    raise ValueError(f"cached genotype {key} is not in the search space")
                fitness = float(entry["fitness"])
                costs = {str(k): float(v) for k, v in dict(entry["costs"]).items()}
                if set(costs) != names:
                    raise ValueError(f"cached genotype {key} has costs {sorted(costs)}, expected {sorted(names)}")
                gen = entry.get("generation")
                cache[g] = {"fitness": fitness, "costs": costs, "generation": None if gen is None else int(gen)}
            if not isinstance(data["population"], list):
                raise ValueError("population must be a list")
            population = [decode(s) for s in data["population"]]
            unknown = [encode(g) for g in population if g not in cache]
            if unknown:
                raise ValueError(f"population genotypes missing from the cache: {unknown[:3]}")
            if generation > 0 and not population:
                raise ValueError("empty population after a completed generation")
            history = data["history"]
            if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
                raise ValueError("history must be a list of objects")
            if len(history) != generation:
                raise ValueError(f"history has {len(history)} entries for {generation} completed generations")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise self._state_error(f"the file is corrupted ({type(exc).__name__}: {exc})") from exc
        return _State(generation, rng, population, cache, history, data.get("stopped_early"))

    def _save_state(self, state: _State) -> None:
        if self.state_path is None or not self.write_state:
            return
        best = self._best(state)
        data = {
            "version": STATE_VERSION,
            "config_hash": self.config_hash,
            "config": self.fingerprint,
            "generation": state.generation,
            "iterations": self.config.iterations,
            "rng_state": _rng_state_to_json(state.rng.getstate()),
            "population": [encode(g) for g in state.population],
            "cache": {
                encode(g): {"fitness": e["fitness"], "costs": e["costs"], "generation": e["generation"]}
                for g, e in state.cache.items()
            },
            "best": None if best is None else best.to_dict(),
            "history": state.history,
            "stopped_early": state.stopped_early,
        }
        _atomic_write_text(self.state_path, json.dumps(data, indent=1, allow_nan=False) + "\n")

    # ---- algorithm ----

    def _candidates(self, state: _State) -> List[Candidate]:
        return [Candidate(g, e["fitness"], dict(e["costs"]), e["generation"]) for g, e in state.cache.items()]

    def _best(self, state: _State) -> Optional[Candidate]:
        return _best(self._candidates(state), self.problem.cost_names)

    def _initial_population(self, state: _State) -> List[Genotype]:
        population: List[Genotype] = []
        taken = set(state.cache)
        self.problem.fill_random(state.rng, population, taken, self.config.population)
        return population

    def _breed(self, state: _State) -> Tuple[List[Genotype], Dict[str, int]]:
        """Children of the top-K of the current population: crossover, mutation, then random refill."""
        cfg, problem, rng = self.config, self.problem, state.rng
        fitness = {g: state.cache[g]["fitness"] for g in state.population}
        parents = sorted(state.population, key=lambda g: -fitness[g])[: cfg.top_k]  # stable: ties keep order
        taken: Set[Genotype] = set(state.cache)
        children: List[Genotype] = []
        counts = {"crossover": 0, "mutation": 0, "random": 0}

        def accept(child: Genotype) -> bool:
            if child in taken or not problem.feasible(child):
                return False
            children.append(child)
            taken.add(child)
            return True

        if len(parents) >= 2:
            tries = 0
            while counts["crossover"] < cfg.crossover and tries < cfg.max_tries:
                tries += 1
                a, b = rng.sample(parents, 2)
                if accept(crossover(a, b, rng)):
                    counts["crossover"] += 1
        tries = 0
        while counts["mutation"] < cfg.mutation and tries < cfg.max_tries:
            tries += 1
            parent = rng.choice(parents)
            if accept(mutate(parent, problem.candidates, cfg.mutation_prob, rng)):
                counts["mutation"] += 1
        counts["random"] = problem.fill_random(rng, children, taken, cfg.population)
        return children, counts

    def _record(self, state: _State, gen: int, population: List[Genotype], new: int, counts) -> Dict[str, Any]:
        fits = [state.cache[g]["fitness"] for g in population]
        best = self._best(state)
        entry = {
            "generation": gen,
            "population": len(population),
            "new_evaluations": new,
            "evaluations": len(state.cache),
            "best": max(fits),
            "mean": sum(fits) / len(fits),
            "best_so_far": best.fitness if best is not None else None,
            "best_genotype": encode(best.genotype) if best is not None else None,
        }
        if counts:
            entry.update({f"from_{k}": v for k, v in counts.items()})
        return entry

    def run(self) -> SearchResult:
        cfg = self.config
        state = self.load_state()
        if state is None:
            state = self._fresh_state()
            logger.info(
                "Evolutionary search: %d genes, %.3g genotypes, budgets %s, population %d, top-%d, "
                "%d crossover + %d mutation, %d generations (config %s)",
                len(self.problem.candidates), self.problem.size,
                {c.name: _fmt(c.budget, c.unit) for c in self.problem.budgeted} or "none",
                cfg.population, cfg.top_k, cfg.crossover, cfg.mutation, cfg.iterations, self.config_hash[:12],
            )
        else:
            logger.info(
                "Resuming the search from %s at generation %d/%d (%d genotypes evaluated)",
                self.state_path, state.generation, cfg.iterations, len(state.cache),
            )
        with contextlib.ExitStack() as stack:
            if self.progress:
                stack.enter_context(logging_redirect_tqdm())
            bar = stack.enter_context(
                tqdm(
                    total=cfg.iterations, initial=min(state.generation, cfg.iterations), desc="evolutionary search",
                    unit="gen", disable=not self.progress, leave=False,
                )
            )
            best = self._best(state)
            if best is not None:
                bar.set_postfix(best=f"{best.fitness:.4g}", evals=len(state.cache))
            while state.generation < cfg.iterations and not state.stopped_early:
                gen = state.generation
                if gen == 0:
                    population, counts = self._initial_population(state), {"random": 0}
                    counts["random"] = len(population)
                    if not population:
                        raise ValueError(
                            f"No genotype within the budgets "
                            f"({', '.join(f'{c.name} <= {_fmt(c.budget, c.unit)}' for c in self.problem.budgeted)})"
                            f" was found in {cfg.max_tries} random samples and repairs; raise the budgets"
                        )
                else:
                    population, counts = self._breed(state)
                if not population:
                    state.stopped_early = (
                        f"no new genotype within the budgets could be produced at generation {gen} "
                        f"({len(state.cache)} evaluated)"
                    )
                    logger.warning("Stopping the search early: %s", state.stopped_early)
                    self._save_state(state)
                    break
                if len(population) < cfg.population:
                    logger.warning(
                        "Generation %d: only %d of %d genotypes could be produced within the budgets and unseen "
                        "(%s); continuing with a smaller population",
                        gen, len(population), cfg.population, counts,
                    )
                # Every genotype of `population` is unseen by construction: one batch per generation.
                scores = _score(self.evaluator, self.problem, population)
                for g, f in zip(population, scores):
                    state.cache[g] = {"fitness": f, "costs": self.problem.costs(g), "generation": gen}
                entry = self._record(state, gen, population, len(population), counts)
                state.history.append(entry)
                state.population = population
                state.generation = gen + 1
                self._save_state(state)  # the RNG state saved is the one after this generation
                logger.info(
                    "Generation %d/%d: %d evaluated, best %.6g (overall %.6g, %s), mean %.6g",
                    gen + 1, cfg.iterations, len(population), entry["best"], entry["best_so_far"],
                    entry["best_genotype"], entry["mean"],
                )
                bar.update(1)
                bar.set_postfix(best=f"{entry['best_so_far']:.4g}", evals=len(state.cache))
        return self.result(state)

    def result(self, state: _State) -> SearchResult:
        candidates = self._candidates(state)
        return SearchResult(
            method=self.method,
            best=_best(candidates, self.problem.cost_names),
            evaluated=candidates,
            pareto_front=pareto_front(candidates, self.problem.cost_names),
            history=[dict(h) for h in state.history],
            num_evaluations=len(candidates),
            budgets=self.problem.budgets,
            units=self.problem.units,
            config_hash=self.config_hash,
            stopped_early=state.stopped_early,
        )


def evolutionary_search(
    space,
    evaluator,
    constraints: Sequence[ConstraintLike] = (),
    config: Optional[SearchConfig] = None,
    *,
    state_path: Optional[str] = None,
    context: str = "",
    progress: bool = True,
    write_state: bool = True,
) -> SearchResult:
    """Run (or resume) Algorithm 1; see `EvolutionarySearch`."""
    return EvolutionarySearch(
        space, evaluator, constraints, config, state_path=state_path, context=context, progress=progress,
        write_state=write_state,
    ).run()


# --------------------------------------------------------------------------------------------------------
# Baselines


def random_search(
    space,
    evaluator,
    constraints: Sequence[ConstraintLike] = (),
    config: Optional[SearchConfig] = None,
    *,
    num_samples: Optional[int] = None,
    seed: Optional[int] = None,
    progress: bool = True,
) -> SearchResult:
    """Random genotypes under the budgets, best by fitness (the search's equal-budget baseline).

    `num_samples` defaults to ``config.random_baseline_samples``, else ``population * iterations`` (the
    evolutionary search's maximum); pass ``num_samples=evolution_result.num_evaluations`` for an exact match.
    Genotypes are unique and scored in batches of ``config.population``.
    """
    cfg = config if config is not None else SearchConfig()
    check_config(cfg)
    problem = _Problem(space, normalize_constraints(constraints), cfg.max_tries)
    problem.check_reachable()
    evaluator = _as_evaluator(evaluator)
    n = num_samples if num_samples is not None else cfg.random_baseline_samples
    if n is None:
        n = cfg.population * cfg.iterations
    n = int(n)
    if n < 1:
        raise ValueError(f"num_samples must be >= 1, received {n}")
    rng = random.Random(cfg.seed if seed is None else seed)
    taken: Set[Genotype] = set()
    candidates: List[Candidate] = []
    history: List[Dict[str, Any]] = []
    stopped = None
    with tqdm(total=n, desc="random search", unit="genotype", disable=not progress, leave=False) as bar:
        batch_index = 0
        while len(candidates) < n:
            batch: List[Genotype] = []
            problem.fill_random(rng, batch, taken, min(cfg.population, n - len(candidates)))
            if not batch:
                stopped = f"no new genotype within the budgets found after {len(candidates)} samples"
                logger.warning("Random search stopped early: %s", stopped)
                break
            scores = _score(evaluator, problem, batch)
            for g, f in zip(batch, scores):
                candidates.append(Candidate(g, f, problem.costs(g), batch_index))
            best = _best(candidates, problem.cost_names)
            history.append(
                {
                    "generation": batch_index,
                    "population": len(batch),
                    "new_evaluations": len(batch),
                    "evaluations": len(candidates),
                    "best": max(scores),
                    "mean": sum(scores) / len(scores),
                    "best_so_far": best.fitness,
                    "best_genotype": encode(best.genotype),
                }
            )
            batch_index += 1
            bar.update(len(batch))
            bar.set_postfix(best=f"{best.fitness:.4g}")
    best = _best(candidates, problem.cost_names)
    if best is not None:
        logger.info("Random search: %d evaluated, best %.6g (%s)", len(candidates), best.fitness, encode(best.genotype))
    return SearchResult(
        method="random",
        best=best,
        evaluated=candidates,
        pareto_front=pareto_front(candidates, problem.cost_names),
        history=history,
        num_evaluations=len(candidates),
        budgets=problem.budgets,
        units=problem.units,
        stopped_early=stopped,
    )


def uniform_baselines(
    space,
    evaluator,
    constraints: Sequence[ConstraintLike] = (),
    groups: Sequence[int] = DEFAULT_UNIFORM_GROUPS,
) -> SearchResult:
    """Evaluate the uniform genotypes ``space.uniform(g)`` for g in `groups` that fit the budgets.

    Duplicates (after per-layer clamping) are evaluated once, labelled e.g. ``"g16/g32"``. Those over budget
    are listed in `SearchResult.skipped` with their costs (``best`` is None when none fits). All are scored in
    one evaluator call. An impossible budget raises ValueError, as for the search.
    """
    problem = _Problem(space, normalize_constraints(constraints), 1)
    problem.check_reachable()
    evaluator = _as_evaluator(evaluator)
    labels: Dict[Genotype, List[str]] = {}
    for g in groups:
        genotype = tuple(int(x) for x in space.uniform(int(g)))
        labels.setdefault(genotype, []).append(f"g{int(g)}")
    feasible: List[Genotype] = []
    skipped: List[Dict[str, Any]] = []
    for genotype, names in labels.items():
        label = "/".join(names)
        if problem.feasible(genotype):
            feasible.append(genotype)
            continue
        costs = problem.costs(genotype)
        over = [c.name for c in problem.budgeted if costs[c.name] > c.budget]
        skipped.append({"label": label, "genotype": encode(genotype), "costs": costs, "over_budget": over})
        logger.info("Uniform baseline %s (%s) is over budget (%s); skipped", label, encode(genotype), ", ".join(over))
    candidates: List[Candidate] = []
    if feasible:
        scores = _score(evaluator, problem, feasible)
        candidates = [
            Candidate(g, f, problem.costs(g), label="/".join(labels[g])) for g, f in zip(feasible, scores)
        ]
    else:
        logger.warning("No uniform baseline fits the budgets %s", problem.budgets)
    return SearchResult(
        method="uniform",
        best=_best(candidates, problem.cost_names),
        evaluated=candidates,
        pareto_front=pareto_front(candidates, problem.cost_names),
        history=[],
        num_evaluations=len(candidates),
        budgets=problem.budgets,
        units=problem.units,
        skipped=skipped,
    )
