"""Evolutionary group-count search (Algorithm 1 of Phan et al., CVPR 2020), its baselines and resumable state.

Modules, one concept each (everything public is re-exported here):

- `problem`: the evaluator and cost-model protocols, constraints, the space+budgets `Problem`, checks;
- `candidates`: `Candidate`, `best_candidate`, `pareto_front` and `SearchResult`;
- `evolution`: crossover, mutation, parent selection and the loop (`evolutionary_search`);
- `baselines`: `random_search` (resumable) and `uniform_baselines`;
- `state`: the versioned, validated, atomically written JSON state file;
- `feasible`: how many genotypes fit the budgets (`count_feasible`), exact when it can be counted;
- `costs`: FLOPs counting and the additive cost models.
"""

from .baselines import DEFAULT_UNIFORM_GROUPS, random_search, uniform_baselines
from .candidates import Candidate, SearchResult, best_candidate, pareto_front
from .evolution import EvolutionarySearch, breed, crossover, evolutionary_search, mutate, select_parents
from .feasible import FeasibleCount, count_feasible, evaluation_budget_note
from .problem import (
    Constraint,
    ConstraintLike,
    CostModel,
    Evaluator,
    FunctionEvaluator,
    Problem,
    as_evaluator,
    check_config,
    check_reachable,
    constraints_from_config,
    format_cost,
    normalize_constraints,
    score_checked,
)
from .state import (
    HASH_EXCLUDED_FIELDS,
    RANDOM_STATE_FILENAME,
    STATE_FILENAME,
    STATE_VERSION,
    SearchState,
    SearchStateError,
    StateFile,
    config_fingerprint,
    describe_differences,
    resolve_state_path,
    rng_state_from_json,
    rng_state_to_json,
)

__all__ = [
    "Candidate", "Constraint", "ConstraintLike", "CostModel", "DEFAULT_UNIFORM_GROUPS", "EvolutionarySearch",
    "Evaluator", "FeasibleCount", "FunctionEvaluator", "HASH_EXCLUDED_FIELDS", "Problem", "RANDOM_STATE_FILENAME",
    "STATE_FILENAME", "STATE_VERSION", "SearchResult", "SearchState", "SearchStateError", "StateFile",
    "as_evaluator", "best_candidate", "breed", "check_config", "check_reachable", "config_fingerprint",
    "constraints_from_config", "count_feasible", "crossover", "describe_differences", "evaluation_budget_note",
    "evolutionary_search", "format_cost", "mutate", "normalize_constraints", "pareto_front", "random_search",
    "resolve_state_path", "rng_state_from_json", "rng_state_to_json", "score_checked", "select_parents",
    "uniform_baselines",
]
