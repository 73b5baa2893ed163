"""Resumable search state: one versioned JSON file per search, written atomically after every generation.

A state file holds the config fingerprint and its hash, the RNG state after the last completed generation
(or random-search batch), the last population, the fitness cache (every genotype evaluated, in evaluation
order), the best genotype and the history. It is validated with pydantic models on load; a file that
cannot be resumed raises `SearchStateError` naming the file and the offending key, and is left untouched:

- not JSON, other version, missing or unknown keys, wrong types, genotypes outside the space: "corrupted";
- another configuration (hash differs): refused, listing the differing keys (`fingerprint.diff_keys`).

Re-running with the same path resumes; the searches never let the evaluator touch their RNG, so a run
killed and resumed gives exactly the uninterrupted result.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from typing import Annotated, Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..choices import DEFAULT_STEM
from ..config import SearchConfig
from ..fileio import atomic_write_text
from ..fingerprint import MISSING, diff_keys, stable_hash
from ..nn.space import Genotype, decode, encode
from .candidates import Candidate, best_candidate
from .problem import ConstraintLike, Problem, normalize_constraints

STATE_VERSION = 1
#: File name of the evolutionary search's state in a run directory.
STATE_FILENAME = "search_state.json"
#: File name of the random baseline's state in a run directory.
RANDOM_STATE_FILENAME = "random_search_state.json"
#: SearchConfig fields that do not change the search's result (kept out of the config hash).
#: `iterations` only says when to stop, so a finished search can be extended by raising it.
HASH_EXCLUDED_FIELDS = ("iterations", "random_baseline_samples")


class SearchStateError(ValueError):
    """A search state file that cannot be resumed (corrupted, other version, or another config)."""


# --------------------------------------------------------------------------------------------------------
# Fingerprint


def search_settings(config: Any) -> Dict[str, Any]:
    """All fields of a search config (`config.SearchConfig`) as a plain dict."""
    if callable(getattr(config, "model_dump", None)):
        return dict(config.model_dump())
    raise TypeError(f"Expected a SearchConfig, received {config!r}")


def config_fingerprint(
    space,
    constraints: Sequence[ConstraintLike],
    config: SearchConfig,
    context: str = "",
    *,
    method: str = "evolution",
    settings: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Everything that determines a search's result, as a plain JSON dict (hashed with `stable_hash`).

    # Arguments
        space, constraints, config, context: as for the search.
        method: "evolution" or "random" (a state file of one is refused by the other).
        settings: the config values that matter (default: every `config` field but `HASH_EXCLUDED_FIELDS`).
    """
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
        if getattr(arch, "stem_kind", DEFAULT_STEM) != DEFAULT_STEM:  # absent for the default: old hashes hold
            arch_info["stem"] = arch.stem_kind
    if settings is None:
        settings = {k: v for k, v in search_settings(config).items() if k not in HASH_EXCLUDED_FIELDS}
    # Two reference costs per model catch a changed cost model (e.g. another latency table) with the same name.
    probes = [tuple(c[0] for c in candidates), tuple(c[-1] for c in candidates)]
    fingerprint = {
        "method": method,
        "search": dict(settings),
        "space": {"mode": getattr(space, "mode", None), "arch": arch_info, "candidates": candidates},
        "constraints": [
            {"name": c.name, "unit": c.unit, "budget": c.budget,
             "reference_costs": [float(c.model.cost(p)) for p in probes]}
            for c in cons
        ],
        "context": str(context),
    }
    # Normalized to plain JSON so the copy stored in the state file compares equal to a fresh one.
    return json.loads(json.dumps(fingerprint, default=str))


def describe_differences(saved: Any, current: Mapping[str, Any], limit: int = 6) -> str:
    """`` Differences: key: a in the file, b now; ...`` (at most `limit` keys), or "" if none can be shown."""
    if not isinstance(saved, dict):
        return ""
    diffs = []
    for key, va, vb in diff_keys(saved, json.loads(json.dumps(current, default=str))):
        if key.endswith("candidates") and va is not MISSING and vb is not MISSING:
            diffs.append(f"{key} (search space changed)")
        else:
            diffs.append(f"{key}: {va!r} in the file, {vb!r} now")
    if not diffs:
        return ""
    more = f" (and {len(diffs) - limit} more)" if len(diffs) > limit else ""
    return " Differences: " + "; ".join(diffs[:limit]) + more + "."


# --------------------------------------------------------------------------------------------------------
# RNG state


def rng_state_to_json(state) -> List[Any]:
    """`random.Random.getstate()` as JSON: ``[version, [ints], gauss_next]``."""
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]


