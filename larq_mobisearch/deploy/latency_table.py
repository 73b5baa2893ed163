"""Latency lookup tables: the `LatencyTable`, its JSON schema, load and save (what it measures: `table_plan`).

A table holds one measured time per distinct layer configuration (kind, kernel, input size, channels, groups,
stride, threads) plus ``fixed_ms`` for everything else; the search predicts ``fixed_ms + sum of the genotype's
entries``. Its ``scope`` says which layers have entries:

- ``gene_layers`` (default; group genes only): the searchable convs; the pointwise convs are in ``fixed_ms``
  (`larq_mobisearch.search.costs.LatencyCostModel`);
- ``block_convs`` (spaces with width genes, where a block's width changes every conv it touches): every conv of
  blocks 1..13, at every pair of (input, output) widths the space allows (`table_plan.block_table_keys`); ``fixed_ms`` holds
  the stem, shortcuts, pooling, classifier and the per-call cost (`larq_mobisearch.search.costs.WidthLatencyCostModel`).

Host tables come from `host_table`, device tables from `device_table` (``gene_layers`` only).

Pure Python (pydantic, no TensorFlow): the search and the cost model import it cheaply, and it imports
nothing from `larq_mobisearch.search`.

JSON format (version 1)::

    {"version": 1,
     "machine": {"platform": ..., "cpu": ..., "lce_version": ..., "threads": 1, ...},
     "source": "host" | "device:<name>",
     "entries": [{"key": {"kind": "binary", "kernel": 3, "in_size": [112, 112], "in_channels": 32,
                          "out_channels": 32, "groups": 1, "stride": 1, "threads": 1},
                  "ms": 1.234, ...}],
     "fixed_ms": 5.67,
     "scope": "gene_layers" | "block_convs",    (optional, default "gene_layers")
     "architecture": {"module": "m3", "input_shape": [224, 224, 3], "num_classes": 1000,
                      "width_multiplier": 1.0},
     "calibration": {...}, "method": "..."}
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from pydantic import ValidationError

from ..choices import DEFAULT_STEM
from ..fileio import atomic_write_text
from ..nn.specs import Architecture
from .schema import DEVICE_PREFIX, TABLE_VERSION, TableFile, TableKey, describe_validation_error

from .table_plan import SCOPE_GENES, describe_key, key_id

ARCH_FIELDS = ("module", "input_shape", "num_classes", "width_multiplier")


class LatencyTableError(ValueError):
    """A latency table that is corrupt, incomplete, or does not match the architecture / threads asked for."""


# --------------------------------------------------------------------------------------------------------
# Machine and architecture descriptions


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(dist: str) -> str:
    """Installed version of distribution `dist`, or "unknown"."""
    try:
        from importlib import metadata

        return metadata.version(dist)
    except Exception:  # pragma: no cover - not installed
        return "unknown"


def machine_info(threads: int = 1, use_indirect_bgemm: bool = True, **extra) -> Dict[str, Any]:
    """Description of this host for a table's ``machine`` field."""
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow_version": package_version("tensorflow"),
        "lce_version": package_version("larq-compute-engine"),
        "larq_version": package_version("larq"),
        "threads": int(threads),
        "use_indirect_bgemm": bool(use_indirect_bgemm),
    }
    info.update(extra)
    return info


def architecture_info(arch: Architecture) -> Dict[str, Any]:
    """The JSON ``architecture`` field of a table or manifest (``stem`` only when not the default, so that
    tables of MobileNet-stem networks keep their old form)."""
    info = {
        "module": arch.module,
        "input_shape": [int(s) for s in arch.input_shape],
        "num_classes": int(arch.num_classes),
        "width_multiplier": float(arch.width_multiplier),
    }
    if arch.stem_kind != DEFAULT_STEM:
        info["stem"] = arch.stem_kind
    return info


def describe_architecture(info: Mapping[str, Any]) -> str:
    """``M3 224x224x3, 1000 classes, width 1`` (``, quicknet stem`` for another stem) from an
    `architecture_info` dict."""
    h, w, c = info["input_shape"]
    stem = info.get("stem", DEFAULT_STEM)
    return (
        f"{str(info['module']).upper()} {h}x{w}x{c}, {info['num_classes']} classes, "
        f"width {info['width_multiplier']:g}" + ("" if stem == DEFAULT_STEM else f", {stem} stem")
    )


# --------------------------------------------------------------------------------------------------------
# The table


