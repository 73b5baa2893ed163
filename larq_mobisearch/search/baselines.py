"""The search's baselines (paper §4.2): random genotypes under the budgets, and uniform group counts.

`random_search` draws unique random genotypes under the budgets and scores them in batches of
``population``, with the same resumable state as the evolutionary search (`state.StateFile`, saved after
every batch): a run killed mid-way does not redo finished batches, and the resumed result equals the
uninterrupted one. `uniform_baselines` scores ``space.uniform(g)`` for a few g in one batch.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Dict, List, Optional, Sequence

from tqdm import tqdm

from ..config import SearchConfig
from ..nn.space import Genotype, encode
from .candidates import Candidate, SearchResult, best_candidate
from .problem import ConstraintLike, Problem, as_evaluator, check_config, normalize_constraints, score_checked
from .state import RANDOM_STATE_FILENAME, SearchState, StateFile, config_fingerprint, resolve_state_path

logger = logging.getLogger(__name__)

#: Uniform group counts of the uniform baselines (each clamped per layer with `SearchSpace.uniform`).
DEFAULT_UNIFORM_GROUPS = (1, 2, 4, 8, 16, 32)


def random_search(
    space,
    evaluator,
    constraints: Sequence[ConstraintLike] = (),
    config: Optional[SearchConfig] = None,
    *,
    num_samples: Optional[int] = None,
    seed: Optional[int] = None,
    progress: bool = True,
    state_path: Optional[str] = None,
    context: str = "",
    write_state: bool = True,
) -> SearchResult:
    """Random genotypes under the budgets, best by fitness (the search's equal-budget baseline).

    Genotypes are unique and scored in batches of ``config.population``; the genotypes drawn do not depend
    on the batching, so raising `num_samples` and re-running extends a finished run.

    # Arguments
        space, evaluator, constraints, config: as for `evolution.evolutionary_search`.
        num_samples: how many genotypes to evaluate. Default: ``config.random_baseline_samples``, else
            ``population * iterations`` (the evolutionary search's maximum); pass
            ``num_samples=evolution_result.num_evaluations`` for an exact match. 0 means no baseline.
        seed: the sampling seed (default ``config.seed``).
        progress: show a tqdm bar.
        state_path: ``random_search_state.json`` path (or its directory) saved after every batch and resumed
            from; None keeps no state.
        context: caller string entering the config hash (as for the evolutionary search).
        write_state: False reads `state_path` but never writes it (non-chief distributed workers).

    # Returns
        A `SearchResult` with method ``"random"``; for ``num_samples=0`` an empty one (``best`` None, nothing
        evaluated, no evaluator call, no state file).
    """
    cfg = config if config is not None else SearchConfig()
    check_config(cfg)
    constraints = normalize_constraints(constraints)
    problem = Problem(space, constraints, cfg.max_tries)
    problem.check_reachable()
    evaluator = as_evaluator(evaluator)
    n = num_samples if num_samples is not None else cfg.random_baseline_samples
    if n is None:
        n = cfg.population * cfg.iterations
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ValueError(f"num_samples must be an integer >= 0 (0: no random baseline), received {n!r}")
    n = int(n)
    seed = cfg.seed if seed is None else int(seed)
    settings = {"population": cfg.population, "max_tries": cfg.max_tries, "seed": seed}
    fingerprint = config_fingerprint(space, constraints, cfg, context, method="random", settings=settings)
    path = resolve_state_path(state_path, RANDOM_STATE_FILENAME) if n > 0 else None
    state_file = StateFile(path, fingerprint, problem, write=write_state, what="random search")
    state = state_file.load() or SearchState.fresh(seed)
    batches = math.ceil(n / cfg.population)
    with tqdm(total=n, initial=min(len(state.cache), n), desc="random search", unit="genotype",
              disable=not progress, leave=False) as bar:
        # Bounded: every pass evaluates at least one new genotype or stops.
        while len(state.cache) < n and not state.stopped_early:
            batch: List[Genotype] = []
            problem.fill_random(state.rng, batch, set(state.cache), min(cfg.population, n - len(state.cache)))
            if not batch:
                state.stopped_early = f"no new genotype within the budgets found after {len(state.cache)} samples"
                logger.warning("Random search stopped early: %s", state.stopped_early)
                state_file.save(state, batches)
                break
            scores = score_checked(evaluator, problem, batch)
            for g, f in zip(batch, scores):
                state.cache[g] = {"fitness": f, "costs": problem.costs(g), "generation": state.generation}
            best = best_candidate(state.candidates(), problem.cost_names)
            state.history.append(
                {
                    "generation": state.generation,
                    "population": len(batch),
                    "new_evaluations": len(batch),
                    "evaluations": len(state.cache),
                    "best": max(scores),
                    "mean": sum(scores) / len(scores),
                    "best_so_far": best.fitness,
                    "best_genotype": encode(best.genotype),
                }
            )
            state.population = batch
            state.generation += 1
            state_file.save(state, batches)  # the RNG state saved is the one after this batch
            bar.update(len(batch))
            bar.set_postfix(best=f"{best.fitness:.4g}")
    result = SearchResult.of("random", state.candidates(), problem.cost_names, problem.budgets, problem.units,
                             state.history, config_hash=state_file.config_hash, stopped_early=state.stopped_early)
    if result.best is not None:
        logger.info("Random search: %d evaluated, best %.6g (%s)", result.num_evaluations, result.best.fitness,
                    encode(result.best.genotype))
    return result


def uniform_baselines(
    space,
    evaluator,
    constraints: Sequence[ConstraintLike] = (),
    groups: Sequence[int] = DEFAULT_UNIFORM_GROUPS,
) -> SearchResult:
    """Evaluate the uniform genotypes ``space.uniform(g)`` for g in `groups` that fit the budgets (in a space
    with width genes, ``space.uniform(g, w)`` for every width multiplier w of the space too, labelled ``"g2w0.75"``).

    Duplicates (after per-layer clamping) are evaluated once, labelled e.g. ``"g16/g32"``. Those over budget
    are listed in `SearchResult.skipped` with their costs (``best`` is None when none fits). All are scored in
    one evaluator call. An impossible budget raises ValueError, as for the search.
    """
    problem = Problem(space, normalize_constraints(constraints), 1)
    problem.check_reachable()
    evaluator = as_evaluator(evaluator)
    labels: Dict[Genotype, List[str]] = {}
    widths = getattr(space, "width_choices", ()) or (None,)
    for w in widths:  # width spaces: the uniform (width, groups) grid
        for g in groups:
            genotype = tuple(int(x) for x in (space.uniform(int(g)) if w is None else space.uniform(int(g), w)))
            labels.setdefault(genotype, []).append(f"g{int(g)}" + ("" if w is None else f"w{w:g}"))
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
        scores = score_checked(evaluator, problem, feasible)
        candidates = [
            Candidate(g, f, problem.costs(g), label="/".join(labels[g])) for g, f in zip(feasible, scores)
        ]
    else:
        logger.warning("No uniform baseline fits the budgets %s", problem.budgets)
    return SearchResult.of("uniform", candidates, problem.cost_names, problem.budgets, problem.units,
                           skipped=skipped)