def rng_state_from_json(data) -> Tuple[Any, ...]:
    """The inverse of `rng_state_to_json`; ValueError if `data` is not a state `random.Random` accepts."""
    if not (isinstance(data, (list, tuple)) and len(data) == 3 and isinstance(data[1], (list, tuple))):
        raise ValueError("rng_state must be [version, [ints], gauss_next]")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in data[1]):
        raise ValueError("rng_state internal state must be integers")
    state = (data[0], tuple(data[1]), data[2])
    try:
        random.Random().setstate(state)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"not a valid random.Random state ({exc})") from None
    return state


# --------------------------------------------------------------------------------------------------------
# File schema (pydantic)

_Genotype = Annotated[str, AfterValidator(decode)]
_Count = Annotated[int, Field(strict=True, ge=0)]
_Number = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CacheEntryModel(_Strict):
    fitness: _Number
    costs: Dict[str, _Number]
    generation: Optional[_Count] = None


class CandidateModel(_Strict):
    genotype: _Genotype
    fitness: _Number
    costs: Dict[str, _Number]
    generation: Optional[_Count] = None
    label: Optional[str] = None


class HistoryEntryModel(_Strict):
    generation: _Count
    population: _Count
    new_evaluations: _Count
    evaluations: _Count
    best: _Number
    mean: _Number
    best_so_far: Optional[_Number] = None
    best_genotype: Optional[_Genotype] = None
    from_crossover: Optional[_Count] = None
    from_mutation: Optional[_Count] = None
    from_random: Optional[_Count] = None


class StateFileModel(_Strict):
    """The whole state file. `generation`: generations (or batches) completed."""

    version: Literal[1]
    config_hash: str
    config: Dict[str, Any]
    generation: _Count
    iterations: Optional[_Count] = None
    rng_state: Tuple[int, List[int], Optional[float]]
    population: List[_Genotype]
    cache: Dict[_Genotype, CacheEntryModel]
    best: Optional[CandidateModel] = None
    history: List[HistoryEntryModel]
    stopped_early: Optional[str] = None

    @field_validator("rng_state")
    @classmethod
    def _rng_state(cls, value):
        rng_state_from_json(list(value))
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "StateFileModel":
        unknown = [encode(g) for g in self.population if g not in self.cache]
        if unknown:
            raise ValueError(f"population genotypes missing from the cache: {unknown[:3]}")
        if self.generation > 0 and not self.population:
            raise ValueError("empty population after a completed generation")
        if len(self.history) != self.generation:
            raise ValueError(f"history has {len(self.history)} entries for {self.generation} completed generations")
        return self


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_validation_error(exc: ValidationError, limit: int = 4) -> str:
    """One line per problem: ``key.path: what is wrong, received <value>`` (at most `limit`)."""
    parts = []
    for e in exc.errors()[:limit]:
        loc = "".join(f"[{x}]" if isinstance(x, int) else (f".{x}" if i else str(x)) for i, x in enumerate(e["loc"]))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            parts.append(f"{loc}: missing")
        elif loc:
            parts.append(f"{loc}: {msg}, received {_short(e.get('input'))}")
        else:
            parts.append(msg)
    more = f" (and {exc.error_count() - limit} more)" if exc.error_count() > limit else ""
    return "; ".join(parts) + more


# --------------------------------------------------------------------------------------------------------
# State and its file


@dataclass
class SearchState:
    """The state of a search between generations (or random-search batches)."""

    generation: int  # generations completed (evaluated)
    rng: random.Random
    population: List[Genotype]  # the last evaluated generation
    cache: Dict[Genotype, Dict[str, Any]]  # genotype -> {"fitness", "costs", "generation"}, in evaluation order
    history: List[Dict[str, Any]]
    stopped_early: Optional[str] = None

    @classmethod
    def fresh(cls, seed: int) -> "SearchState":
        return cls(0, random.Random(seed), [], {}, [])

    def candidates(self) -> List[Candidate]:
        """Every evaluated genotype, in evaluation order."""
        return [Candidate(g, e["fitness"], dict(e["costs"]), e["generation"]) for g, e in self.cache.items()]


def resolve_state_path(state_path: Optional[str], filename: str = STATE_FILENAME) -> Optional[str]:
    """A path ending in ``.json`` is the state file; any other path is a run directory holding `filename`
    (created when the first generation is saved). None disables the state file."""
    if state_path is None:
        return None
    state_path = os.fspath(state_path)
    if state_path.lower().endswith(".json") and not os.path.isdir(state_path):
        return state_path
    return os.path.join(state_path, filename)


