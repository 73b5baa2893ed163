"""One tree of settings configures every stage; the CLI builds it, the library reads it.

The tree is a set of pydantic v2 models (`RunConfig` with sections `data`, `model`, `supernet`, `search`,
`retrain`, `export`, `distribute`): unknown keys are refused (``extra="forbid"``), choices are `Literal`s
from `choices.py`, ranges are field constraints, and every error becomes a `ConfigError` naming the dotted
key, the value received and what is allowed. `load_config(path, preset, overrides)`:

1. starts from a preset (`presets.PRESETS`: ``digits`` (default, offline), ``fashion``, ``cifar10``,
   ``imagenet``);
2. merges a JSON or YAML file (may be partial and nested, e.g. ``{"search": {"population": 20}}``);
3. applies ``key=value`` overrides with dotted keys (``search.population=20``, ``search.flops_budget=null``);
4. fills ``search.flops_budget`` from the preset's per-module budget, unless the file or an override set it;
5. validates the whole tree.

Pure Python: it imports neither TensorFlow nor click. YAML is read with ``yaml.safe_load`` only; there is
no pickle and no eval.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import typing
from typing import Any, ClassVar, Dict, List, Literal, Mapping, Optional, Sequence, Tuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from typing_extensions import Annotated

from . import choices as C
from .fileio import atomic_write_text


class ConfigError(ValueError):
    """A bad configuration: unknown key, unparsable value, value not allowed or out of range."""


MIN_IMAGE_SIZE = 8
MAX_SEED = 2**32 - 1  # numpy / scikit-learn seeds must fit in uint32
_NULL = ("null", "none", "~", "")


# ---------------------------------------------------------------------------------------------------------
# Field types: pydantic's lax coercion plus three rules of this project's command line
# ---------------------------------------------------------------------------------------------------------


def _integer(value: Any) -> Any:
    """Booleans are not integers; ``"1e2"`` (a whole number written as a float) is 100."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return value  # pydantic reports the parse error
        if number.is_integer() and not text.lstrip("+-").isdigit():
            return int(number)
    return value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


Int = Annotated[int, BeforeValidator(_integer)]
Float = Annotated[float, BeforeValidator(_not_bool)]
Seed = Annotated[int, BeforeValidator(_integer), Field(ge=0, le=MAX_SEED)]


def Choice(values: Tuple[str, ...]):  # noqa: N802 - a type factory
    """A case-insensitive choice among `values` (stored lower-case)."""
    return Annotated[Literal[values], BeforeValidator(_lower)]


