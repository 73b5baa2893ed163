"""Stable hashes and key-by-key differences of nested JSON-like values (pure Python, no package imports).

One hash and one differ for every place that compares a saved configuration with the current one: the run
directory's ``config.json`` (`pipeline.Run.open`), `config.config_hash`, and the search state files
(`search.state`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, List, Optional, Tuple


class _Missing:
    """Marks a key present on one side of a difference only."""

    def __repr__(self) -> str:
        return "<missing>"


#: The value `diff_keys` reports for a key that one side does not have.
MISSING: Any = _Missing()


def canonical_json(obj: Any) -> str:
    """Canonical JSON of a JSON-able value: sorted keys, no whitespace, ASCII, no NaN/Infinity."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def stable_hash(obj: Any, length: Optional[int] = None) -> str:
    """sha256 hex digest of `canonical_json(obj)`, truncated to `length` characters if given.

    # Arguments
        obj: a JSON-able value (dicts, lists, strings, numbers, booleans, None).
        length: optional number of hex characters to keep.

    # Returns
        The hex digest; equal values (dict key order aside) give equal digests across runs and machines.
    """
    digest = hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()
    return digest[:length] if length else digest


def diff_keys(a: Any, b: Any, prefix: str = "") -> List[Tuple[str, Any, Any]]:
    """The leaves where two nested values differ, as ``(dotted_key, value_in_a, value_in_b)``.

    Dicts are compared key by key (``"search.seed"``); lists whose items are all dicts item by item
    (``"constraints[0].budget"``); anything else as a whole. A key on one side only is reported with
    `MISSING` on the other side.

    # Arguments
        a, b: the two values (e.g. the saved config and the current one).
        prefix: key prefix of `a` and `b` themselves (empty at the top level).

    # Returns
        The differing leaves, sorted by key within each dict.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        out: List[Tuple[str, Any, Any]] = []
        for k in sorted(set(a) | set(b), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            out += diff_keys(a.get(k, MISSING), b.get(k, MISSING), key)
        return out
    if _dict_list(a) and _dict_list(b) and (a or b):
        out = []
        for i in range(max(len(a), len(b))):
            out += diff_keys(a[i] if i < len(a) else MISSING, b[i] if i < len(b) else MISSING, f"{prefix}[{i}]")
        return out
    return [] if _same(a, b) else [(prefix, a, b)]


def _dict_list(x: Any) -> bool:
    return isinstance(x, list) and all(isinstance(v, dict) for v in x)


def _same(a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return a is b
    return a == b
