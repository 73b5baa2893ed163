"""Small helpers for the files of a run directory."""

from __future__ import annotations

import hashlib
from typing import Optional


def sha256_file(path: str, limit: Optional[int] = None) -> str:
    """sha256 hex digest of a file's bytes (optionally truncated to `limit` characters)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:limit]