class Section(BaseModel):
    """A config section; constructing one with bad values raises `ConfigError` naming ``section.field``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)
    section: ClassVar[str] = ""

    def __init__(self, **values: Any):
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise config_error(exc, (self.section,) if self.section else ()) from None


# ---------------------------------------------------------------------------------------------------------
# The tree
# ---------------------------------------------------------------------------------------------------------


class DataConfig(Section):
    section: ClassVar[str] = "data"

    #: "digits" | "fashion_mnist" | "mnist" | "idx" | "folder" | a TFDS name ("cifar10", "imagenet2012", ...)
    name: Annotated[str, Field(min_length=1)] = "digits"
    data_dir: Optional[str] = None  # TFDS data_dir, the image folder (folder) or the IDX files' directory
    image_size: Annotated[Int, Field(ge=MIN_IMAGE_SIZE)] = 32
    batch_size: Annotated[Int, Field(ge=1)] = 64
    holdout_fraction: Annotated[Float, Field(gt=0, le=0.5)] = 0.15  # out of the training split; search only
    seed: Seed = 0  # shuffling and augmentation
    test_fraction: Annotated[Float, Field(gt=0, le=0.5)] = 0.2  # digits / folder (others have a test split)
    split_seed: Seed = 0  # fixes the digits / folder train/holdout/test split independently of `seed`
    augment: bool = True  # training augmentation (shifts for digits; crop + flip for natural images)
    cache: Choice(C.CACHE_MODES) = "auto"  # "auto": cache in memory when the split is small
    shuffle_buffer: Annotated[Int, Field(ge=1)] = 10000  # bounded shuffle of sources without random access


class ModelConfig(Section):
    section: ClassVar[str] = "model"

    module: Choice(C.MODULES) = "m1"
    width_multiplier: Annotated[Float, Field(gt=0)] = 0.5
    space: Choice(C.SPACE_MODES) = "lce"


class TrainConfig(Section):
    section: ClassVar[str] = "train"

    epochs: Annotated[Int, Field(ge=1)] = 20
    learning_rate: Annotated[Float, Field(gt=0)] = 2e-3
    schedule: Choice(C.SCHEDULES) = "cosine"
    optimizer: Choice(C.OPTIMIZERS) = "adam"
    seed: Seed = 0


class SupernetConfig(TrainConfig):
    section: ClassVar[str] = "supernet"

    flops_bounded_sampling: bool = False


class SearchConfig(Section):
    section: ClassVar[str] = "search"

    population: Annotated[Int, Field(ge=1)] = 50
    top_k: Annotated[Int, Field(ge=1)] = 10
    crossover: Annotated[Int, Field(ge=0)] = 25
    mutation: Annotated[Int, Field(ge=0)] = 25
    mutation_prob: Annotated[Float, Field(ge=0, le=1)] = 0.1
    iterations: Annotated[Int, Field(ge=1)] = 20
    flops_budget: Optional[Annotated[Float, Field(gt=0)]] = None  # None: no FLOPs constraint (presets fill it)
    #: Used when flops_budget is None: budget = fraction x FLOPs of the uniform groups=1 model of this run
    #: (so a budget stays meaningful when the input size or width changes). None: no FLOPs constraint.
    flops_budget_fraction: Optional[Annotated[Float, Field(gt=0, le=1)]] = None
    latency_budget_ms: Optional[Annotated[Float, Field(gt=0)]] = None
    latency_table: Optional[str] = None
    latency_threads: Optional[Annotated[Int, Field(ge=1)]] = None  # the table must have this many threads
    recalibration_batches: Annotated[Int, Field(ge=0)] = 8
    random_baseline_samples: Optional[Annotated[Int, Field(ge=0)]] = None  # None: as many as the search
    max_tries: Annotated[Int, Field(ge=1)] = 1000
    seed: Seed = 0

    @model_validator(mode="after")
    def _generation_sizes(self) -> "SearchConfig":
        if self.top_k > self.population:
            raise ValueError(f"search.top_k: received {self.top_k}; must be an integer in "
                             f"[1, search.population={self.population}]")
        if self.crossover + self.mutation > self.population:
            raise ValueError(f"search.crossover: received {self.crossover}; must be such that search.crossover + "
                             f"search.mutation ({self.crossover} + {self.mutation}) <= search.population "
                             f"({self.population}); the rest of a generation is sampled at random")
        return self


class RetrainConfig(TrainConfig):
    section: ClassVar[str] = "retrain"

    init_from_supernet: bool = False


class ExportConfig(Section):
    section: ClassVar[str] = "export"

    target: Choice(C.EXPORT_TARGETS) = "arm"
    allow_float_fallback: bool = False
    verify_samples: Annotated[Int, Field(ge=0)] = 256


class DistributeConfig(Section):
    """How training runs (`larq_mobisearch.distribute`); not part of what a run computes, so a run directory
    can be resumed with another strategy. ``data.batch_size`` is the global batch over all replicas."""

    section: ClassVar[str] = "distribute"

    strategy: Choice(C.STRATEGIES) = "default"
    devices: Optional[str] = None  # mirrored: comma-separated devices, e.g. "/gpu:0,/gpu:1" (default: all GPUs)
    cpu_devices: Annotated[Int, Field(ge=1, le=64)] = 1  # split the host CPU into N logical devices
    tpu: Optional[str] = None  # tpu: Cloud TPU name or grpc:// address ("local" on a TPU VM)
    communication: Choice(C.COMMUNICATION) = "auto"  # multi_worker all-reduce
    sync_batchnorm: bool = True  # BatchNorm batch statistics over the global batch (as on one device)

    @model_validator(mode="after")
    def _devices_need_mirrored(self) -> "DistributeConfig":
        if self.devices is not None and self.strategy != "mirrored":
            raise ValueError(f"distribute.devices: received {self.devices!r}; must be null unless "
                             f"distribute.strategy is mirrored (it is {self.strategy!r})")
        return self


class RunConfig(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    supernet: SupernetConfig = Field(default_factory=SupernetConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    distribute: DistributeConfig = Field(default_factory=DistributeConfig)


SECTIONS: Tuple[str, ...] = tuple(RunConfig.model_fields)


def _section_models() -> Dict[str, type]:
    return {name: RunConfig.model_fields[name].annotation for name in SECTIONS}


def valid_keys(section: Optional[str] = None) -> Tuple[str, ...]:
    """Every dotted key (``search.population``), or those of one section."""
    models = _section_models()
    return tuple(f"{s}.{f}" for s in ([section] if section else SECTIONS) for f in models[s].model_fields)


# ---------------------------------------------------------------------------------------------------------
# Errors: pydantic's, with the dotted key, the value received and what is allowed
# ---------------------------------------------------------------------------------------------------------


def _received(value: Any) -> str:
    """How a received value is shown: null, a number as typed (``0``, ``1e-3``), anything else as repr."""
    if value is None:
        return "null"
    if isinstance(value, str):
        try:
            float(value)
            return value.strip()
        except ValueError:
            pass
    return repr(value)


def _constraints(annotation: Any) -> List[Any]:
    """Constraint objects (``Gt``, ``Le``, ...) anywhere in a field's annotation (inside Optional too)."""
    found = []
    for meta in getattr(annotation, "__metadata__", ()):
        found += list(getattr(meta, "metadata", None) or [meta])  # a FieldInfo holds its constraints
    for arg in typing.get_args(annotation):
        found += _constraints(arg)
    return found


