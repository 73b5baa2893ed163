"""A run directory: one trained supernet and any number of named searches on it, each stage resumable.

Layout (version 2)::

    R/config.json                 the run's config: data / model / supernet fix the supernet; the other
                                  sections are the defaults of new searches
    R/run.json                    {"layout": 2}
    R/teacher/                    the real-valued teacher of the distributional loss (when used and
                                  teacher.source=twin): BackupAndRestore state, history.csv, weights.h5,
                                  model.h5 (a whole model another run can use as teacher.path), done.json
    R/supernet/                   BackupAndRestore state, history.csv, weights.h5, done.json
    R/searches/<name>/config.json the whole config of that search (its data / model / supernet = the run's)
    R/searches/<name>/...         search_state.json, random_search_state.json, search/, final/, model.tflite,
                                  export.json, report.md, plots/; final/step1/ holds step 1 of a
                                  two-step retraining (its own backup, history, weights, done.json)
    R/report.md, R/report.json    every search of the supernet compared; R/plots/

Stage-scoped settings: each stage depends only on its own config sections and on the results of the stages
before it (`STAGE_SECTIONS`). A changed setting is accepted when its stage has not started; when it has, the
change is refused naming the stage and the keys, unless the user asks to redo that stage
(``restart_from``), which deletes that stage's files and the later ones (of this search only, except for
the supernet, on which every search depends). Run directories of layout 1 (one search at the top level)
are moved into ``searches/default/`` when opened, with a message; nothing is read from the old places.

The teacher is a run-level stage like the supernet (its settings: data / model / teacher); a supernet or a
retraining trained with the distributional loss also depends on the teacher's settings. ``restart_from=
"teacher"`` redoes the teacher and everything after it (the supernet and every search).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ..config import RunConfig, config_from_dict, config_to_dict, save_config
from ..fileio import atomic_write_json
from ..fingerprint import diff_keys
from ..nn.space import SearchSpace
from ..nn.specs import Architecture, architecture
from ..search.costs import count_costs, flops_cost_model
from ..search.state import RANDOM_STATE_FILENAME, STATE_FILENAME

log = logging.getLogger(__name__)

LAYOUT = 2
STAGES = ("supernet", "search", "retrain", "export")
#: The stages `restart_from` can redo, in order: the teacher (trained before the supernet) and `STAGES`.
RESTART_STAGES = ("teacher",) + STAGES
#: Stages of the whole run directory (shared by every search); the others belong to one search.
RUN_STAGES = ("teacher", "supernet")
DEFAULT_SEARCH = "default"
#: The config sections each stage's result depends on (``distribute`` says how a stage runs, not what it
#: computes, so it may change on resumption). A stage trained with the distributional loss also depends on
#: ``teacher`` (`stage_sections`).
STAGE_SECTIONS: Dict[str, tuple] = {
    "teacher": ("data", "model", "teacher"),
    "supernet": ("data", "model", "supernet"),
    "search": ("search",),
    "retrain": ("retrain",),
    "export": ("export",),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_V1_ENTRIES = ("search_state.json", "search", "final", "model.tflite", "export.json")
_V1_PLOTS = ("search_progress.png", "pareto.png", "final_training.png")


class RunDirError(ValueError):
    """The run directory cannot be used as asked (other settings, missing earlier stage, corrupt file)."""


def read_json(path: str, what: str) -> Dict[str, Any]:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise RunDirError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{what} at {path} is corrupt ({exc}); delete it to redo that stage") from None


def describe_changes(saved: Any, now: Any) -> List[str]:
    """One line per changed dotted key: ``"search.population: 50 in the run directory, 6 now"``."""
    return [f"{key}: {a!r} in the run directory, {b!r} now" for key, a, b in diff_keys(saved, now)]


def check_search_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise RunDirError(f"Invalid search name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting "
                          f"with a letter or digit (e.g. pi4-25ms)")
    return name


def uses_teacher(cfg: RunConfig, stage: str) -> bool:
    """Whether `stage` ("supernet" or "retrain") trains with the distributional loss."""
    section = {"supernet": cfg.supernet, "retrain": cfg.retrain}.get(stage)
    return section is not None and section.loss == "distributional"


def stage_sections(stage: str, *cfgs: RunConfig) -> tuple:
    """The sections `stage`'s result depends on under any of `cfgs` (plus ``teacher`` if one distills)."""
    names = STAGE_SECTIONS[stage]
    if any(uses_teacher(c, stage) for c in cfgs):
        names = names + ("teacher",)
    return names


