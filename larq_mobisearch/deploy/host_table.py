"""Host latency tables: every searchable-layer configuration converted alone and timed on this machine.

A searchable layer is timed as a tiny Keras model holding just that convolution followed by BatchNorm, which
is how it appears in the network (LCE fuses the BatchNorm into ``LceBconv2d``'s output transform, or into
CONV_2D's bias for the float M2 convs; the input is float, so the model also contains the ``LceQuantize``
that binarizes the layer's input, exactly like the network). Everything not searchable (stem, pointwise
convs, shortcuts, pooling, classifier) plus the per-call cost the isolated measurements add (interpreter
call, input/output copies) is measured end to end, on whole networks:

    fixed_ms = median over calibrating genotypes r of [measured(r) - sum of entries(r)]

With width genes (a ``block_convs`` table, `plan_for`) every conv of blocks 1..13 is such an entry, at every
(input width, output width) pair the space allows, and the calibrating genotypes are random genotypes of the
space with their widths (`width_references`); ``fixed_ms`` then holds the stem, shortcuts, pooling, classifier and
the per-call cost.

Because each gene always contributes exactly one entry, any constant per-entry overhead of the isolated
measurements cancels in ``fixed_ms``. What does not cancel is how the rest of a network runs around its
searchable layers: that residual depends on the genotype's mix of group counts. The uniform genotypes
(`table_plan.reference_genotypes`, timed and recorded as checks) sit at the edges of that distribution; random
genotypes of the space (`table_plan.random_references`, 12 by default) are what a search compares, so they
calibrate ``fixed_ms`` (BENCHMARKS.md, "Latency table error"). The median keeps one badly timed network from
shifting it.

All layer models and the reference networks are timed **together, round-robin** (`timing.measure_latencies`):
timed one after the other on a shared host, the predictions were far off (BENCHMARKS.md, "Measured"). Host
numbers come from LCE's x86 kernels, not its ARM ones: use them to rank genotypes and compare ratios, never
as phone or Raspberry Pi latencies (device tables: `device_table`).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..choices import STATISTICS, check_choice
from ..fileio import atomic_write_bytes
from ..nn.specs import Architecture, allowed_group_counts
from .converter import convert
from .latency_table import LatencyTable, architecture_info, machine_info, package_version, save_latency_table
from .schema import SOURCE_HOST
from .table_plan import (
    DEFAULT_CALIBRATION_SAMPLES,
    KEY_FIELDS,
    SCOPE_BLOCKS,
    HostReferences,
    default_allowed,
    host_references,
    key_id,
    plan_for,
    width_references,
)
from .timing import DEFAULT_RUNS, DEFAULT_STATISTIC, DEFAULT_WARMUP, LatencyStats, measure_latencies, measure_latency


def build_layer_model(key: Mapping[str, Any]):
    """A Keras model with just one searchable layer (conv + BatchNorm, as in the network) for configuration `key`."""
    import tensorflow as tf

    from ..nn.layers import BinaryGroupConv2D, GroupConv2D
    from ..nn.models import BN_EPSILON, BN_MOMENTUM

    h, w = key["in_size"]
    cin, cout, g = key["in_channels"], key["out_channels"], key["groups"]
    inputs = tf.keras.Input(shape=(h, w, cin), name="x")
    if key["kind"] == "binary":
        lowerable = g in allowed_group_counts(cin, cout, binary=True, lce_compatible=True)
        conv = BinaryGroupConv2D(
            cout, key["kernel"], strides=key["stride"], groups=g, lce_compatible=lowerable, name="layer"
        )
    else:
        conv = GroupConv2D(
            cout, key["kernel"], strides=key["stride"], padding="same", groups=g, use_bias=False, name="layer"
        )
    y = conv(inputs)
    y = tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="layer_bn")(y)
    return tf.keras.Model(inputs, y, name="latency_probe")


def build_genotype_model(arch: Architecture, genotype: Sequence[int], *, fuse_pointwise: bool = True):
    """The full fixed network of `arch` with `genotype` (LCE-incompatible groups allowed for paper mode), as
    it is exported: M3's pointwise pairs fused into one binary conv each unless ``fuse_pointwise=False``."""
    from ..nn.models import build_network, fixed_conv_factory
    from .fuse import fuse_pointwise_pairs

    genes = arch.expand_groups(tuple(genotype))
    lce_ok = all(g in a for g, a in zip(genes, default_allowed(arch)))
    genes = arch.check_groups(genes, lce_compatible=lce_ok)
    model = build_network(arch, fixed_conv_factory(genes, lce_ok), name=f"binary_mobilenet_{arch.module}")
    return fuse_pointwise_pairs(model) if fuse_pointwise else model


