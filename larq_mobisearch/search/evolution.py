"""Evolutionary group-count search (Algorithm 1 of Phan et al., CVPR 2020): operators, parent selection, loop.

With the paper's defaults in `config.SearchConfig` (population 50, top-K 10, 25 crossover, 25 mutation,
mutation probability 0.1, 20 generations):

1. The initial population is sampled at random under the budgets.
2. Every generation (``iterations`` evaluated generations, the initial one included): the unseen genotypes
   of the population are scored in one batch; the top-K become parents; ``crossover`` children come from
   uniform per-gene crossover of two random parents and ``mutation`` children from mutation of a random
   parent (each gene, with probability ``mutation_prob``, takes a uniformly chosen *other* candidate value).
   Children must be legal, within every budget and never evaluated before; missing children are filled in
   by random sampling under the budgets. Every loop is bounded by ``max_tries``; a short population is logged
   and the search continues with it (it stops when no new genotype can be produced).

Parent selection (``SearchConfig.selection``):

- ``"elitist"`` (default): the top-K of *every* genotype evaluated so far, a running elite as in the SPOS and
  MetaPruning code whose 50/10/25/25/0.1/20 settings the paper reuses. A good genotype stays a parent until
  K better ones are found.
- ``"generation"``: the top-K of the current generation only (the paper's Algorithm 1 read literally); a
  genotype is a parent for one generation and then forgotten.

Budgets are checked before any evaluation (`Problem.check_reachable`); every evaluated genotype satisfies
all budgets. The state (`state.StateFile`) is saved after every generation; re-running resumes, and raising
``iterations`` extends a finished search (``iterations`` is not part of the config hash).
"""

from __future__ import annotations

import contextlib
import logging
import random
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..config import SearchConfig
from ..nn.space import Genotype, encode
from .candidates import SearchResult, best_candidate
from .problem import (ConstraintLike, Problem, as_evaluator, check_config, format_cost, normalize_constraints,
                      score_checked)
from .state import SearchState, StateFile, config_fingerprint, resolve_state_path

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------------
# Operators


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


def select_parents(state: SearchState, top_k: int, selection: str = "elitist") -> List[Genotype]:
    """The `top_k` fittest of every evaluated genotype (``"elitist"``) or of the last generation
    (``"generation"``). Ties keep evaluation order (population order), so the choice is deterministic."""
    pool = list(state.cache) if selection == "elitist" else list(state.population)
    return sorted(pool, key=lambda g: -state.cache[g]["fitness"])[:top_k]  # sorted() is stable


def breed(
    parents: Sequence[Genotype], problem: Problem, config: SearchConfig, rng: random.Random, taken: Set[Genotype]
) -> Tuple[List[Genotype], Dict[str, int]]:
    """One generation of children: crossover, mutation, then random refill up to ``config.population``.

    Every child is feasible and not in `taken` (to which it is added). Every loop is bounded by ``max_tries``.

    # Returns
        The children and how many came from ``crossover``, ``mutation`` and ``random`` sampling.
    """
    cfg = config
    children: List[Genotype] = []
    counts = {"crossover": 0, "mutation": 0, "random": 0}

    def accept(child: Genotype) -> bool:
        child = problem.canonical(child)
        if child in taken or not problem.feasible(child):
            return False
        children.append(child)
        taken.add(child)
        return True

    parents = list(parents)
    if len(parents) >= 2:
        tries = 0
        while counts["crossover"] < cfg.crossover and tries < cfg.max_tries:
            tries += 1
            a, b = rng.sample(parents, 2)
            if accept(crossover(a, b, rng)):
                counts["crossover"] += 1
    if parents:
        tries = 0
        while counts["mutation"] < cfg.mutation and tries < cfg.max_tries:
            tries += 1
            parent = rng.choice(parents)
            if accept(mutate(parent, problem.candidates, cfg.mutation_prob, rng)):
                counts["mutation"] += 1
    counts["random"] = problem.fill_random(rng, children, taken, cfg.population)
    return children, counts


