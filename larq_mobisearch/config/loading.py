"""Building a config tree: from a preset or a saved config, a JSON/YAML file (safe loader only) and
``section.field=value`` overrides; saving it atomically; hashing it.

Pure Python: no TensorFlow, no click, no pickle, no eval.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from pydantic import BaseModel, TypeAdapter, ValidationError
from typing_extensions import Annotated

from .. import fingerprint
from ..fileio import atomic_write_text
from .errors import ConfigError, config_error, unknown_key
from .presets import DEFAULT_PRESET, get_preset
from .schema import SECTIONS, DataConfig, RunConfig, Section, integer, lower, section_models, valid_keys

_NULL = ("null", "none", "~", "")


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
        raise config_error(exc, section_models()) from None


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
        raise config_error(exc, section_models(), ("data",)) from None


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
            raise ConfigError(unknown_key(str(section), SECTIONS, values, valid_keys()))
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"{section}: expected a mapping of fields ({', '.join(valid_keys(section))}), "
                              f"received {values!r}")
        for name, value in values.items():
            key = f"{section}.{name}"
            if key not in valid_keys(section):
                raise ConfigError(unknown_key(key, valid_keys(section), value, valid_keys()))
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
        raise ConfigError(unknown_key(key, valid_keys(), raw, valid_keys()))
    section, name = parts
    if key not in valid_keys(section):
        raise ConfigError(unknown_key(key, valid_keys(section), raw, valid_keys()))
    value = None if raw.lower() in _NULL else raw
    field = section_models()[section].model_fields[name]
    adapter = TypeAdapter(Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation,
                          config=Section.model_config)
    try:
        return key, adapter.validate_python(value)
    except ValidationError as exc:
        errors = [{**e, "loc": (name,) + tuple(e["loc"])} for e in exc.errors()]
        raise config_error(ValidationError.from_exception_data(exc.title, errors), section_models(),
                           (section,)) from None


def _derive_search_sizes(search: Dict[str, Any], explicit: set) -> None:
    """When only ``search.population`` is given, scale the generation sizes to it: crossover = mutation =
    population // 2 (the paper's 25 + 25 of 50) and top_k capped at population. Explicit values stay."""
    if "search.population" not in explicit:
        return
    try:
        population = int(integer(search["population"]))
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


def load_config(path: Optional[str] = None, preset: Optional[str] = None, overrides: Sequence[str] = (), *,
                base: Optional[RunConfig] = None) -> RunConfig:
    """Build a `RunConfig`: preset, then the file at `path` (JSON/YAML, may be partial), then overrides.

    # Arguments
        path: optional .json / .yaml / .yml file with a nested partial config.
        preset: a name of `presets.PRESETS` (default "digits").
        base: start from this config instead of a preset (e.g. a run directory's saved config): the file
            and the overrides apply on top of it, and no preset budget is filled in.
        overrides: ``"section.field=value"`` strings, parsed by the field's type.

    ``search.flops_budget`` is the preset's budget for the final ``model.module`` unless the file or an override
    sets it (``search.flops_budget=null`` disables the constraint). ``search.population`` given alone also sets
    ``crossover = mutation = population // 2`` and caps ``top_k`` at it.

    # Raises
        ConfigError: unknown preset / key, unparsable or disallowed value, out-of-range value.
    """
    if base is not None and preset is not None:
        raise ConfigError("load_config: give a preset or a base config, not both")
    p = None if base is not None else get_preset(preset or DEFAULT_PRESET)
    tree = config_to_dict(base if base is not None else RunConfig())
    if p is not None:
        merge_tree(tree, p.values, source=f"preset {p.name!r}")
    explicit = set()
    if path is not None:
        explicit |= merge_tree(tree, read_config_file(path), source=f"config file {path!r}")
    explicit |= _apply(tree, overrides)
    if p is not None and "search.flops_budget" not in explicit:
        tree["search"]["flops_budget"] = p.default_flops_budget(lower(tree["model"]["module"]))
    _derive_search_sizes(tree["search"], explicit)
    return config_from_dict(tree)


def apply_overrides(cfg: RunConfig, overrides: Sequence[str]) -> RunConfig:
    """A new validated `RunConfig`: `cfg` with ``key=value`` overrides applied (no preset logic)."""
    return load_config(overrides=overrides, base=cfg)


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
    return fingerprint.canonical_json(config_to_dict(obj) if isinstance(obj, BaseModel) else obj)


def config_hash(obj: Any, length: Optional[int] = None) -> str:
    """Stable sha256 hex digest of the canonical JSON of `obj` (a config, a section, or a dict); `length`
    truncates it. Use it to key caches/checkpoints on the parts of the config that matter."""
    return fingerprint.stable_hash(config_to_dict(obj) if isinstance(obj, BaseModel) else obj, length)


def preset_config(name: str = DEFAULT_PRESET, module: Optional[str] = None) -> RunConfig:
    """A fresh `RunConfig` for preset `name` (optionally for another module, with that module's budget)."""
    return load_config(preset=name, overrides=[f"model.module={module}"] if module is not None else ())