def _range_text(model: type, name: str) -> Optional[str]:
    """``"in (0, 0.5]"``, ``">= 1"``, ... from a field's constraints."""
    field = model.model_fields[name]
    lo = hi = None
    for meta in list(field.metadata) + _constraints(field.annotation):
        for attr, bracket in (("gt", "("), ("ge", "[")):
            if getattr(meta, attr, None) is not None:
                lo = (bracket, getattr(meta, attr))
        for attr, bracket in (("lt", ")"), ("le", "]")):
            if getattr(meta, attr, None) is not None:
                hi = (bracket, getattr(meta, attr))
    if lo and hi:
        return f"in {lo[0]}{lo[1]}, {hi[1]}{hi[0]}"
    if lo:
        return f"{'>' if lo[0] == '(' else '>='} {lo[1]}"
    if hi:
        return f"{'<' if hi[0] == ')' else '<='} {hi[1]}"
    return None


def _requirement(error: Mapping[str, Any], model: Optional[type], name: Optional[str]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if error.get("input") is None and kind.endswith(("_type", "_parsing")):
        return "cannot be null"
    if kind == "literal_error":
        return "allowed: " + ", ".join(s.strip("'") for s in str(ctx.get("expected", "")).replace(" or ", ", ")
                                       .split(", "))
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal") and model and name:
        text = _range_text(model, name)
        return f"must be {text}" if text else error["msg"]
    if kind == "finite_number":
        return "must be a finite number"
    if kind.startswith("int_"):
        return "must be an integer"
    if kind.startswith("float_"):
        return "must be a number"
    if kind == "bool_parsing":
        return "must be a boolean (true/false, yes/no, 1/0)"
    if kind.endswith("_type"):
        return f"expected {kind[:-5]}"
    return str(error["msg"]).removeprefix("Value error, ")


def _unknown_key(key: str, valid: Sequence[str], received: Any) -> str:
    close = difflib.get_close_matches(key, list(valid) + list(valid_keys()), n=1, cutoff=0.7)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Unknown config key {key!r} (received value {received!r}).{hint} Valid keys: {', '.join(valid)}"


def config_error(exc: ValidationError, prefix: Tuple[str, ...] = ()) -> ConfigError:
    """One `ConfigError` for a pydantic `ValidationError` of (a section of) the tree, one line per problem."""
    lines = []
    for error in exc.errors():
        loc = tuple(prefix) + tuple(str(x) for x in error["loc"])
        key = ".".join(loc)
        section = loc[0] if loc and loc[0] in SECTIONS else None
        model = _section_models()[section] if section else None
        name = loc[1] if section and len(loc) > 1 else None
        if error["type"] == "extra_forbidden":
            lines.append(_unknown_key(key, valid_keys(section) if section and len(loc) > 1 else SECTIONS,
                                      error.get("input")))
        elif error["type"] in ("model_type", "model_attributes_type", "dict_type"):
            fields = ", ".join(valid_keys(section)) if section else ", ".join(SECTIONS)
            lines.append(f"{key or 'config'}: expected a mapping of fields ({fields}), received {error['input']!r}")
        elif error["type"] == "value_error" and str(error["msg"]).startswith("Value error, " + (section or "~")):
            lines.append(str(error["msg"]).removeprefix("Value error, "))  # cross-field checks name their key
        else:
            lines.append(f"{key}: received {_received(error.get('input'))}; {_requirement(error, model, name)}")
    return ConfigError("\n".join(lines))


# ---------------------------------------------------------------------------------------------------------
# Dicts, files, overrides
# ---------------------------------------------------------------------------------------------------------


def config_to_dict(cfg: BaseModel) -> Dict[str, Any]:
    """A `RunConfig` (or one section) as a plain nested dict of JSON types."""
    if not isinstance(cfg, BaseModel):
        raise TypeError(f"config_to_dict expects a config model instance, received {type(cfg).__name__}")
    return cfg.model_dump(mode="json")


def config_from_dict(d: Mapping[str, Any]) -> RunConfig:
    """Build and validate a `RunConfig` from a nested dict. Strict: unknown sections or fields, wrong types
    and bad values raise `ConfigError`; missing ones take the defaults (older run directories still load)."""
    try:
        return RunConfig.model_validate(dict(d))
    except ValidationError as exc:
        raise config_error(exc) from None


def validate_config(cfg: RunConfig) -> RunConfig:
    """Re-validate `cfg` (e.g. after attributes were assigned); return it or raise `ConfigError`."""
    if not isinstance(cfg, RunConfig):
        raise ConfigError(f"expected a RunConfig, received {type(cfg).__name__}")
    config_from_dict(config_to_dict_unchecked(cfg))
    return cfg


def config_to_dict_unchecked(cfg: BaseModel) -> Dict[str, Any]:
    return cfg.model_dump(mode="python", warnings=False)


def validate_data_config(data: DataConfig) -> DataConfig:
    """Re-validate a `DataConfig` (also called by `data.load_dataset`)."""
    try:
        return DataConfig.model_validate(config_to_dict_unchecked(data))
    except ValidationError as exc:
        raise config_error(exc, ("data",)) from None


def _file_format(path: str) -> str:
    ext = os.path.splitext(str(path))[1].lower()
    if ext == ".json":
        return "json"
    if ext in (".yaml", ".yml"):
        return "yaml"
    raise ConfigError(f"Config file {path!r}: unknown extension {ext or '(none)'!r}; use .json, .yaml or .yml")


def read_config_file(path: str) -> Dict[str, Any]:
    """A (possibly partial) nested config mapping from a .json or .yaml/.yml file (safe loaders only)."""
    fmt = _file_format(path)
    try:
        with open(path, "r", encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"Config file {path!r} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path!r}: {exc}") from None
    if fmt == "json":
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Config file {path!r} is not valid JSON: {exc}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"Config file {path!r} is not valid (safe) YAML: {exc}") from None
        data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path!r}: the top level must be a mapping of sections "
                          f"({', '.join(SECTIONS)}), received {type(data).__name__}")
    return data