def _source_fingerprint() -> str:
    """Hash of the package code that shapes converted models (for the flatbuffer cache)."""
    h = hashlib.sha1()
    here = Path(__file__).resolve().parents[1] / "nn"  # the code that builds the models
    for path in [here / n for n in ("layers.py", "models.py", "quantizers.py", "specs.py")] + [
        Path(__file__).resolve().parent / n for n in ("converter.py", "fuse.py")
    ]:
        with contextlib.suppress(OSError):
            h.update(path.read_bytes())
    for fn in (build_layer_model, build_genotype_model):
        with contextlib.suppress(OSError, TypeError):
            h.update(inspect.getsource(fn).encode())
    h.update(package_version("larq-compute-engine").encode())
    h.update(package_version("larq").encode())
    h.update(package_version("tensorflow").encode())
    return h.hexdigest()[:16]


class FlatbufferCache:
    """Converted models on disk, keyed by what they are (layer configuration, or architecture + genotype).

    LCE conversion is the slow step (seconds per layer, tens of seconds per network), so a rebuilt or
    interrupted table re-converts nothing; the key includes a hash of the model-building code and the
    LCE/Larq/TensorFlow versions, so edited code never reuses stale files. ``directory=None``: memory only.
    """

    def __init__(self, directory: Optional[Union[str, os.PathLike]] = None, convert_fn: Callable[[Any], bytes] = None):
        self.directory = Path(directory) if directory is not None else None
        self.convert_fn = convert_fn or convert
        self.converted = 0
        self._memory: Dict[str, bytes] = {}
        self._fingerprint = _source_fingerprint()

    def _path(self, what: Mapping[str, Any]) -> Tuple[str, Optional[Path]]:
        digest = hashlib.sha1(
            (json.dumps(what, sort_keys=True) + self._fingerprint).encode()
        ).hexdigest()[:20]
        return digest, (self.directory / f"{digest}.tflite" if self.directory is not None else None)

    def get(self, what: Mapping[str, Any], build: Callable[[], Any]) -> bytes:
        digest, path = self._path(what)
        if digest in self._memory:
            return self._memory[digest]
        if path is not None and path.is_file():
            fb = path.read_bytes()
        else:
            fb = self.convert_fn(build())
            self.converted += 1
            if path is not None:
                atomic_write_bytes(path, fb)
        self._memory[digest] = fb
        return fb

    def layer(self, key: Mapping[str, Any]) -> bytes:
        what = {"layer": {f: key[f] for f in KEY_FIELDS if f != "threads"}}
        return self.get(what, lambda: build_layer_model(key))

    def network(self, arch: Architecture, genotype: Sequence[int], *, fuse_pointwise: bool = True) -> bytes:
        """The converted network (M3's pointwise pairs fused, as exported, unless ``fuse_pointwise=False``)."""
        genes = [int(g) for g in arch.expand_groups(tuple(genotype))]
        what = {"network": architecture_info(arch), "genotype": genes, "widths": list(arch.block_channels)}
        if not fuse_pointwise:
            what["unfused"] = True
            return self.get(what, lambda: build_genotype_model(arch, genes, fuse_pointwise=False))
        return self.get(what, lambda: build_genotype_model(arch, genes))


def measure_genotype(
    arch: Architecture,
    genotype: Sequence[int],
    *,
    num_threads: int = 1,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    use_indirect_bgemm: bool = True,
    convert_fn: Callable[[Any], bytes] = None,
) -> LatencyStats:
    """Build, convert and time the whole network at `genotype` on this host."""
    fb = FlatbufferCache(convert_fn=convert_fn).network(arch, genotype)
    return measure_latency(fb, num_threads=num_threads, warmup=warmup, runs=runs, use_indirect_bgemm=use_indirect_bgemm)


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="model", leave=False, file=sys.stderr)


