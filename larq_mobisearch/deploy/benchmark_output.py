"""Parse the output of LCE's ``lce_benchmark_model`` (TensorFlow Lite's ``benchmark_model`` with LCE's ops).

Run with ``--use_indirect_bgemm=true --num_threads=N --enable_op_profiling=true`` (see ``export/README.md``)
it prints:

- its parameters (``Graph: [...]``, ``Num threads: [1]``, ``Use indirect BGEMM: [1]``, ...);
- one ``count=... first=... curr=... min=... max=... avg=... std=...`` line (microseconds) after each of
  ``Running benchmark for at least ...`` (the warm-up runs first, then the regular runs);
- ``Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ..., Inference (avg): ...``;
- the op profile ("Operator-wise Profiling Info for Regular Benchmark Runs:"): a "Run Order" table with one
  row per node ([node type], optional [start], [first], [avg ms], [%], [cdf%], [mem KB], [times called],
  [Name] = ``[output tensor names]:node index``), "Top by Computation Time", "Summary by node type" and
  ``Timings (microseconds): ...``.

`parse_benchmark_output` reads the columns from each table's header line, so it accepts both the older layout
with a ``[start]`` column and the newer one without it, tab- or space-separated, with or without ``INFO:``
prefixes. Lines it does not know are ignored. Pure Python.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

_PREFIX = re.compile(r"^(?:INFO|WARN|WARNING|ERROR|VERBOSE): ?")
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_SECTION = re.compile(r"^=+ (?P<title>.+?) =+$")
_PARAM = re.compile(r"^(?P<name>[^:\[\]]+?): \[(?P<value>.*)\]$")
_NODE_NAME = re.compile(r"^\[(?P<outputs>.*)\]:(?P<index>\d+)$")


class BenchmarkOutputError(ValueError):
    """The text is not (complete) lce_benchmark_model output, or cannot be mapped to the architecture."""


# --------------------------------------------------------------------------------------------------------
# Parsed output


@dataclass(frozen=True)
class RunStats:
    """A ``count=... first=... curr=... min=... max=... avg=... std=...`` line (microseconds)."""

    count: int
    first: Optional[float] = None
    curr: Optional[float] = None
    min: Optional[float] = None
    max: Optional[float] = None
    avg: Optional[float] = None
    std: Optional[float] = None

    @classmethod
    def parse(cls, text: str) -> "RunStats":
        fields = {k: float(v) for k, v in re.findall(rf"(\w+)=({_NUM})", text)}
        if "count" not in fields:
            raise BenchmarkOutputError(f"Not a statistics line: {text!r}")
        all_same = "(all same)" in text or set(fields) == {"count", "curr"}
        if all_same and "curr" in fields:  # "count=5 curr=123(all same)": every value is curr
            c = fields["curr"]
            return cls(int(fields["count"]), c, c, c, c, c, 0.0)
        return cls(
            int(fields["count"]),
            fields.get("first"),
            fields.get("curr"),
            fields.get("min"),
            fields.get("max"),
            fields.get("avg"),
            fields.get("std"),
        )


@dataclass(frozen=True)
class OpRow:
    """One row of a per-node table ("Run Order", "Top by Computation Time")."""

    node_type: str
    avg_ms: float
    first_ms: float
    percent: float
    cdf_percent: float
    mem_kb: float
    times_called: int
    name: str
    start_ms: Optional[float] = None

    @property
    def node_index(self) -> Optional[int]:
        m = _NODE_NAME.match(self.name)
        return int(m.group("index")) if m else None

    @property
    def output_names(self) -> Tuple[str, ...]:
        m = _NODE_NAME.match(self.name)
        inner = m.group("outputs") if m else self.name
        return tuple(s.strip() for s in inner.split(", ") if s.strip())

    @property
    def ms_per_run(self) -> float:
        """Time of this node per inference (avg per call x calls per run)."""
        return self.avg_ms * max(self.times_called, 1)


@dataclass(frozen=True)
class TypeRow:
    """One row of "Summary by node type"."""

    node_type: str
    count: int
    avg_ms: float
    avg_percent: float
    cdf_percent: float
    mem_kb: float
    times_called: int


@dataclass
class ProfileSection:
    """One profiling block (benchmark initialization, or the regular runs)."""

    run_order: List[OpRow] = field(default_factory=list)
    top_by_time: List[OpRow] = field(default_factory=list)
    by_type: List[TypeRow] = field(default_factory=list)
    timings: Optional[RunStats] = None
    nodes_executed: Optional[int] = None
    nodes_observed: Optional[int] = None


@dataclass
class BenchmarkOutput:
    """Everything `parse_benchmark_output` found. Times in microseconds unless the name says ms."""

    params: Dict[str, str] = field(default_factory=dict)
    init_us: Optional[float] = None
    first_inference_us: Optional[float] = None
    warmup_avg_us: Optional[float] = None
    inference_avg_us: Optional[float] = None
    warmup: Optional[RunStats] = None
    regular: Optional[RunStats] = None
    model_size_mb: Optional[float] = None
    init_profile: Optional[ProfileSection] = None
    profile: Optional[ProfileSection] = None
    errors: List[str] = field(default_factory=list)

    @property
    def inference_avg_ms(self) -> float:
        if self.inference_avg_us is not None:
            return self.inference_avg_us / 1e3
        if self.regular is not None and self.regular.avg is not None:
            return self.regular.avg / 1e3
        raise BenchmarkOutputError(
            "No 'Inference timings in us: ...' line (did lce_benchmark_model finish? errors: "
            f"{self.errors or 'none'})"
        )

    @property
    def ops(self) -> List[OpRow]:
        """Per-node rows of the regular runs, in run order."""
        return list(self.profile.run_order) if self.profile else []

    @property
    def num_threads(self) -> Optional[int]:
        for k in ("Num threads", "#threads used for CPU inference"):
            v = self.params.get(k)
            if v is not None and re.fullmatch(r"-?\d+", v.strip()):
                return int(v)
        return None

    @property
    def use_indirect_bgemm(self) -> Optional[bool]:
        v = self.params.get("Use indirect BGEMM")
        return None if v is None else v.strip().lower() in ("1", "true")

    @property
    def graph(self) -> Optional[str]:
        return self.params.get("Graph")

    def describe(self, top: int = 10) -> List[str]:
        """Human-readable summary: settings, whole-model timings, the time per node type and the `top` slowest
        nodes (what ``mobisearch device parse`` prints)."""
        lines: List[str] = []
        lines.append(f"graph: {self.graph}  threads: {self.num_threads}  indirect BGEMM: {self.use_indirect_bgemm}")
        if self.inference_avg_us is not None:
            lines.append(f"inference avg: {self.inference_avg_us / 1e3:.3f} ms  (init {self.init_us} us, first "
                         f"{self.first_inference_us} us, warm-up avg {self.warmup_avg_us} us)")
        if self.regular is not None:
            r = self.regular
            lines.append(f"regular runs: count={r.count} min={r.min} max={r.max} avg={r.avg} std={r.std} (us)")
        if self.profile is not None:
            lines.append(f"profiled nodes: {len(self.ops)}")
            for r in self.profile.by_type:
                lines.append(f"  {r.node_type:<24} x{r.count:<4} {r.avg_ms:9.3f} ms  {r.avg_percent:6.2f}%")
            for r in sorted(self.ops, key=lambda r: -r.ms_per_run)[:top]:
                lines.append(f"  {r.ms_per_run:9.3f} ms  {r.node_type:<14} {r.name}")
        for e in self.errors:
            lines.append(f"error in output: {e}")
        return lines

    def summary(self) -> Dict[str, Any]:
        return {
            "graph": self.graph,
            "num_threads": self.num_threads,
            "use_indirect_bgemm": self.use_indirect_bgemm,
            "init_us": self.init_us,
            "first_inference_us": self.first_inference_us,
            "warmup_avg_us": self.warmup_avg_us,
            "inference_avg_us": self.inference_avg_us,
            "regular_runs": None if self.regular is None else self.regular.__dict__,
            "profiled_nodes": len(self.ops),
            "by_type_ms": {r.node_type: r.avg_ms for r in (self.profile.by_type if self.profile else [])},
            "errors": self.errors,
        }


def _header_columns(line: str) -> List[str]:
    return [c.lower() for c in re.findall(r"\[([^\]]+)\]", line)]


def _row_regex(n_numeric: int) -> re.Pattern:
    nums = "".join(rf"\s+({_NUM})%?" for _ in range(n_numeric))
    return re.compile(rf"^\s*(?P<type>\S.*?){nums}(?:\s+(?P<name>\S.*?))?\s*$")


def _parse_table_row(line: str, columns: List[str]):
    """Split a table row by the header's columns: first the node type, then numbers, then (optionally) the name."""
    has_name = columns[-1] == "name"
    numeric = columns[1:-1] if has_name else columns[1:]
    m = _row_regex(len(numeric)).match(line)
    if not m:
        return None
    values = dict(zip(numeric, (float(v) for v in m.groups()[1 : 1 + len(numeric)])))
    return m.group("type").strip(), values, (m.group("name") or "").strip()