def merge_tree(tree: Dict[str, Dict[str, Any]], update: Mapping[str, Any], source: str) -> set:
    """Merge a nested mapping ``{section: {field: value}}`` into `tree`; return the dotted keys it set.

    Keys are checked here (so the message can say where they came from); values when the tree is validated.
    """
    if update is None:
        return set()
    if not isinstance(update, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of sections ({', '.join(SECTIONS)}), "
                          f"received {type(update).__name__}: {update!r}")
    touched = set()
    for section, values in update.items():
        if section not in SECTIONS:
            raise ConfigError(_unknown_key(str(section), SECTIONS, values))
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"{section}: expected a mapping of fields ({', '.join(valid_keys(section))}), "
                              f"received {values!r}")
        for name, value in values.items():
            key = f"{section}.{name}"
            if key not in valid_keys(section):
                raise ConfigError(_unknown_key(key, valid_keys(section), value))
            tree[section][name] = value
            touched.add(key)
    return touched


def parse_override(text: str) -> Tuple[str, Any]:
    """``"search.population=20"`` -> ``("search.population", 20)``, the value validated by the field's type
    (``null``/``none`` is None for optional fields)."""
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"Override {text!r} must look like section.field=value, e.g. search.population=20")
    key, raw = (s.strip() for s in text.split("=", 1))
    parts = key.split(".")
    if len(parts) != 2 or parts[0] not in SECTIONS:
        raise ConfigError(_unknown_key(key, valid_keys(), raw))
    section, name = parts
    if key not in valid_keys(section):
        raise ConfigError(_unknown_key(key, valid_keys(section), raw))
    value = None if raw.lower() in _NULL else raw
    field = _section_models()[section].model_fields[name]
    adapter = TypeAdapter(Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation,
                          config=Section.model_config)
    try:
        return key, adapter.validate_python(value)
    except ValidationError as exc:
        errors = [{**e, "loc": (name,) + tuple(e["loc"])} for e in exc.errors()]
        raise config_error(ValidationError.from_exception_data(exc.title, errors), (section,)) from None