@dataclass
class HostMeasurement:
    """A host table and the end-to-end timings of the networks measured with it (same round-robin loop)."""

    table: LatencyTable
    networks: Dict[Tuple[int, ...], LatencyStats]


def convert_host_models(
    arch: Architecture,
    allowed: Optional[Sequence[Sequence[int]]],
    networks: Sequence[Sequence[int]],
    cache: FlatbufferCache,
    *,
    threads: int = 1,
    progress: bool = True,
    space=None,
) -> Dict[str, bytes]:
    """Every distinct layer model of the table (`plan_for` `arch`, `allowed`, `space`) and every network of
    `networks`, converted through `cache`: ``{"layer:<key id>" | "network:<genotype string>": flatbuffer}``.
    Conversion needs no idle machine: run it ahead of the timing, which does."""
    plan = plan_for(arch, allowed, space, threads)
    fbs: Dict[str, bytes] = {}
    for key, _ in _progress(plan.needed, len(plan.needed), f"converting {arch.module} layers", progress):
        fbs["layer:" + key_id(key)] = cache.layer(key)
    for g in _progress(networks, len(networks), f"converting {arch.module} networks", progress):
        fbs["network:" + plan.name(g)] = cache.network(*plan.resolve(g))
    return fbs


def measure_host_table(
    arch: Architecture,
    *,
    allowed: Optional[Sequence[Sequence[int]]] = None,
    threads: int = 1,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    statistic: str = DEFAULT_STATISTIC,
    references: Optional[Sequence[Sequence[int]]] = None,
    extra_genotypes: Sequence[Sequence[int]] = (),
    cache: Optional[FlatbufferCache] = None,
    progress: bool = True,
    use_indirect_bgemm: bool = True,
    measure_fn: Callable[..., Dict[str, LatencyStats]] = None,
    log: Callable[[str], None] = None,
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
    calibration_seed: int = 0,
    space=None,
) -> HostMeasurement:
    """Convert every distinct layer configuration and the reference (+ extra) networks, time them all in one
    round-robin loop (`measure_latencies`), and assemble the table (see the module docstring).

    `space` with width genes (a `nn.space.SearchSpace` of `arch`): a ``block_convs`` table (`plan_for`); its
    references are `width_references` unless given, and genotypes are full (group counts, then block widths).

    `references` given: they calibrate ``fixed_ms``. Otherwise the uniform `reference_genotypes` are timed as
    checks and `calibration_samples` random genotypes (`random_references`, seeded by `calibration_seed`)
    calibrate it; 0 samples (or a space with no other genotype) calibrates on the uniform ones.
    `extra_genotypes` are timed in the same loop (e.g. to check predictions against measurements taken
    under the same conditions) and returned in `networks` with the references; they do not enter the table.
    """
    check_choice("Unknown statistic", statistic, STATISTICS)
    measure_fn = measure_fn or measure_latencies
    cache = cache or FlatbufferCache()
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    allowed = default_allowed(arch) if allowed is None else tuple(tuple(int(g) for g in a) for a in allowed)
    plan = plan_for(arch, allowed, space, threads)
    blocks = plan.scope == SCOPE_BLOCKS
    if references is not None:
        given = [plan.full(r) for r in references]
        chosen = HostReferences(given, set(given), "reference genotypes")
    elif blocks:
        chosen = width_references(space, calibration_samples, calibration_seed=calibration_seed)
    else:
        chosen = host_references(arch, allowed, calibration_samples=calibration_samples,
                                 calibration_seed=calibration_seed)
    refs, calibrating = chosen.genotypes, chosen.calibrating
    if not refs:
        raise ValueError("At least one reference genotype is needed to calibrate fixed_ms")
    networks: List[Tuple[int, ...]] = []
    for g in list(refs) + [plan.full(x) for x in extra_genotypes]:
        if g not in networks:
            networks.append(g)

    needed = plan.needed
    fbs = convert_host_models(arch, allowed, networks, cache, threads=threads, progress=progress, space=space)
    log(f"Timing {len(needed)} layer models and {len(networks)} networks round-robin ({runs} rounds) ...")
    stats = measure_fn(
        fbs, num_threads=threads, warmup=warmup, runs=runs, use_indirect_bgemm=use_indirect_bgemm, progress=progress
    )

    machine = machine_info(threads, use_indirect_bgemm, statistic=statistic, warmup=int(warmup), runs=int(runs))
    table = LatencyTable(
        machine=machine,
        source=SOURCE_HOST,
        entries={},
        fixed_ms=None,
        architecture=architecture_info(arch),
        scope=plan.scope,
        method=(
            ("host: every block conv at every width pair" if blocks else "host: each searchable layer") +
            " converted alone (conv + BatchNorm, LceQuantize on its float input); layer "
            f"models and reference networks timed together round-robin with LCE's interpreter ({statistic} of "
            f"{runs} rounds); fixed_ms = median over the calibrating genotypes (calibration.references with "
            "'calibrates': true) of measured end-to-end latency minus the sum of their entries"
        ),
    )
    for key, layers in needed:
        st = stats["layer:" + key_id(key)]
        table.add(key, st.statistic(statistic), layers=layers, stats=st.as_dict())
    net_stats = {g: stats["network:" + plan.name(g)] for g in networks}
    cal = []
    for g in refs:
        entries_ms = sum(table.lookup(k) for k in plan.entries(*plan.resolve(g)))
        measured = net_stats[g].statistic(statistic)
        cal.append({
            "genotype": list(g),
            "measured_ms": measured,
            "sum_entries_ms": entries_ms,
            "residual_ms": measured - entries_ms,
            "calibrates": g in calibrating,
            "stats": net_stats[g].as_dict(),
        })
    table.fixed_ms = float(np.median([c["residual_ms"] for c in cal if c["calibrates"]]))
    table.calibration = {"method": f"median residual of the {len(calibrating)} {chosen.how} marked 'calibrates'",
                         "references": cal}
    return HostMeasurement(table, net_stats)


