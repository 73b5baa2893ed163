"""JSON schemas (pydantic v2) of the files deploy reads and writes, and readable validation messages.

- `TableFile`: a latency table (``latency_table``); `Manifest`: a set of calibration models (``calibration``).
- `describe_validation_error`: each problem on one line, by its dotted location (``entries.3.key.groups``), with
  what is wrong and the value received.

Models forbid unknown fields (``extra="forbid"``), except the free-form ``machine`` description of a table.
Pure Python.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Callable, Dict, List, Literal, Optional, Tuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, field_validator

from ..choices import DEFAULT_STEM, SPACE_MODES, STEMS
from .table_plan import SCOPE_GENES, SCOPES

TABLE_VERSION = 1
MANIFEST_VERSION = 1
SOURCE_HOST = "host"
DEVICE_PREFIX = "device:"


PositiveInt = Annotated[StrictInt, Field(gt=0)]


def _number(lower: Optional[float], inclusive: bool) -> Any:
    """A JSON number (not a bool or a string), finite, above `lower`; as float."""
    bound = "" if lower is None else f" {'>=' if inclusive else '>'} {lower:g}"

    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (
            lower is not None and (v < lower if inclusive else v <= lower)
        ):
            raise ValueError(f"must be a finite number{bound}")
        return float(v)

    return Annotated[Any, AfterValidator(check)]


Ms = _number(0.0, inclusive=True)
Number = _number(None, inclusive=True)



def _positive_dims(v, shape: str):
    """Pydantic check of a list of sizes: every entry >= 1, else the error names the expected shape."""
    if any(s < 1 for s in v):
        raise ValueError(f"must be {shape}, positive integers")
    return v

class TableKey(BaseModel):
    """One layer configuration."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["binary", "float"]
    kernel: PositiveInt
    in_size: Tuple[StrictInt, StrictInt]
    in_channels: PositiveInt
    out_channels: PositiveInt
    groups: PositiveInt
    stride: PositiveInt
    threads: PositiveInt

    @field_validator("in_size")
    @classmethod
    def _positive_size(cls, v):
        return _positive_dims(v, "[height, width]")


class TableEntry(BaseModel):
    """One measured configuration: its key, its time, and how it was obtained."""

    model_config = ConfigDict(extra="forbid")
    key: TableKey
    ms: Ms
    layers: Optional[List[str]] = None  # the searchable layers with this configuration
    stats: Optional[Dict[str, Optional[Number]]] = None  # host: the timing statistics
    samples: Optional[StrictInt] = None  # device: profiled layers x runs averaged
    spread_ms: Optional[Tuple[Number, Number]] = None  # device: min and max of those samples


class MachineInfo(BaseModel):
    """Where the table was measured. Free-form description (any extra keys), but ``threads`` is required."""

    model_config = ConfigDict(extra="allow")
    threads: PositiveInt


class ArchitectureInfo(BaseModel):
    """The architecture a table or manifest was made for (`architecture_info`)."""

    model_config = ConfigDict(extra="forbid")
    module: Literal["m1", "m2", "m3"]
    input_shape: Tuple[StrictInt, StrictInt, StrictInt]
    num_classes: PositiveInt
    width_multiplier: _number(0.0, inclusive=False)
    stem: Literal[STEMS] = DEFAULT_STEM

    @field_validator("input_shape")
    @classmethod
    def _positive_shape(cls, v):
        return _positive_dims(v, "[height, width, channels]")


class TableFile(BaseModel):
    """A latency table JSON file (version 1)."""

    model_config = ConfigDict(extra="forbid")
    version: StrictInt
    machine: MachineInfo
    source: str
    entries: List[TableEntry]
    fixed_ms: Optional[Number]
    architecture: ArchitectureInfo
    calibration: Optional[Dict[str, Any]] = None
    method: Optional[str] = None
    scope: Literal[SCOPES] = SCOPE_GENES

    @field_validator("version")
    @classmethod
    def _version(cls, v):
        if v != TABLE_VERSION:
            raise ValueError(f"unsupported version {v} (this code reads {TABLE_VERSION})")
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v):
        if not (v == SOURCE_HOST or (v.startswith(DEVICE_PREFIX) and len(v) > len(DEVICE_PREFIX))):
            raise ValueError(f"must be '{SOURCE_HOST}' or '{DEVICE_PREFIX}<name>'")
        return v


class ManifestModel(BaseModel):
    """One calibration model: a plain file name next to the manifest, and its genotype."""

    model_config = ConfigDict(extra="forbid")
    file: StrictStr
    genotype: List[Annotated[StrictInt, Field(gt=0)]] = Field(min_length=1)

    @field_validator("file")
    @classmethod
    def _plain_name(cls, v):
        if not v or "/" in v or "\\" in v or v.startswith("."):
            raise ValueError("model file names must be plain names (no directories, not hidden)")
        return v


class ManifestSpace(BaseModel):
    """The search space with width genes whose ``block_convs`` table the models calibrate (`nn.space.SearchSpace`
    arguments); absent for a groups-only space."""

    model_config = ConfigDict(extra="forbid")
    genes: Literal["width", "joint"]
    mode: Literal[SPACE_MODES]  # type: ignore[valid-type]
    width_choices: List[_number(0.0, inclusive=False)] = Field(min_length=1)
    max_groups: Optional[PositiveInt] = None


class Manifest(BaseModel):
    """``manifest.json`` of a set of calibration models (genotypes full, group counts then block widths, when
    ``space`` is given)."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[MANIFEST_VERSION]
    architecture: ArchitectureInfo
    space: Optional[ManifestSpace] = None
    models: List[ManifestModel] = Field(min_length=1)


#: pydantic prefixes the message of a ValueError raised in a validator with this.
_VALUE_ERROR = "Value error, "


def _received(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe_validation_error(
    exc: ValidationError, where: str, *, context: Optional[Callable[[Tuple], str]] = None
) -> str:
    """One message for all problems of `exc`: ``<where>: <loc>: <what> (received <value>)``, one per line.

    # Arguments
        exc: the pydantic error.
        where: what was validated, e.g. ``"Latency table runs/t.json"``.
        context: optional ``loc -> text`` appended after the location (e.g. which layer an entry is).

    # Returns
        The message (the first line names the number of problems when there are several).
    """
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        msg = str(err.get("msg", "invalid"))
        if msg.startswith(_VALUE_ERROR):
            msg = msg[len(_VALUE_ERROR):]
        kind = err.get("type", "")
        if kind == "missing":
            line = f"{dotted}: required field missing"
        elif kind == "extra_forbidden":
            line = f"{dotted}: unknown field (received {_received(err.get('input'))})"
        else:
            line = f"{dotted}: {msg} (received {_received(err.get('input'))})"
        if context is not None:
            extra = context(loc)
            if extra:
                line = line.replace(": ", f"{extra}: ", 1)
        lines.append(line)
    if len(lines) == 1:
        return f"{where}: {lines[0]}"
    return f"{where}: {len(lines)} problems:\n" + "\n".join(f"  {line}" for line in lines)