def _sections(cfg: RunConfig, names: tuple) -> Dict[str, Any]:
    tree = config_to_dict(cfg)
    return {s: tree[s] for s in names}


@dataclass
class Run:
    """A run directory, the config of one of its searches (`search`), and lazily loaded data.

    `cfg` is the whole config the stages of search `search` use; its data / model / supernet sections are
    the run's.
    """

    cfg: RunConfig
    run_dir: str
    search: Optional[str] = DEFAULT_SEARCH
    verbose: int = 1
    _data: Any = field(default=None, repr=False)
    _strategy: Any = field(default=None, repr=False)
    #: `stages.check_budgets`'s feasible counts by the settings they depend on (`run_all` checks the budgets before
    #: the supernet trains, the search stage again: an estimate from 20,000 samples in a width space costs seconds)
    feasible_counts: Dict[str, Any] = field(default_factory=dict, repr=False)

    # ---- opening, stage-scoped settings ----

    @classmethod
    def open(cls, run_dir: str, cfg: Optional[RunConfig] = None, verbose: int = 1, *,
             search: Optional[str] = DEFAULT_SEARCH,
             restart_from: Optional[str] = None, echo: Callable[[str], None] = log.info) -> "Run":
        """Open (or create) `run_dir` for search `search`.

        Without `cfg`, the search's saved config is used (a new search starts from the run's config). With
        `cfg`, every changed setting must belong to a stage that has not started for this search; otherwise
        `RunDirError` names the stage and the keys, unless ``restart_from`` names that stage or an earlier one
        (its files and the later stages' are then deleted). ``search=None`` opens the run for its supernet
        alone (no search is created).
        """
        if search is not None:
            check_search_name(search)
        if restart_from is not None and restart_from not in RESTART_STAGES:
            raise RunDirError(f"restart_from: received {restart_from!r}; allowed: {list(RESTART_STAGES)}")
        run_path = os.path.join(run_dir, "config.json")
        if not os.path.exists(run_path):
            if cfg is None:
                raise RunDirError(f"{run_dir} is not a run directory (no config.json); start one with `mobisearch run`")
            os.makedirs(run_dir, exist_ok=True)
            save_config(cfg, run_path)
            atomic_write_json(os.path.join(run_dir, "run.json"), {"layout": LAYOUT})
        _migrate_v1(run_dir, echo)
        run = cls(_load(run_path, "Run config"), run_dir, search, verbose)
        if restart_from is not None:
            run._restart(restart_from, echo)
        saved = _load(run.search_path("config.json"), "Search config") if search is not None and os.path.exists(
            run.search_path("config.json")) else None
        if cfg is None:
            cfg = saved or run.cfg
        run._accept(cfg, saved)
        return run

    def _accept(self, cfg: RunConfig, saved: Optional[RunConfig]) -> None:
        """Adopt `cfg` for this search if it changes only stages that have not started."""
        run_cfg = self.cfg
        for stage in RESTART_STAGES if self.search is not None else RUN_STAGES:
            previous = run_cfg if stage in RUN_STAGES else (saved or run_cfg)
            names = stage_sections(stage, previous, cfg)
            diff = describe_changes(_sections(previous, names), _sections(cfg, names))
            if diff and self.started(stage):
                where = {"supernet": "the supernet", "teacher": "the run"}.get(stage, f"search {self.search!r}")
                hint = ("--search NAME starts another search on the same supernet; " if stage not in RUN_STAGES
                        else "")
                raise RunDirError(
                    f"The {stage} stage of {where} in {self.run_dir} was made with other settings:\n  "
                    + "\n  ".join(diff[:8]) + f"\nKeep those settings, or {hint}--restart-from {stage} redoes "
                    f"the {stage} stage and the later ones (deleting their files), or use another --run-dir."
                )
        run_names = tuple(dict.fromkeys(STAGE_SECTIONS["teacher"] + STAGE_SECTIONS["supernet"]))
        if diff_keys(_sections(run_cfg, run_names), _sections(cfg, run_names)):
            save_config(cfg, self.path("config.json"))  # nothing trained yet: the run takes the new settings
        self.cfg = cfg
        if self.search is not None and (saved is None or cfg != saved):
            save_config(cfg, self.search_path("config.json"))

    def _restart(self, stage: str, echo: Callable[[str], None]) -> None:
        run_level = {"teacher": [self.path("teacher")], "supernet": [self.path("supernet"), self.path("searches")]}
        paths = {
            **run_level,
            "search": [self.search_path(p) for p in (STATE_FILENAME, RANDOM_STATE_FILENAME, "search",
                                                     "search_wall_seconds.json")],
            "retrain": [self.search_path("final")],
            "export": [self.search_path(p) for p in ("model.tflite", "export.json", "export_refused.json", "report.md",
                                                     "report.json", "export_wall_seconds.json")],
        } if self.search is not None else run_level
        for s in [s for s in RESTART_STAGES[RESTART_STAGES.index(stage):] if s in paths]:
            for p in paths[s]:
                if os.path.isdir(p):
                    shutil.rmtree(p)
                    echo(f"[restart] deleted {p}/")
                elif os.path.exists(p):
                    os.remove(p)
                    echo(f"[restart] deleted {p}")

    # ---- paths and stage status ----

    def path(self, *parts: str) -> str:
        return os.path.join(self.run_dir, *parts)

    def search_path(self, *parts: str) -> str:
        if self.search is None:
            raise RunDirError("This run was opened without a search (search=None)")
        return os.path.join(self.run_dir, "searches", self.search, *parts)

    def for_search(self, name: str) -> "Run":
        """The same run directory seen through another search's saved config."""
        return Run.open(self.run_dir, None, self.verbose, search=name)

    def searches(self) -> List[str]:
        root = self.path("searches")
        names = sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "config.json"))) \
            if os.path.isdir(root) else []
        return names

    def marker(self, stage: str) -> str:
        """The file whose existence means `stage` is finished."""
        if stage in RUN_STAGES:
            return self.path(stage, "done.json")
        return self.search_path(*{"search": ("search", "result.json"), "retrain": ("final", "done.json"),
                                  "export": ("export.json",)}[stage])

    def done(self, stage: str) -> bool:
        return os.path.exists(self.marker(stage))

    def started(self, stage: str) -> bool:
        """Finished, or has left files a resumption would read (a backup, a state file)."""
        if stage in RUN_STAGES:
            paths = [self.path(stage)]
        else:
            paths = [self.search_path(p) for p in {"search": (STATE_FILENAME, RANDOM_STATE_FILENAME, "search"),
                                                   "retrain": ("final",), "export": ("export.json",)}[stage]]
        return self.done(stage) or any(os.path.exists(p) for p in paths)

    # ---- what the stages share ----

    @property
    def strategy(self):
        """The `tf.distribute` strategy of ``cfg.distribute`` (created before any data is loaded)."""
        if self._strategy is None:
            from ..distribute import get_strategy

            self._strategy = get_strategy(self.cfg.distribute)
        return self._strategy

    @property
    def worker(self):
        from ..distribute import worker_info

        return worker_info(self.strategy)

    @property
    def sync_batchnorm(self) -> bool:
        return bool(self.cfg.distribute.sync_batchnorm) and self.strategy.num_replicas_in_sync > 1

    def begin_stage(self, seed: int) -> None:
        """Seed TensorFlow, NumPy and Python from the config and rebuild the data pipelines.

        tf.data resolves op seeds against the global seed when a pipeline is built, so without this a stage
        would compute something else when it runs after another stage in the same process (or on another
        worker) than when it runs alone.
        """
        import tensorflow as tf

        tf.keras.utils.set_random_seed(int(seed))
        self._data = None  # rebuilt on next use; `data` creates the strategy first

    def barrier(self) -> None:
        """Wait for every worker (multi-worker runs; no-op otherwise)."""
        from ..distribute import barrier

        barrier(self.strategy)

    @property
    def data(self):
        if self._data is None:
            from ..data import load_dataset

            if self.cfg.distribute.strategy != "default":
                self.strategy  # a multi-worker strategy must exist before TensorFlow runs any op
            self._data = load_dataset(self.cfg.data)
        return self._data

    @property
    def arch(self) -> Architecture:
        d = self.data
        m = self.cfg.model
        return architecture(m.module, d.input_shape, d.num_classes, m.width_multiplier, m.stem)

    @property
    def space(self) -> SearchSpace:
        m = self.cfg.model
        return SearchSpace(self.arch, m.space, genes=m.space_genes, width_choices=m.width_choices)

    def genotype_costs(self, genotype):
        """BOPs / FLOPs of a genotype of this run (at its block widths, with width genes)."""
        space = self.space
        if space.has_widths:
            return count_costs(*space.resolve(space.expand(tuple(genotype))))
        return count_costs(self.arch, genotype)

    def flops_budget(self) -> Optional[float]:
        """`search.flops_budget`, else `search.flops_budget_fraction` x FLOPs of the uniform g=1 model (of the
        model actually built: the data's channels and classes)."""
        s = self.cfg.search
        if s.flops_budget is not None or s.flops_budget_fraction is None:
            return s.flops_budget
        return float(s.flops_budget_fraction * count_costs(self.arch, 1).flops)

    def search_config(self):
        """The search settings with the FLOPs budget resolved to an absolute number."""
        return self.cfg.search.model_copy(update={"flops_budget": self.flops_budget()})

    def flops_model(self):
        return flops_cost_model(self.space)

    def latency_model(self):
        if not self.cfg.search.latency_table:
            return None
        from ..deploy.latency_table import load_latency_table
        from ..search.costs import LatencyCostModel, WidthLatencyCostModel

        table = load_latency_table(self.cfg.search.latency_table)
        if self.space.has_widths:
            return WidthLatencyCostModel(table, self.space, threads=self.cfg.search.latency_threads)
        return LatencyCostModel(table, self.arch, self.space.candidates, threads=self.cfg.search.latency_threads)