@dataclass
class LatencyTable:
    """An in-memory latency table (see the module docstring for the JSON format)."""

    machine: Dict[str, Any]
    source: str
    entries: Dict[str, Dict[str, Any]]  # key_id -> {"key": ..., "ms": ..., ...}
    fixed_ms: Optional[float]
    architecture: Dict[str, Any]
    calibration: Optional[Dict[str, Any]] = None
    method: str = ""
    version: int = TABLE_VERSION
    scope: str = SCOPE_GENES

    @property
    def threads(self) -> int:
        return int(self.machine["threads"])

    @property
    def complete(self) -> bool:
        return self.fixed_ms is not None

    def lookup(self, key: Mapping[str, Any]) -> float:
        entry = self.entries.get(key_id(key))
        if entry is None:
            raise KeyError(key_id(key))
        return float(entry["ms"])

    def add(self, key: Mapping[str, Any], ms: float, **info) -> None:
        try:
            key = TableKey.model_validate(dict(key)).model_dump()
        except ValidationError as exc:
            raise LatencyTableError(describe_validation_error(exc, "entry key")) from None
        key["in_size"] = list(key["in_size"])
        self.entries[key_id(key)] = {"key": key, "ms": float(ms), **info}

    def check_architecture(self, arch: Architecture) -> None:
        """Raise LatencyTableError if this table was made for another architecture."""
        want = architecture_info(arch)
        have = self.architecture
        same = (
            str(have.get("module")).lower() == want["module"]
            and list(have.get("input_shape", [])) == want["input_shape"]
            and int(have.get("num_classes", -1)) == want["num_classes"]
            and math.isclose(float(have.get("width_multiplier", -1)), want["width_multiplier"], rel_tol=1e-9)
            and str(have.get("stem", DEFAULT_STEM)) == want.get("stem", DEFAULT_STEM)
        )
        if not same:
            how = (
                "export its calibration models and benchmark them on the device (export/README.md)"
                if self.source.startswith(DEVICE_PREFIX)
                else "mobisearch latency build ..."
            )
            raise LatencyTableError(
                f"This latency table ({self.source}) was measured for {describe_architecture(have)}, not for "
                f"{describe_architecture(want)}: its fixed part (stem, pointwise convs, classifier) does not apply. "
                f"Make a table for this architecture ({how})."
            )

    def to_json(self) -> Dict[str, Any]:
        out = {
            "version": self.version,
            "machine": self.machine,
            "source": self.source,
            "entries": list(self.entries.values()),
            "fixed_ms": self.fixed_ms,
            "architecture": self.architecture,
        }
        if self.calibration is not None:
            out["calibration"] = self.calibration
        if self.method:
            out["method"] = self.method
        if self.scope != SCOPE_GENES:
            out["scope"] = self.scope
        return out


def _entry_context(data: Any, loc: Tuple) -> str:
    """`` (binary 3x3 conv ...)`` for an error inside entries[i], when that entry's key is readable."""
    if len(loc) < 2 or loc[0] != "entries" or not isinstance(loc[1], int):
        return ""
    try:
        key = TableKey.model_validate(data["entries"][loc[1]]["key"]).model_dump()
    except Exception:  # noqa: BLE001 - the key itself is what is broken
        return ""
    return f" ({describe_key(key)})"


def validate_table_json(data: Any, *, allow_partial: bool = False, where: str = "latency table") -> LatencyTable:
    """Check a table's parsed JSON against the schema and return a `LatencyTable`.

    Raises LatencyTableError naming every problem by its dotted location (``entries.0.ms``) and the value
    received; also refuses entries measured with another thread count than ``machine.threads``, duplicate
    configurations, and ``fixed_ms: null`` (an interrupted build) unless `allow_partial`.
    """
    if not isinstance(data, dict):
        raise LatencyTableError(f"{where}: expected a JSON object, received {type(data).__name__}")
    try:
        parsed = TableFile.model_validate(data)
    except ValidationError as exc:
        raise LatencyTableError(describe_validation_error(exc, where, context=lambda loc: _entry_context(data, loc)))
    threads = parsed.machine.threads
    if parsed.fixed_ms is None and not allow_partial:
        raise LatencyTableError(
            f"{where}: fixed_ms: null (an interrupted build); finish it by re-running the build"
        )
    table = LatencyTable(
        machine=dict(data["machine"]),
        source=parsed.source,
        entries={},
        fixed_ms=None if parsed.fixed_ms is None else float(parsed.fixed_ms),
        architecture=dict(data["architecture"]),
        calibration=data.get("calibration"),
        method=str(data.get("method") or ""),
        scope=parsed.scope,
    )
    for i, (raw, entry) in enumerate(zip(data["entries"], parsed.entries)):
        key = entry.key.model_dump()
        key["in_size"] = list(key["in_size"])
        here = f"{where}: entries.{i} ({describe_key(key)})"
        if key["threads"] != threads:
            raise LatencyTableError(
                f"{here}: key.threads: measured with {key['threads']} threads, the table says {threads} "
                "(machine.threads)"
            )
        kid = key_id(key)
        if kid in table.entries:
            raise LatencyTableError(f"{here}: duplicate entry for this configuration")
        table.entries[kid] = {**raw, "key": key, "ms": float(entry.ms)}
    return table


def save_latency_table(table: LatencyTable, path: Union[str, os.PathLike]) -> None:
    """Write `table` as JSON, atomically."""
    validate_table_json(table.to_json(), allow_partial=not table.complete)  # never write what we cannot load
    atomic_write_text(path, json.dumps(table.to_json(), indent=1) + "\n")


def load_latency_table(path: Union[str, os.PathLike], *, allow_partial: bool = False) -> LatencyTable:
    """Read and validate a latency table JSON file (plain JSON only; nothing is executed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"No latency table at {path}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LatencyTableError(f"Latency table {path} is not valid JSON ({exc}); rebuild it") from None
    return validate_table_json(data, allow_partial=allow_partial, where=f"Latency table {path}")