class StateFile:
    """Load and save one search's `SearchState` at `path` (None: keep no state).

    # Arguments
        path: the state file (already resolved, see `resolve_state_path`), or None.
        fingerprint: `config_fingerprint` of this search; its hash must match the file's.
        problem: the `Problem`, to check the cached genotypes and costs.
        write: False reads (resumes from) the file but never writes it (non-chief distributed workers).
        what: the search's name in messages.
    """

    def __init__(self, path: Optional[str], fingerprint: Dict[str, Any], problem: Problem, *, write: bool = True,
                 what: str = "search"):
        self.path, self.fingerprint, self.problem, self.write, self.what = path, fingerprint, problem, write, what
        self.config_hash = stable_hash(fingerprint)

    def error(self, why: str) -> SearchStateError:
        return SearchStateError(
            f"Cannot resume the {self.what} from {self.path}: {why}. The file was left untouched; delete it "
            f"or use another run directory to start a new search."
        )

    def load(self) -> Optional[SearchState]:
        """The saved state, None if there is no file; `SearchStateError` if it cannot be resumed."""
        path = self.path
        if path is None or not os.path.exists(path):
            return None
        try:
            with open(path, "r", encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, UnicodeDecodeError) as exc:
            raise self.error(f"the file cannot be read ({exc})") from exc
        except json.JSONDecodeError as exc:
            raise self.error(f"the file is corrupted (not valid JSON: {exc})") from exc
        if not isinstance(data, dict):
            raise self.error("the file is corrupted (the top level is not a JSON object)")
        if data.get("version") != STATE_VERSION:
            raise self.error(
                f"unsupported state version {data.get('version')!r} (this code reads version {STATE_VERSION})"
            )
        try:
            model = StateFileModel.model_validate(data)
        except ValidationError as exc:
            missing = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing" and len(e["loc"]) == 1]
            if missing:
                raise self.error(f"the file is corrupted (missing keys: {', '.join(missing)})") from None
            if isinstance(data.get("config_hash"), str):
                self._check_hash(data)
            raise self.error(f"the file is corrupted ({format_validation_error(exc)})") from None
        self._check_hash(data)
        try:
            cache = self._cache(model)
        except ValueError as exc:
            raise self.error(f"the file is corrupted ({exc})") from None
        return SearchState(model.generation, self._rng(model), list(model.population), cache,
                           [dict(h) for h in data["history"]], model.stopped_early)

    def _check_hash(self, data: Dict[str, Any]) -> None:
        if data["config_hash"] != self.config_hash:
            raise SearchStateError(
                f"The {self.what} state {self.path} belongs to a different search configuration (config hash "
                f"{str(data['config_hash'])[:12]}..., this run has {self.config_hash[:12]}...)."
                + describe_differences(data.get("config"), self.fingerprint)
                + " It was not overwritten. To start a new search, delete the file or use another run "
                "directory; to resume it, re-run with the same search config, budgets, search space and context."
            )

    @staticmethod
    def _rng(model: StateFileModel) -> random.Random:
        rng = random.Random()
        rng.setstate(rng_state_from_json(list(model.rng_state)))
        return rng

    def _cache(self, model: StateFileModel) -> Dict[Genotype, Dict[str, Any]]:
        names = sorted(self.problem.cost_names)
        cache: Dict[Genotype, Dict[str, Any]] = {}
        for g, entry in model.cache.items():
            if not self.problem.legal(g):
                raise ValueError(f"cache.{encode(g)}: genotype not in the search space")
            if sorted(entry.costs) != names:
                raise ValueError(f"cache.{encode(g)}.costs: has {sorted(entry.costs)}, expected {names}")
            cache[g] = {"fitness": entry.fitness, "costs": dict(entry.costs), "generation": entry.generation}
        return cache

    def save(self, state: SearchState, iterations: Optional[int]) -> None:
        """Write `state` atomically (nothing when there is no path or `write` is False)."""
        if self.path is None or not self.write:
            return
        best = best_candidate(state.candidates(), self.problem.cost_names)
        data = {
            "version": STATE_VERSION,
            "config_hash": self.config_hash,
            "config": self.fingerprint,
            "generation": state.generation,
            "iterations": iterations,
            "rng_state": rng_state_to_json(state.rng.getstate()),
            "population": [encode(g) for g in state.population],
            "cache": {
                encode(g): {"fitness": e["fitness"], "costs": e["costs"], "generation": e["generation"]}
                for g, e in state.cache.items()
            },
            "best": None if best is None else best.to_dict(),
            "history": state.history,
            "stopped_early": state.stopped_early,
        }
        atomic_write_text(self.path, json.dumps(data, indent=1, allow_nan=False) + "\n")