def _derive_search_sizes(search: Dict[str, Any], explicit: set) -> None:
    """When only ``search.population`` is given, scale the generation sizes to it: crossover = mutation =
    population // 2 (the paper's 25 + 25 of 50) and top_k capped at population. Explicit values stay."""
    if "search.population" not in explicit:
        return
    try:
        population = int(_integer(search["population"]))
    except (TypeError, ValueError):
        return  # validation reports it
    if population < 1:
        return
    if "search.crossover" not in explicit and "search.mutation" not in explicit:
        search["crossover"] = search["mutation"] = population // 2
    if "search.top_k" not in explicit:
        search["top_k"] = min(int(search["top_k"]), population)


def _apply(tree: Dict[str, Dict[str, Any]], overrides: Sequence[str]) -> set:
    explicit = set()
    for text in [overrides] if isinstance(overrides, str) else overrides:
        key, value = parse_override(text)
        section, name = key.split(".")
        tree[section][name] = value
        explicit.add(key)
    return explicit


def load_config(path: Optional[str] = None, preset: Optional[str] = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Build a `RunConfig`: preset, then the file at `path` (JSON/YAML, may be partial), then overrides.

    # Arguments
        path: optional .json / .yaml / .yml file with a nested partial config.
        preset: a name of `presets.PRESETS` (default "digits").
        overrides: ``"section.field=value"`` strings, parsed by the field's type.

    ``search.flops_budget`` is the preset's budget for the final ``model.module`` unless the file or an override
    sets it (``search.flops_budget=null`` disables the constraint). ``search.population`` given alone also sets
    ``crossover = mutation = population // 2`` and caps ``top_k`` at it.

    # Raises
        ConfigError: unknown preset / key, unparsable or disallowed value, out-of-range value.
    """
    from .presets import DEFAULT_PRESET, get_preset

    p = get_preset(preset or DEFAULT_PRESET)
    tree = config_to_dict(RunConfig())
    merge_tree(tree, p.values, source=f"preset {p.name!r}")
    explicit = set()
    if path is not None:
        explicit |= merge_tree(tree, read_config_file(path), source=f"config file {path!r}")
    explicit |= _apply(tree, overrides)
    if "search.flops_budget" not in explicit:
        tree["search"]["flops_budget"] = p.default_flops_budget(_lower(tree["model"]["module"]))
    _derive_search_sizes(tree["search"], explicit)
    return config_from_dict(tree)


def apply_overrides(cfg: RunConfig, overrides: Sequence[str]) -> RunConfig:
    """A new validated `RunConfig`: `cfg` with ``key=value`` overrides applied (no preset logic)."""
    tree = config_to_dict(cfg)
    _derive_search_sizes(tree["search"], _apply(tree, overrides))
    return config_from_dict(tree)


def save_config(cfg: RunConfig, path: str) -> str:
    """Write `cfg` to `path` (.json, or .yaml/.yml) atomically, after validating it."""
    validate_config(cfg)
    fmt = _file_format(path)
    data = config_to_dict(cfg)
    if fmt == "json":
        text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    atomic_write_text(path, text)
    return path


def canonical_json(obj: Any) -> str:
    """Canonical JSON (sorted keys, no whitespace) of a config, a config section or a plain mapping."""
    if isinstance(obj, BaseModel):
        obj = config_to_dict(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def config_hash(obj: Any, length: Optional[int] = None) -> str:
    """Stable sha256 hex digest of the canonical JSON of `obj` (a config, a section, or a dict); `length`
    truncates it. Use it to key caches/checkpoints on the parts of the config that matter."""
    digest = hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()
    return digest[:length] if length else digest


def __getattr__(name: str) -> Any:
    """Preset names that used to live here (`PRESETS`, `IMAGENET_FLOPS_BUDGETS`, ...) now live in `presets`."""
    from . import presets

    if hasattr(presets, name):
        return getattr(presets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__: List[str] = [
    "ConfigError", "RunConfig", "DataConfig", "ModelConfig", "TrainConfig", "SupernetConfig", "SearchConfig",
    "RetrainConfig", "ExportConfig", "DistributeConfig", "SECTIONS", "valid_keys", "load_config",
    "apply_overrides", "config_from_dict", "config_to_dict", "validate_config", "validate_data_config",
    "parse_override", "read_config_file", "save_config", "config_hash", "canonical_json",
]