def parse_benchmark_output(text: str) -> BenchmarkOutput:
    """Parse the stdout/stderr of ``lce_benchmark_model`` (or TFLite's ``benchmark_model``).

    Raises BenchmarkOutputError if the text has neither a timing summary nor an op profile.
    """
    out = BenchmarkOutput()
    section: Optional[ProfileSection] = None
    table: Optional[str] = None
    columns: List[str] = []
    for raw in text.splitlines():
        line = _PREFIX.sub("", raw.rstrip("\r\n"))
        s = line.strip()
        if not s:
            table = None  # a blank line ends a table
            continue
        if raw.startswith(("ERROR:", "FATAL:")) or s.startswith(("Failed", "Error")):
            out.errors.append(s)
        if s.startswith("Profiling Info for Benchmark Initialization"):
            section = out.init_profile = ProfileSection()
            table = None
            continue
        if s.startswith("Operator-wise Profiling Info for Regular Benchmark Runs"):
            section = out.profile = ProfileSection()
            table = None
            continue
        m = _SECTION.match(s)
        if m:
            title = m.group("title").strip().lower()
            table = {"run order": "run_order", "top by computation time": "top_by_time",
                     "summary by node type": "by_type"}.get(title, "other")
            columns = []
            continue
        if s.startswith("Running benchmark for at least"):
            continue
        if s.startswith("count=") and section is None:
            stats = RunStats.parse(s)
            if out.warmup is None:
                out.warmup = stats
            else:
                out.regular = stats
            continue
        if s.startswith("Inference timings in us:"):
            for label, attr in (("Init", "init_us"), ("First inference", "first_inference_us"),
                                ("Warmup (avg)", "warmup_avg_us"), ("Inference (avg)", "inference_avg_us")):
                mm = re.search(re.escape(label) + rf":\s*({_NUM})", s)
                if mm:
                    setattr(out, attr, float(mm.group(1)))
            continue
        if s.startswith("The input model file size (MB):"):
            mm = re.search(_NUM + r"\s*$", s)
            if mm:
                out.model_size_mb = float(mm.group(0))
            continue
        if section is not None:
            if s.startswith("Timings (microseconds):"):
                section.timings = RunStats.parse(s.split(":", 1)[1])
                table = None
                continue
            mm = re.match(r"^Number of nodes executed: (\d+)$", s)
            if mm:
                section.nodes_executed = int(mm.group(1))
                continue
            mm = re.match(r"^(\d+) nodes observed$", s)
            if mm:
                section.nodes_observed = int(mm.group(1))
                continue
            if s.startswith("Memory (bytes):"):
                continue
            if table in ("run_order", "top_by_time", "by_type"):
                if s.startswith("["):
                    columns = _header_columns(s)
                    continue
                if not columns:
                    continue
                parsed = _parse_table_row(line, columns)
                if parsed is None:
                    continue
                node_type, v, name = parsed
                if table == "by_type":
                    section.by_type.append(TypeRow(
                        node_type, int(v.get("count", 0)), v.get("avg ms", math.nan), v.get("avg %", math.nan),
                        v.get("cdf %", math.nan), v.get("mem kb", math.nan), int(v.get("times called", 0)),
                    ))
                else:
                    row = OpRow(
                        node_type, v.get("avg ms", math.nan), v.get("first", math.nan), v.get("%", math.nan),
                        v.get("cdf%", math.nan), v.get("mem kb", math.nan), int(v.get("times called", 1)),
                        name, v.get("start"),
                    )
                    (section.run_order if table == "run_order" else section.top_by_time).append(row)
                continue
        mm = _PARAM.match(s)
        if mm and section is None:
            out.params.setdefault(mm.group("name").strip(), mm.group("value"))
    if out.inference_avg_us is None and out.profile is None:
        raise BenchmarkOutputError(
            "No benchmark results found (no 'Inference timings in us' line and no op profile). "
            + (f"Errors in the output: {out.errors}" if out.errors else "Is this lce_benchmark_model output?")
        )
    return out