def saved_config(run_dir: str, search: Optional[str] = DEFAULT_SEARCH,
                 echo: Callable[[str], None] = log.info) -> Optional[RunConfig]:
    """The config search `search` of `run_dir` runs with (a new search: the run's), or None for a new run."""
    if not os.path.exists(os.path.join(run_dir, "config.json")):
        return None
    _migrate_v1(run_dir, echo)
    path = os.path.join(run_dir, "searches", check_search_name(search), "config.json") if search else ""
    if search and os.path.exists(path):
        return _load(path, "Search config")
    return _load(os.path.join(run_dir, "config.json"), "Run config")


def _load(path: str, what: str) -> RunConfig:
    try:
        return config_from_dict(read_json(path, what))
    except ValueError as exc:
        if isinstance(exc, RunDirError):
            raise
        raise RunDirError(f"{what} {path} is invalid: {exc}") from None


def _migrate_v1(run_dir: str, echo: Callable[[str], None]) -> None:
    """Move a layout-1 run directory's single search into ``searches/default/`` (announced, never silent)."""
    marker = os.path.join(run_dir, "run.json")
    if os.path.exists(marker):
        layout = read_json(marker, "Run layout").get("layout")
        if layout != LAYOUT:
            raise RunDirError(f"{run_dir} has run-directory layout {layout!r}; this version reads layout {LAYOUT}")
        return
    target = os.path.join(run_dir, "searches", DEFAULT_SEARCH)
    moved = []
    os.makedirs(os.path.join(target, "plots"), exist_ok=True)
    for name in _V1_ENTRIES + tuple(os.path.join("plots", p) for p in _V1_PLOTS):
        src = os.path.join(run_dir, name)
        if os.path.exists(src):
            os.replace(src, os.path.join(target, name))
            moved.append(name)
    shutil.copyfile(os.path.join(run_dir, "config.json"), os.path.join(target, "config.json"))
    for stale in ("report.md", "report.json"):
        if os.path.exists(os.path.join(run_dir, stale)):
            os.replace(os.path.join(run_dir, stale), os.path.join(target, stale))
    atomic_write_json(marker, {"layout": LAYOUT, "migrated_from": 1, "moved": moved})
    echo(f"Run directory {run_dir} had the layout of version 1 (one search): moved {', '.join(moved) or 'nothing'} "
         f"into searches/{DEFAULT_SEARCH}/")
