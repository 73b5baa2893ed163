"""Device latency: parse LCE's ``lce_benchmark_model`` output and turn it into a latency table.

``lce_benchmark_model`` is TensorFlow Lite's ``benchmark_model`` with LCE's ops registered (built from
``//larq_compute_engine/tflite/benchmark:lce_benchmark_model``; see ``export/README.md``). Run with
``--use_indirect_bgemm=true --num_threads=N --enable_op_profiling=true`` it prints:

- its parameters (``Graph: [...]``, ``Num threads: [1]``, ``Use indirect BGEMM: [1]``, ...);
- one ``count=... first=... curr=... min=... max=... avg=... std=...`` line (microseconds) after each of
  ``Running benchmark for at least ...`` (the warm-up runs first, then the regular runs);
- ``Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ..., Inference (avg): ...``;
- the op profile ("Operator-wise Profiling Info for Regular Benchmark Runs:"): a "Run Order" table with one
  row per node ([node type], optional [start], [first], [avg ms], [%], [cdf%], [mem KB], [times called],
  [Name] = ``[output tensor names]:node index``), "Top by Computation Time", "Summary by node type" and
  ``Timings (microseconds): ...``.

The parser (`parse_benchmark_output`) reads the columns from each table's header line, so it accepts both the
older layout with a ``[start]`` column and the newer one without it, tab- or space-separated, with or without
``INFO:`` prefixes. Lines it does not know are ignored.

From op rows to a latency table
-------------------------------
Each profiled node is attributed to a searchable layer of the architecture, by one of two methods:

- ``names`` (default when it works): LCE keeps the Keras layer names in the output tensor names
  (``binary_mobilenet_m3/block4_conv3x3_bn/FusedBatchNormV3`` for the ``LceBconv2d`` of ``block4_conv3x3``
  with its fused BatchNorm, ``.../block4_conv3x3/approx_sign/Sign`` for the ``LceQuantize`` binarizing its
  input). A node belongs to layer ``L`` if a ``/``- or ``;``-separated segment of one of its output names is
  ``L`` or ``L_bn``. If the converted ``.tflite`` is given, names are read from it by node index (exact even
  if the profile truncates names).
- ``order`` (fallback): conv nodes (``CONV_2D``, ``DEPTHWISE_CONV_2D``, ``LceBconv2d``) in run order are
  matched one-to-one with the architecture's convolutions (stem, then each block's convs), and each
  ``LceQuantize`` goes to the next ``LceBconv2d``.

A searchable layer's latency is the per-run time of its nodes (avg ms x times called per run). The table
entry for its configuration (at the genotype's group count) is the mean over the layers and runs that have
that configuration. ``fixed_ms`` is the mean over runs of ``Inference (avg) - sum of searchable-layer
times``: everything else (stem, pointwise convs, adds, pooling, classifier, interpreter overhead).

One run gives one group count per layer, so to cover the search space run a set of models whose genotypes
together use every candidate: `calibration_genotypes` gives the uniform genotypes (each gene clamped to its
largest legal count <= g, for each distinct candidate value g), and `export_calibration_models` writes them as
``.tflite`` files with a ``manifest.json`` that `table_from_manifest` reads back with the outputs.

Numbers from a device table are device measurements only if the outputs were captured on that device; the
test fixtures under ``tests/data`` are format samples with made-up numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .latency import (
    DEVICE_PREFIX,
    LatencyTable,
    architecture_info,
    atomic_write_text,
    describe_key,
    key_id,
    layer_key,
    reference_genotypes,
    save_latency_table,
)
from ..nn.specs import Architecture, architecture
from ..choices import MAPPINGS, check_choice

MANIFEST_VERSION = 1
CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "LceBconv2d")
QUANTIZE_OP = "LceQuantize"

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


# --------------------------------------------------------------------------------------------------------
# Attributing profiled nodes to searchable layers


def _segments(name: str) -> List[str]:
    return [p for p in re.split(r"[/;]", name) if p]


def layer_of_names(names: Sequence[str], layer_names: Sequence[str]) -> Optional[str]:
    """The searchable layer a node with output tensor `names` belongs to (None: not searchable).

    A segment ``L`` or ``L_bn`` of a name marks layer ``L``. Raises BenchmarkOutputError if the names point
    to two different searchable layers.
    """
    wanted = set(layer_names)
    found = set()
    for n in names:
        for seg in _segments(n):
            if seg in wanted:
                found.add(seg)
            elif seg.endswith("_bn") and seg[:-3] in wanted:
                found.add(seg[:-3])
    if len(found) > 1:
        raise BenchmarkOutputError(f"Node with outputs {list(names)} matches several searchable layers: {sorted(found)}")
    return found.pop() if found else None


def tflite_node_outputs(flatbuffer: Union[bytes, str, os.PathLike]) -> Dict[int, Tuple[str, Tuple[str, ...]]]:
    """{node index: (op name, output tensor names)} of subgraph 0 of a .tflite (node index = operator index)."""
    from larq_compute_engine.mlir.python import tflite_schema as S

    buf = flatbuffer if isinstance(flatbuffer, (bytes, bytearray)) else Path(flatbuffer).read_bytes()
    model = S.Model.GetRootAs(buf, 0)
    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    graph = model.Subgraphs(0)
    out = {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == S.BuiltinOperator.CUSTOM:
            op_name = code.CustomCode().decode()
        else:
            op_name = names.get(builtin, str(builtin))
        outputs = tuple(graph.Tensors(op.Outputs(j)).Name().decode() for j in range(op.OutputsLength()))
        out[i] = (op_name, outputs)
    return out


def _attribute_by_names(ops, arch, node_outputs=None) -> Dict[int, Optional[str]]:
    layer_names = [s.name for s in arch.gene_layers]
    out = {}
    for i, row in enumerate(ops):
        names = row.output_names
        if node_outputs is not None:
            idx = row.node_index
            if idx is None or idx not in node_outputs:
                raise BenchmarkOutputError(
                    f"Profiled node {row.name!r} has no node index in the given .tflite (another model?)"
                )
            op_name, names = node_outputs[idx]
            if op_name != row.node_type.split("/")[0]:
                raise BenchmarkOutputError(
                    f"Node {idx} is {op_name} in the .tflite but {row.node_type} in the profile: "
                    "the output is from another model"
                )
        out[i] = layer_of_names(names, layer_names)
    return out


def _attribute_by_order(ops, arch) -> Dict[int, Optional[str]]:
    convs = [i for i, r in enumerate(ops) if r.node_type in CONV_OPS]
    if len(convs) != len(arch.convs):
        raise BenchmarkOutputError(
            f"Order mapping needs one conv node per convolution of {arch.module.upper()}: found {len(convs)} "
            f"conv nodes ({', '.join(CONV_OPS)}), the architecture has {len(arch.convs)}"
        )
    out: Dict[int, Optional[str]] = {i: None for i in range(len(ops))}
    for i, spec in zip(convs, arch.convs):
        want = "LceBconv2d" if spec.binary else ("CONV_2D", "DEPTHWISE_CONV_2D")
        if ops[i].node_type not in (want if isinstance(want, tuple) else (want,)):
            raise BenchmarkOutputError(
                f"Order mapping: conv node {ops[i].name} is {ops[i].node_type} but {spec.name} is {spec.kind}"
            )
        if spec.gene is not None:
            out[i] = spec.name
    pending = []
    for i, r in enumerate(ops):
        if r.node_type == QUANTIZE_OP:
            pending.append(i)
        elif r.node_type == "LceBconv2d":
            for q in pending:
                out[q] = out[i]
            pending = []
    return out


def layer_times(
    output: BenchmarkOutput,
    arch: Architecture,
    *,
    mapping: str = "auto",
    tflite: Union[bytes, str, os.PathLike, None] = None,
) -> Tuple[Dict[str, float], str]:
    """Per-run ms of each searchable layer of `arch` in a profiled run, and the mapping method used."""
    check_choice("Unknown mapping", mapping, MAPPINGS)
    ops = output.ops
    if not ops:
        raise BenchmarkOutputError(
            "The output has no op profile: run lce_benchmark_model with --enable_op_profiling=true"
        )
    wanted = [s.name for s in arch.gene_layers]

    def collect(attrib):
        times = {n: 0.0 for n in wanted}
        seen = {n: [] for n in wanted}
        for i, layer in attrib.items():
            if layer is not None:
                times[layer] += ops[i].ms_per_run
                seen[layer].append(ops[i].node_type)
        return times, seen

    def check(seen, method):
        problems = []
        for spec in arch.gene_layers:
            kinds = seen[spec.name]
            need = "LceBconv2d" if spec.binary else "CONV_2D"
            if need not in kinds:
                problems.append(f"{spec.name} (needs a {need} node, found {kinds or 'none'})")
        if problems:
            raise BenchmarkOutputError(
                f"Mapping by {method} failed for: {'; '.join(problems)}. "
                + ("Pass the converted .tflite, or use mapping='order'." if method == "names" else "")
            )

    errors = []
    if mapping in ("auto", "names"):
        node_outputs = None
        if tflite is not None:
            try:
                node_outputs = tflite_node_outputs(tflite)
            except Exception as exc:  # unreadable .tflite: the profile's own names are the same tensors
                warnings.warn(f"Cannot read node names from the .tflite ({type(exc).__name__}: {exc}); "
                              "using the names printed in the profile", stacklevel=2)
        try:
            times, seen = collect(_attribute_by_names(ops, arch, node_outputs))
            check(seen, "names")
            return times, "names" + (" (from .tflite)" if node_outputs is not None else "")
        except BenchmarkOutputError as exc:
            if mapping == "names":
                raise
            errors.append(str(exc))
    try:
        times, seen = collect(_attribute_by_order(ops, arch))
        check(seen, "order")
    except BenchmarkOutputError as exc:
        raise BenchmarkOutputError("; ".join(errors + [str(exc)])) from None
    return times, "order"


# --------------------------------------------------------------------------------------------------------
# Tables from device runs


def _round(x: float) -> float:
    """Profile times have microsecond resolution: drop float noise from sums (0.069 not 0.06899999999999999)."""
    return round(float(x), 9)


def _as_output(item: Union[str, BenchmarkOutput]) -> BenchmarkOutput:
    return item if isinstance(item, BenchmarkOutput) else parse_benchmark_output(item)


def latency_table_from_benchmark_outputs(
    runs: Sequence[Tuple[Union[str, BenchmarkOutput], Sequence[int]]],
    arch: Architecture,
    *,
    device: str,
    threads: Optional[int] = None,
    tflites: Optional[Sequence[Union[bytes, str, os.PathLike, None]]] = None,
    mapping: str = "auto",
    machine: Optional[Mapping[str, Any]] = None,
) -> LatencyTable:
    """A device latency table from profiled ``lce_benchmark_model`` runs of `arch` at known genotypes.

    # Arguments
        runs: (output text or parsed output, genotype) per run.
        arch: the architecture the models were built from.
        device: a name for the device (the table's source is ``"device:<device>"``).
        threads: threads the runs used; read from the output's ``Num threads: [N]`` if None. All runs must
            agree.
        tflites: optional converted model per run, for exact node-index -> layer mapping.
        mapping: "auto" (names, else order), "names" or "order" (see the module docstring).
        machine: extra fields for the table's ``machine`` (e.g. {"cpu": "Cortex-A72"}).
    """
    if not runs:
        raise ValueError("At least one benchmark run is needed")
    device = str(device).strip()
    if not device or any(c.isspace() for c in device):
        raise ValueError(f"device must be a non-empty name without spaces, received {device!r}")
    tflites = list(tflites) if tflites is not None else [None] * len(runs)
    if len(tflites) != len(runs):
        raise ValueError(f"{len(tflites)} tflite files for {len(runs)} runs")
    samples: Dict[str, List[float]] = {}
    keys: Dict[str, Dict[str, Any]] = {}
    layers_of: Dict[str, List[str]] = {}
    cal = []
    run_threads = set()
    methods = set()
    for n, ((item, genotype), tfl) in enumerate(zip(runs, tflites)):
        out = _as_output(item)
        t = out.num_threads
        if t is None or t < 1:
            if threads is None:
                raise BenchmarkOutputError(
                    f"Run {n}: the output does not say how many threads it used (no 'Num threads: [N]'); "
                    "pass threads=..."
                )
            t = int(threads)
        elif threads is not None and t != int(threads):
            raise BenchmarkOutputError(f"Run {n} used {t} threads, expected {int(threads)}")
        run_threads.add(t)
        if out.use_indirect_bgemm is False:
            raise BenchmarkOutputError(
                f"Run {n} ran without --use_indirect_bgemm=true: grouped LceBconv2d needs the indirect BGEMM "
                "kernel, and the table must time the kernel the deployment uses"
            )
        genes = arch.check_groups(tuple(genotype), lce_compatible=False)
        times, method = layer_times(out, arch, mapping=mapping, tflite=tfl)
        methods.add(method)
        for spec, g in zip(arch.gene_layers, genes):
            key = layer_key(spec, g, t)
            kid = key_id(key)
            keys[kid] = key
            samples.setdefault(kid, []).append(times[spec.name])
            layers_of.setdefault(kid, [])
            if spec.name not in layers_of[kid]:
                layers_of[kid].append(spec.name)
        total = out.inference_avg_ms
        gene_ms = _round(sum(times.values()))
        cal.append({
            "genotype": list(genes),
            "graph": out.graph,
            "measured_ms": total,
            "sum_entries_ms": gene_ms,
            "residual_ms": _round(total - gene_ms),
            "profile_total_ms": None if out.profile is None or out.profile.timings is None
            or out.profile.timings.avg is None else out.profile.timings.avg / 1e3,
            "mapping": method,
        })
    if len(run_threads) != 1:
        raise BenchmarkOutputError(f"The runs used different thread counts {sorted(run_threads)}; one table per count")
    t = run_threads.pop()
    info = {"device": device, "threads": t, "use_indirect_bgemm": True, "tool": "lce_benchmark_model"}
    info.update(dict(machine or {}))
    info["threads"] = t
    table = LatencyTable(
        machine=info,
        source=DEVICE_PREFIX + device,
        entries={},
        fixed_ms=None,
        architecture=architecture_info(arch),
        method=(
            "device: per-node times of lce_benchmark_model --enable_op_profiling=true (avg ms x times called) "
            f"attributed to searchable layers by {', '.join(sorted(methods))}; entry = mean over layers/runs with "
            "that configuration; fixed_ms = mean over runs of Inference (avg) minus the searchable layers' times"
        ),
    )
    for kid, values in samples.items():
        table.add(keys[kid], _round(sum(values) / len(values)), samples=len(values), layers=layers_of[kid],
                  spread_ms=[_round(min(values)), _round(max(values))])
    table.fixed_ms = _round(sum(c["residual_ms"] for c in cal) / len(cal))
    table.calibration = {"method": "mean residual of the profiled runs", "references": cal}
    return table


def latency_table_from_benchmark_output(
    text: Union[str, BenchmarkOutput],
    arch: Architecture,
    genotype: Sequence[int],
    *,
    device: str,
    threads: Optional[int] = None,
    tflite: Union[bytes, str, os.PathLike, None] = None,
    mapping: str = "auto",
) -> LatencyTable:
    """A device latency table from one profiled run (entries only for that genotype's group counts)."""
    return latency_table_from_benchmark_outputs(
        [(text, genotype)], arch, device=device, threads=threads, tflites=[tflite], mapping=mapping
    )


# --------------------------------------------------------------------------------------------------------
# Calibration models and manifests


def calibration_genotypes(arch: Architecture, allowed: Optional[Sequence[Sequence[int]]] = None) -> List[Tuple[int, ...]]:
    """Uniform genotypes that together use every allowed group count of every gene (`latency.reference_genotypes`)."""
    return reference_genotypes(arch, allowed)


def export_calibration_models(
    arch: Architecture,
    out_dir: Union[str, os.PathLike],
    *,
    allowed: Optional[Sequence[Sequence[int]]] = None,
    genotypes: Optional[Sequence[Sequence[int]]] = None,
    convert_fn=None,
) -> Path:
    """Convert the calibration genotypes of `arch` to ``.tflite`` files in `out_dir`; returns the manifest path."""
    from .export import convert
    from .latency import build_genotype_model

    convert_fn = convert_fn or convert
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    genotypes = [tuple(g) for g in (genotypes or calibration_genotypes(arch, allowed))]
    h, w, _ = arch.input_shape
    models = []
    for genotype in genotypes:
        name = f"{arch.module}_{h}x{w}_{'-'.join(map(str, genotype))}.tflite"
        fb = convert_fn(build_genotype_model(arch, genotype))
        tmp = out_dir / (name + ".tmp")
        tmp.write_bytes(fb)
        os.replace(tmp, out_dir / name)
        models.append({"file": name, "genotype": list(genotype)})
    manifest = {"version": MANIFEST_VERSION, "architecture": architecture_info(arch), "models": models}
    path = out_dir / "manifest.json"
    atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")
    return path


def load_manifest(path: Union[str, os.PathLike]) -> Tuple[Architecture, List[Tuple[str, Tuple[int, ...]]]]:
    """(architecture, [(tflite file name, genotype)]) from a calibration manifest, validated."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"Manifest {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        raise ValueError(f"Manifest {path}: expected an object with version {MANIFEST_VERSION}")
    a = data.get("architecture")
    try:
        arch = architecture(a["module"], tuple(a["input_shape"]), a["num_classes"], a["width_multiplier"])
    except (TypeError, KeyError) as exc:
        raise ValueError(f"Manifest {path}: bad architecture {a!r} ({exc})") from None
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise ValueError(f"Manifest {path}: 'models' must be a non-empty list")
    out = []
    for m in models:
        if not isinstance(m, dict) or not isinstance(m.get("file"), str) or not isinstance(m.get("genotype"), list):
            raise ValueError(f"Manifest {path}: bad model entry {m!r}")
        name = m["file"]
        if "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"Manifest {path}: model file names must be plain names, found {name!r}")
        out.append((name, arch.expand_groups(m["genotype"])))
    return arch, out


def table_from_manifest(
    manifest: Union[str, os.PathLike],
    outputs_dir: Union[str, os.PathLike],
    *,
    device: str,
    threads: Optional[int] = None,
    mapping: str = "auto",
    machine: Optional[Mapping[str, Any]] = None,
    on_output=None,
) -> LatencyTable:
    """Device table from a calibration manifest and the captured outputs ``<outputs_dir>/<model stem>.txt``.

    `on_output(path, parsed_output)` is called for each output (e.g. to print a summary).
    """
    manifest = Path(manifest)
    arch, models = load_manifest(manifest)
    runs, tflites, missing = [], [], []
    for name, genotype in models:
        out_file = Path(outputs_dir) / (Path(name).stem + ".txt")
        if not out_file.is_file():
            missing.append(str(out_file))
            continue
        parsed = parse_benchmark_output(out_file.read_text(encoding="utf-8", errors="replace"))
        if on_output is not None:
            on_output(str(out_file), parsed)
        runs.append((parsed, genotype))
        tfl = manifest.parent / name
        tflites.append(tfl if tfl.is_file() else None)
    if missing:
        raise FileNotFoundError(f"No benchmark output for {len(missing)} model(s): {', '.join(missing)}")
    return latency_table_from_benchmark_outputs(
        runs, arch, device=device, threads=threads, tflites=tflites, mapping=mapping, machine=machine
    )


# --------------------------------------------------------------------------------------------------------
# Command line: python -m larq_mobisearch.devices parse|table|export-models


def _print_parsed(out: BenchmarkOutput, top: int) -> None:
    print(f"graph: {out.graph}  threads: {out.num_threads}  indirect BGEMM: {out.use_indirect_bgemm}")
    if out.inference_avg_us is not None:
        print(f"inference avg: {out.inference_avg_us / 1e3:.3f} ms  (init {out.init_us} us, first "
              f"{out.first_inference_us} us, warm-up avg {out.warmup_avg_us} us)")
    if out.regular is not None:
        r = out.regular
        print(f"regular runs: count={r.count} min={r.min} max={r.max} avg={r.avg} std={r.std} (us)")
    if out.profile is not None:
        print(f"profiled nodes: {len(out.ops)}")
        for r in out.profile.by_type:
            print(f"  {r.node_type:<24} x{r.count:<4} {r.avg_ms:9.3f} ms  {r.avg_percent:6.2f}%")
        for r in sorted(out.ops, key=lambda r: -r.ms_per_run)[:top]:
            print(f"  {r.ms_per_run:9.3f} ms  {r.node_type:<14} {r.name}")
    for e in out.errors:
        print(f"error in output: {e}")


def _arch_from_args(args) -> Architecture:
    s = int(args.input_size)
    return architecture(args.module, (s, s, 3), args.num_classes, args.width_multiplier)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m larq_mobisearch.devices", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("parse", help="parse lce_benchmark_model output files and print a summary")
    p.add_argument("outputs", nargs="+")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--top", type=int, default=10, help="slowest nodes to list")

    def arch_args(q):
        q.add_argument("--module", choices=["m1", "m2", "m3"])
        q.add_argument("--input-size", type=int, default=224)
        q.add_argument("--num-classes", type=int, default=1000)
        q.add_argument("--width-multiplier", type=float, default=1.0)

    t = sub.add_parser("table", help="build a device latency table from captured outputs")
    t.add_argument("--device", required=True, help="device name, e.g. rpi4 or pixel6")
    t.add_argument("--manifest", help="manifest.json written by export-models")
    t.add_argument("--outputs", help="directory with <model stem>.txt outputs (with --manifest)")
    t.add_argument("--run", action="append", default=[], metavar="OUTPUT.txt=GENOTYPE",
                   help="an output file and its genotype (1-2-4-...), repeatable (needs --module)")
    arch_args(t)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--mapping", default="auto", choices=MAPPINGS)
    t.add_argument("--out", required=True, help="table JSON to write")

    e = sub.add_parser("export-models", help="convert calibration models (uniform genotypes) + manifest.json")
    arch_args(e)
    e.add_argument("--mode", default="lce", choices=["lce", "paper"])
    e.add_argument("--out", required=True, help="output directory")

    args = parser.parse_args(argv)
    if args.command == "parse":
        for path in args.outputs:
            out = parse_benchmark_output(Path(path).read_text(encoding="utf-8", errors="replace"))
            if args.json:
                print(json.dumps({"file": path, **out.summary()}, indent=1))
            else:
                print(f"== {path}")
                _print_parsed(out, args.top)
        return 0
    if args.command == "table":
        if args.manifest:
            def show(path, out):
                print(f"== {path}")
                _print_parsed(out, top=0)

            table = table_from_manifest(args.manifest, args.outputs or Path(args.manifest).parent,
                                        device=args.device, threads=args.threads, mapping=args.mapping,
                                        on_output=show)
        else:
            if not args.run or not args.module:
                parser.error("table needs --manifest, or --module and at least one --run OUTPUT.txt=GENOTYPE")
            from ..nn.space import decode

            arch = _arch_from_args(args)
            runs = []
            for item in args.run:
                path, _, geno = item.rpartition("=")
                if not path:
                    parser.error(f"--run expects OUTPUT.txt=GENOTYPE, received {item!r}")
                runs.append((Path(path).read_text(encoding="utf-8", errors="replace"), decode(geno)))
            table = latency_table_from_benchmark_outputs(runs, arch, device=args.device, threads=args.threads,
                                                         mapping=args.mapping)
        save_latency_table(table, args.out)
        print(f"Wrote {args.out}: {len(table.entries)} entries, fixed_ms={table.fixed_ms:.3f} ({table.source})")
        for entry in table.entries.values():
            print(f"  {entry['ms']:9.3f} ms  {describe_key(entry['key'])}")
        return 0
    if args.command == "export-models":
        if not args.module:
            parser.error("export-models needs --module")
        from ..nn.space import SearchSpace

        arch = _arch_from_args(args)
        path = export_calibration_models(arch, args.out, allowed=SearchSpace(arch, args.mode).candidates)
        print(f"Wrote {path}")
        return 0
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
