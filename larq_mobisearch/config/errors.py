"""Configuration errors: pydantic's validation errors turned into one line per problem, each naming the
dotted key, the value received and what is allowed (a range, the choices, or the rule of a cross-field check)."""

from __future__ import annotations

import difflib
import typing
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from pydantic import ValidationError


class ConfigError(ValueError):
    """A bad configuration: unknown key, unparsable value, value not allowed or out of range."""


def received_text(value: Any) -> str:
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


def unknown_key(key: str, valid: Sequence[str], received: Any, all_keys: Sequence[str] = ()) -> str:
    """Unknown dotted key: the closest valid key, and the valid keys of its section."""
    close = difflib.get_close_matches(key, list(valid) + list(all_keys), n=1, cutoff=0.7)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Unknown config key {key!r} (received value {received!r}).{hint} Valid keys: {', '.join(valid)}"


def keys_of(models: Mapping[str, type], section: Optional[str] = None) -> Tuple[str, ...]:
    """Dotted keys of every section model in `models` (or of one section)."""
    return tuple(f"{s}.{f}" for s in ([section] if section else models) for f in models[s].model_fields)


def _names_a_key(message: str, sections: Sequence[str]) -> bool:
    """Whether `message` starts with a dotted key of one of `sections` (``search.top_k: ...``)."""
    key = message.split(":", 1)[0]
    return "." in key and key.split(".", 1)[0] in sections and " " not in key


def config_error(exc: ValidationError, models: Mapping[str, type], prefix: Tuple[str, ...] = ()) -> ConfigError:
    """One `ConfigError` for a pydantic `ValidationError` of (a section of) a tree whose sections are the
    pydantic models `models` (section name -> model), one line per problem."""
    SECTIONS = tuple(models)
    lines = []
    for error in exc.errors():
        loc = tuple(prefix) + tuple(str(x) for x in error["loc"])
        key = ".".join(loc)
        section = loc[0] if loc and loc[0] in SECTIONS else None
        model = models[section] if section else None
        name = loc[1] if section and len(loc) > 1 else None
        if error["type"] == "extra_forbidden":
            lines.append(unknown_key(key, keys_of(models, section) if section and len(loc) > 1 else SECTIONS,
                                     error.get("input"), keys_of(models)))
        elif error["type"] in ("model_type", "model_attributes_type", "dict_type"):
            fields = ", ".join(keys_of(models, section)) if section else ", ".join(SECTIONS)
            lines.append(f"{key or 'config'}: expected a mapping of fields ({fields}), received {error['input']!r}")
        elif error["type"] == "value_error" and _names_a_key(str(error["msg"]).removeprefix("Value error, "), SECTIONS):
            # cross-field checks name their key; so does the `ConfigError` of a section validated inside the
            # tree (pydantic reports it at the tree's level, with the whole tree as input)
            lines.append(str(error["msg"]).removeprefix("Value error, "))
        else:
            lines.append(f"{key}: received {received_text(error.get('input'))}; {_requirement(error, model, name)}")
    return ConfigError("\n".join(lines))
