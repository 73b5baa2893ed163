"""Stable hashes of JSON-able settings and readable differences between two nested settings trees.

Pure Python. The config, the search state file and the run directory all compare settings with these.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Optional


def canonical_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=str)


def stable_hash(obj: Any, length: Optional[int] = None) -> str:
    """sha256 hex digest of `canonical_json(obj)`, optionally truncated to `length` characters."""
    digest = hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()
    return digest[:length] if length else digest


def flatten(obj: Any, prefix: str = "") -> Dict[str, Any]:
    """``{"a": {"b": 1}, "c": [{"d": 2}]}`` -> ``{"a.b": 1, "c[0].d": 2}`` (lists of objects are indexed)."""
    if isinstance(obj, dict):
        out: Dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: obj}


MISSING = "<missing>"


def diff_keys(a: Any, b: Any, a_label: str = "before", b_label: str = "now") -> List[str]:
    """One line per dotted key whose value differs: ``"search.population: 12 before, 20 now"``."""
    fa, fb = flatten(a), flatten(b)
    lines = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, MISSING), fb.get(key, MISSING)
        if va != vb:
            lines.append(f"{key}: {va!r} {a_label}, {vb!r} {b_label}")
    return lines