# --------------------------------------------------------------------------------------------------------
# The loop


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
        check_config(self.config)
        self.space = space
        self.evaluator = as_evaluator(evaluator)
        self.constraints = normalize_constraints(constraints)
        self.problem = Problem(space, self.constraints, self.config.max_tries)
        self.problem.check_reachable()
        self.context = str(context)
        self.state_path = resolve_state_path(state_path)
        self.progress = progress
        self.fingerprint = config_fingerprint(space, self.constraints, self.config, self.context, method=self.method)
        self.state_file = StateFile(self.state_path, self.fingerprint, self.problem, write=bool(write_state))
        self.config_hash = self.state_file.config_hash

    def load_state(self) -> Optional[SearchState]:
        """The saved state, None if there is none; `SearchStateError` if it cannot be resumed."""
        return self.state_file.load()

    def _save(self, state: SearchState) -> None:
        self.state_file.save(state, self.config.iterations)

    def _record(self, state: SearchState, gen: int, population: List[Genotype], counts) -> Dict[str, Any]:
        fits = [state.cache[g]["fitness"] for g in population]
        best = best_candidate(state.candidates(), self.problem.cost_names)
        entry = {
            "generation": gen,
            "population": len(population),
            "new_evaluations": len(population),
            "evaluations": len(state.cache),
            "best": max(fits),
            "mean": sum(fits) / len(fits),
            "best_so_far": best.fitness if best is not None else None,
            "best_genotype": encode(best.genotype) if best is not None else None,
        }
        entry.update({f"from_{k}": v for k, v in counts.items()})
        return entry

    def _next_population(self, state: SearchState) -> Tuple[List[Genotype], Dict[str, int]]:
        cfg, problem = self.config, self.problem
        if state.generation == 0:
            population: List[Genotype] = []
            n = problem.fill_random(state.rng, population, set(state.cache), cfg.population)
            if not population:
                budgets = ", ".join(f"{c.name} <= {format_cost(c.budget, c.unit)}" for c in problem.budgeted)
                raise ValueError(
                    f"No genotype within the budgets ({budgets}) was found in {cfg.max_tries} random samples and "
                    "repairs; raise the budgets"
                )
            return population, {"random": n}
        parents = select_parents(state, cfg.top_k, cfg.selection)
        return breed(parents, problem, cfg, state.rng, set(state.cache))

    def run(self) -> SearchResult:
        """Run (or resume) the search until ``config.iterations`` generations are evaluated."""
        cfg = self.config
        state = self.load_state()
        if state is None:
            state = SearchState.fresh(cfg.seed)
            logger.info(
                "Evolutionary search: %d genes, %.3g genotypes, budgets %s, population %d, %s top-%d, "
                "%d crossover + %d mutation, %d generations (config %s)",
                len(self.problem.candidates), self.problem.size,
                {c.name: format_cost(c.budget, c.unit) for c in self.problem.budgeted} or "none",
                cfg.population, cfg.selection, cfg.top_k, cfg.crossover, cfg.mutation, cfg.iterations,
                self.config_hash[:12],
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
            best = best_candidate(state.candidates(), self.problem.cost_names)
            if best is not None:
                bar.set_postfix(best=f"{best.fitness:.4g}", evals=len(state.cache))
            while state.generation < cfg.iterations and not state.stopped_early:
                gen = state.generation
                population, counts = self._next_population(state)
                if not population:
                    state.stopped_early = (
                        f"no new genotype within the budgets could be produced at generation {gen} "
                        f"({len(state.cache)} evaluated)"
                    )
                    logger.warning("Stopping the search early: %s", state.stopped_early)
                    self._save(state)
                    break
                if len(population) < cfg.population:
                    logger.warning(
                        "Generation %d: only %d of %d genotypes could be produced within the budgets and unseen "
                        "(%s); continuing with a smaller population",
                        gen, len(population), cfg.population, counts,
                    )
                # Every genotype of `population` is unseen by construction: one batch per generation.
                scores = score_checked(self.evaluator, self.problem, population)
                for g, f in zip(population, scores):
                    state.cache[g] = {"fitness": f, "costs": self.problem.costs(g), "generation": gen}
                entry = self._record(state, gen, population, counts)
                state.history.append(entry)
                state.population = population
                state.generation = gen + 1
                self._save(state)  # the RNG state saved is the one after this generation
                logger.info(
                    "Generation %d/%d: %d evaluated, best %.6g (overall %.6g, %s), mean %.6g",
                    gen + 1, cfg.iterations, len(population), entry["best"], entry["best_so_far"],
                    entry["best_genotype"], entry["mean"],
                )
                bar.update(1)
                bar.set_postfix(best=f"{entry['best_so_far']:.4g}", evals=len(state.cache))
        return self.result(state)

    def result(self, state: SearchState) -> SearchResult:
        p = self.problem
        return SearchResult.of(self.method, state.candidates(), p.cost_names, p.budgets, p.units, state.history,
                               config_hash=self.config_hash, stopped_early=state.stopped_early)


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
    """Run (or resume) Algorithm 1; see `EvolutionarySearch` for the arguments.

    # Returns
        A `SearchResult` (method ``"evolution"``): best candidate, every evaluated one, Pareto front, history.
    """
    return EvolutionarySearch(
        space, evaluator, constraints, config, state_path=state_path, context=context, progress=progress,
        write_state=write_state,
    ).run()