def build_latency_table(
    arch: Architecture,
    *,
    allowed: Optional[Sequence[Sequence[int]]] = None,
    threads: int = 1,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    statistic: str = DEFAULT_STATISTIC,
    references: Optional[Sequence[Sequence[int]]] = None,
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
    out_path: Optional[Union[str, os.PathLike]] = None,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    progress: bool = True,
    use_indirect_bgemm: bool = True,
    convert_fn: Callable[[Any], bytes] = None,
    measure_fn: Callable[..., Dict[str, LatencyStats]] = None,
    log: Callable[[str], None] = None,
    space=None,
) -> LatencyTable:
    """Measure a host latency table for `arch` (see the module docstring for the method).

    # Arguments
        arch: the architecture (module, input size, classes, width).
        allowed: group counts per gene to cover (default: LCE search space).
        threads: interpreter threads (part of every key).
        warmup, runs: warm-up runs and timed rounds of the round-robin loop.
        statistic: which summary of the timings is stored: "mean" (default; see `DEFAULT_STATISTIC`),
            "median", "p10" or "min".
        references: genotypes measured end to end to calibrate ``fixed_ms`` (default: `calibration_samples`
            random genotypes of `allowed`, with the uniform `reference_genotypes` timed as checks).
        calibration_samples: how many random genotypes calibrate ``fixed_ms`` without `references` (0: the
            uniform ones do).
        out_path: if given, the table is written there (atomically).
        cache_dir: directory for converted models (`FlatbufferCache`): a rebuilt or interrupted table
            converts nothing twice. Distinct layer configurations are converted and timed once regardless.
        progress: show tqdm progress bars.
        convert_fn, measure_fn: injectable for tests (default: LCE conversion and `measure_latencies`).
        log: function for progress messages (default: print to stderr).
        space: the `nn.space.SearchSpace` searched; with width genes the table has scope ``block_convs``
            (every block conv at every width pair; references are full genotypes) and `allowed` is ignored.
    """
    result = measure_host_table(
        arch,
        allowed=allowed,
        threads=threads,
        warmup=warmup,
        runs=runs,
        statistic=statistic,
        references=references,
        calibration_samples=calibration_samples,
        cache=FlatbufferCache(cache_dir, convert_fn),
        progress=progress,
        use_indirect_bgemm=use_indirect_bgemm,
        measure_fn=measure_fn,
        log=log,
        space=space,
    )
    if out_path is not None:
        save_latency_table(result.table, out_path)
    return result.table
