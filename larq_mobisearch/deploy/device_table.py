"""Device latency tables from profiled ``lce_benchmark_model`` runs (`benchmark_output`).

Each profiled node is attributed to a searchable layer of the architecture, by one of two methods:

- ``names`` (default when it works): LCE keeps the Keras layer names in the output tensor names
  (``binary_mobilenet_m3/block4_conv3x3_bn/FusedBatchNormV3`` for the ``LceBconv2d`` of ``block4_conv3x3``
  with its fused BatchNorm, ``.../block4_conv3x3/approx_sign/Sign`` for the ``LceQuantize`` binarizing its
  input). A node belongs to layer ``L`` if a ``/``- or ``;``-separated segment of one of its output names is
  ``L`` or ``L_bn``. If the converted ``.tflite`` is given, names are read from it by node index (exact even
  if the profile truncates names).
- ``order`` (fallback): conv nodes (``CONV_2D``, ``DEPTHWISE_CONV_2D``, ``LceBconv2d``) in run order are
  matched one-to-one with the architecture's convolutions as exported (stem, then each block's convs; an
  M3 pointwise pair is one conv when fused, `exported_convs`), and each ``LceQuantize`` goes to the next
  ``LceBconv2d``.

A searchable layer's latency is the per-run time of its nodes (avg ms x times called per run). With width genes
(scope ``block_convs``) every conv of every block is such a layer; an unfused M3 pointwise pair reads one
``LceQuantize``, counted with ``pw_a`` (entries of equal configuration average it over the pair), so the pair's
sum is right. The table entry for its configuration (at the genotype's group count) is the mean over the layers and
runs that have that configuration. ``fixed_ms`` is the mean over runs of ``Inference (avg) - sum of searchable-layer
times``: everything else (stem, pointwise convs, adds, pooling, classifier, interpreter overhead).

One run gives one group count per layer; `calibration` makes the set of models that covers the search
space. Numbers from a device table are device measurements only if the outputs were captured on that
device; the test fixtures under ``tests/data`` are format samples with made-up numbers.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..choices import MAPPINGS, check_choice
from ..nn.specs import Architecture, ConvSpec
from .benchmark_output import BenchmarkOutput, BenchmarkOutputError, parse_benchmark_output
from .latency_table import DEVICE_PREFIX, LatencyTable, architecture_info
from .table_plan import SCOPE_BLOCKS, SCOPE_GENES, conv_key, has_width_scope, key_id, layer_key

CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "LceBconv2d")
QUANTIZE_OP = "LceQuantize"


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
    from .flatbuffer import node_outputs

    return node_outputs(flatbuffer)


def _attribute_by_names(ops, layer_names: Sequence[str], node_outputs=None) -> Dict[int, Optional[str]]:
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


def exported_convs(arch: Architecture, fuse_pointwise: bool = True) -> Tuple[ConvSpec, ...]:
    """The convolutions of `arch` as exported, in network order: with ``fuse_pointwise``, each M3 pair
    ``blockN_pw_a`` / ``blockN_pw_b`` is one binary 1x1 conv ``blockN_pw`` (Cin -> Cout), as `fuse` exports it."""
    out: List[ConvSpec] = []
    for spec in arch.convs:
        if fuse_pointwise and spec.name.endswith("_pw_b") and out and out[-1].name == spec.name[:-1] + "a":
            a = out.pop()
            out.append(dataclasses.replace(a, name=a.name[:-2], out_channels=a.out_channels + spec.out_channels))
        else:
            out.append(spec)
    return tuple(out)


def _attribute_by_order(ops, arch, layer_names: Sequence[str]) -> Dict[int, Optional[str]]:
    convs = [i for i, r in enumerate(ops) if r.node_type in CONV_OPS]
    layouts = {len(c): c for c in (exported_convs(arch, fuse_pointwise=False), exported_convs(arch))}
    if len(convs) not in layouts:
        raise BenchmarkOutputError(
            f"Order mapping needs one conv node per convolution of {arch.module.upper()}: found {len(convs)} "
            f"conv nodes ({', '.join(CONV_OPS)}), the architecture has "
            + " or ".join(f"{n} ({'pointwise pairs fused' if n < len(arch.convs) else 'as built'})"
                          for n in sorted(layouts, reverse=True))
        )
    out: Dict[int, Optional[str]] = {i: None for i in range(len(ops))}
    wanted = set(layer_names)
    for i, spec in zip(convs, layouts[len(convs)]):
        want = "LceBconv2d" if spec.binary else ("CONV_2D", "DEPTHWISE_CONV_2D")
        if ops[i].node_type not in (want if isinstance(want, tuple) else (want,)):
            raise BenchmarkOutputError(
                f"Order mapping: conv node {ops[i].name} is {ops[i].node_type} but {spec.name} is {spec.kind}"
            )
        if spec.name in wanted:
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
    layers: Optional[Sequence[ConvSpec]] = None,
) -> Tuple[Dict[str, float], str]:
    """Per-run ms of each of `layers` (default: the searchable layers of `arch`) in a profiled run, and the
    mapping method used."""
    check_choice("Unknown mapping", mapping, MAPPINGS)
    ops = output.ops
    if not ops:
        raise BenchmarkOutputError(
            "The output has no op profile: run lce_benchmark_model with --enable_op_profiling=true"
        )
    layers = tuple(arch.gene_layers if layers is None else layers)
    wanted = [s.name for s in layers]

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
        for spec in layers:
            kinds = seen[spec.name]
            need = "LceBconv2d" if spec.binary else "DEPTHWISE_CONV_2D" if spec.depthwise else "CONV_2D"
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
            times, seen = collect(_attribute_by_names(ops, wanted, node_outputs))
            check(seen, "names")
            return times, "names" + (" (from .tflite)" if node_outputs is not None else "")
        except BenchmarkOutputError as exc:
            if mapping == "names":
                raise
            errors.append(str(exc))
    try:
        times, seen = collect(_attribute_by_order(ops, arch, wanted))
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
    space=None,
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
        space: a `nn.space.SearchSpace` of `arch` with width genes: a ``block_convs`` table (every conv of every
            block at its widths and group count, as `table_plan.block_conv_keys`), genotypes full (group counts,
            then block widths), models exported without fusing M3's pointwise pairs (each conv its own node).
    """
    blocks = has_width_scope(arch, space)
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
        if blocks:
            genes = space.validate(tuple(genotype))
            at, groups = space.resolve(genes)
            pairs = [(conv_key(c, groups, t), c) for b in at.blocks for c in b.convs]  # as block_conv_keys
        else:
            at = arch
            genes = arch.check_groups(tuple(genotype), lce_compatible=False)
            pairs = [(layer_key(spec, g, t), spec) for spec, g in zip(arch.gene_layers, genes)]
        times, method = layer_times(out, at, mapping=mapping, tflite=tfl, layers=[spec for _, spec in pairs])
        methods.add(method)
        for key, spec in pairs:
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
        scope=SCOPE_BLOCKS if blocks else SCOPE_GENES,
        method=(
            "device: per-node times of lce_benchmark_model --enable_op_profiling=true (avg ms x times called) "
            f"attributed to {'every block conv' if blocks else 'searchable layers'} by "
            f"{', '.join(sorted(methods))}; entry = mean over layers/runs with that configuration; fixed_ms = mean "
            f"over runs of Inference (avg) minus the {'block convs' if blocks else 'searchable layers'}' times"
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
