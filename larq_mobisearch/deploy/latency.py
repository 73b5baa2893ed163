"""Measured latency: LCE interpreter timing, per-layer latency lookup tables and a latency cost model.

Three pieces:

- `measure_latency(flatbuffer)`: single-image inference time of a converted model on *this host* with
  Larq Compute Engine's interpreter (``use_indirect_bgemm=True`` by default: grouped ``LceBconv2d`` only runs
  on the indirect BGEMM kernel). Returns `LatencyStats` in milliseconds.
- A **latency lookup table** for one architecture: every distinct searchable-layer configuration (kind,
  kernel, input size, channels, groups, stride, threads) is converted on its own and timed once (identical
  configurations, e.g. the 3x3 convs of blocks 7-11, share one entry), plus a ``fixed_ms`` for everything
  else. See "Method" below. Tables are JSON (`save_latency_table` / `load_latency_table`), written atomically.
- `LatencyCostModel`: an `AdditiveCostModel` (name ``"latency"``, unit ``"ms"``) predicting
  ``fixed_ms + sum of the table entries of the genotype`` — the interface the search uses.

Method (host tables)
--------------------
A searchable layer is timed as a tiny Keras model holding just that convolution followed by BatchNorm, which
is how it appears in the network (LCE fuses the BatchNorm into ``LceBconv2d``'s output transform, or into
CONV_2D's bias for the float M2 convs; the input is float, so the model also contains the ``LceQuantize``
that binarizes the layer's input, exactly like the network). Everything not searchable (stem, pointwise
convs, shortcuts, pooling, classifier) plus the per-call cost the isolated measurements add (interpreter
call, input/output copies) does not depend on the genotype, so it is measured once, end to end:

    fixed_ms = median over reference genotypes r of [measured(r) - sum of entries(r)]

The reference genotypes are by default the uniform ones (groups 1, 2, 4, ... clamped per layer, from the
slowest to the fastest network; `reference_genotypes`); the median keeps one badly timed network from
shifting ``fixed_ms``. Because each gene always contributes exactly one entry, any constant per-entry
overhead of the isolated measurements cancels in ``fixed_ms``.

All layer models and the reference networks are timed **together, round-robin** (`measure_latencies`: one
inference of each model in turn, shuffled, for ``runs`` rounds). Timing each model on its own, one after the
other, did not work on this shared 2-vCPU host (M3, 32x32, `benchmarks/latency.py`): the mean absolute error of
the predicted end-to-end latency of 10 random genotypes was 45% (median statistic) / 27% (min), because the
host's speed drifts by tens of percent over seconds (the same model's minimum varied 0.74-1.18 ms between
rounds) and, most likely, because a layer timed alone in a tight loop keeps its weights in cache while in the
network they are evicted by the other layers. In the round-robin loop every model sees the same conditions and
a similar cache state, and the mean time of a network is the sum of the mean times of its parts; the same check
then gave 0.8-6.2% mean absolute error (mean statistic, M1/M2/M3 at 32x32 and 224x224). The numbers are
therefore cold-cache-ish latencies, higher than a hot loop of one model shows.

Host numbers come from LCE's x86 kernels, not its ARM ones: use them to rank genotypes and compare ratios,
never as phone or Raspberry Pi latencies. Device tables (``source = "device:<name>"``) are made from
``lce_benchmark_model`` output by `larq_mobisearch.devices`.

Table format (version 1)::

    {"version": 1,
     "machine": {"platform": ..., "cpu": ..., "lce_version": ..., "threads": 1, ...},
     "source": "host" | "device:<name>",
     "entries": [{"key": {"kind": "binary", "kernel": 3, "in_size": [112, 112], "in_channels": 32,
                          "out_channels": 32, "groups": 1, "stride": 1, "threads": 1},
                  "ms": 1.234, ...}],
     "fixed_ms": 5.67,
     "architecture": {"module": "m3", "input_shape": [224, 224, 3], "num_classes": 1000,
                      "width_multiplier": 1.0},
     "calibration": {...}, "method": "..."}
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import inspect
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..search.costs import AdditiveCostModel
from ..nn.specs import Architecture, ConvSpec, allowed_group_counts, architecture
from ..fileio import atomic_write_text
from .export import convert
from ..choices import RUNTIMES, STATISTICS, check_choice

TABLE_VERSION = 1
SOURCE_HOST = "host"
DEVICE_PREFIX = "device:"
KEY_FIELDS = ("kind", "kernel", "in_size", "in_channels", "out_channels", "groups", "stride", "threads")
ARCH_FIELDS = ("module", "input_shape", "num_classes", "width_multiplier")
#: Summary of the round-robin timings stored in tables. The mean is the additive one: in the round-robin loop
#: every model sees the same distribution of host conditions, and the expected time of a network is the sum of
#: the expected times of its parts (quantiles such as the median or p10 do not add up). Measured on a shared
#: 2-vCPU host (`benchmarks/latency.py`, mean |error| of predicted vs measured latency of random genotypes, 12
#: runs over M1/M2/M3 at 32x32 and 224x224): mean 0.8-6.2% (average 2.5%), min 0.6-10.1%, median 0.5-8.6%,
#: p10 0.9-19.5%.
DEFAULT_STATISTIC = "mean"

DEFAULT_WARMUP = 10
DEFAULT_RUNS = 50

Flatbuffer = Union[bytes, bytearray, str, os.PathLike]


class LatencyTableError(ValueError):
    """A latency table that is corrupt, incomplete, or does not match the architecture / threads asked for."""


# --------------------------------------------------------------------------------------------------------
# Measuring one converted model


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock single-image inference times of one model, in milliseconds."""

    median_ms: float
    mean_ms: float
    p10_ms: float
    p90_ms: float
    q25_ms: float
    q75_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    runs: int
    num_threads: int = 1

    @property
    def iqr_ms(self) -> float:
        return self.q75_ms - self.q25_ms

    @classmethod
    def from_times(cls, times_ms: Sequence[float], num_threads: int = 1) -> "LatencyStats":
        t = np.asarray(times_ms, dtype=np.float64)
        if t.size == 0:
            raise ValueError("LatencyStats needs at least one timing")
        p10, q25, med, q75, p90 = np.percentile(t, [10, 25, 50, 75, 90])
        return cls(
            median_ms=float(med),
            mean_ms=float(t.mean()),
            p10_ms=float(p10),
            p90_ms=float(p90),
            q25_ms=float(q25),
            q75_ms=float(q75),
            min_ms=float(t.min()),
            max_ms=float(t.max()),
            std_ms=float(t.std()),
            runs=int(t.size),
            num_threads=int(num_threads),
        )

    def statistic(self, name: str) -> float:
        """One summary number: "median", "mean", "min" or "p10"."""
        check_choice("Unknown statistic", name, STATISTICS)
        return {"median": self.median_ms, "mean": self.mean_ms, "min": self.min_ms, "p10": self.p10_ms}[name]

    def as_dict(self) -> Dict[str, float]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["iqr_ms"] = self.iqr_ms
        return d

    def __str__(self) -> str:
        return (
            f"median {self.median_ms:.3f} ms (p10 {self.p10_ms:.3f}, p90 {self.p90_ms:.3f}, "
            f"mean {self.mean_ms:.3f}, {self.runs} runs, {self.num_threads} thread(s))"
        )


def _read_flatbuffer(flatbuffer: Flatbuffer) -> bytes:
    if isinstance(flatbuffer, (bytes, bytearray)):
        return bytes(flatbuffer)
    path = Path(flatbuffer)
    if not path.is_file():
        raise FileNotFoundError(f"No .tflite file at {path}")
    return path.read_bytes()


def make_interpreter(flatbuffer: Flatbuffer, *, num_threads: int = 1, use_indirect_bgemm: bool = True):
    """LCE's Python interpreter for a converted model (bytes or a .tflite path)."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    if int(num_threads) < 1:
        raise ValueError(f"num_threads must be >= 1, received {num_threads}")
    return Interpreter(
        _read_flatbuffer(flatbuffer), num_threads=int(num_threads), use_indirect_bgemm=bool(use_indirect_bgemm)
    )


@contextlib.contextmanager
def _gc_paused():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _random_input(interp, rng):
    shape = tuple(int(s) for s in interp.input_shapes[0])
    dtype = np.dtype(interp.input_types[0])
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


#: Interpreters `measure_latencies` can time a model with.


def _tflite_call(flatbuffer: Flatbuffer, num_threads: int, rng):
    """(interpreter, predict, inputs) for TensorFlow's plain ``tf.lite.Interpreter``: set input, invoke, copy out."""
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=_read_flatbuffer(flatbuffer), num_threads=int(num_threads))
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    dtype = np.dtype(inp["dtype"])
    shape = tuple(int(s) for s in inp["shape"])
    if dtype.kind == "f":
        x = rng.standard_normal(shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)

    def predict(inputs):
        interp.set_tensor(inp["index"], inputs[0])
        interp.invoke()
        return interp.get_tensor(out["index"])

    return interp, predict, [x]


def measure_latencies(
    flatbuffers: Mapping[str, Flatbuffer],
    *,
    num_threads: int = 1,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    use_indirect_bgemm: bool = True,
    min_time_s: float = 0.0,
    seed: int = 0,
    progress: bool = False,
    runtimes: Optional[Mapping[str, str]] = None,
    times_out: Optional[Dict[str, List[float]]] = None,
) -> Dict[str, LatencyStats]:
    """Time several converted models **round-robin**: one inference of each model in turn, `runs` rounds.

    On a shared or virtualized host the speed drifts over seconds (other processes, a busy hyperthread
    sibling, steal time): models timed one after the other can differ by tens of percent for that reason
    alone. Interleaving single inferences (in a shuffled order each round) exposes every model to the same
    conditions, so their statistics are comparable; `build_latency_table` and `benchmarks/latency.py` time
    the per-layer models and the whole networks they are compared with in one such loop.

    Arguments are as for `measure_latency`, plus `runtimes`: optional {name: "lce" | "tflite"} (default
    "lce", LCE's interpreter). "tflite" runs that model in TensorFlow's own ``tf.lite.Interpreter`` (with its
    default XNNPACK delegate), e.g. a float reference model, in the same loop as the LCE models. If
    `times_out` is a dict, it receives {name: [ms of round 0, round 1, ...]} (same round index = same round,
    for paired comparisons). Returns {name: LatencyStats}.
    """
    if int(runs) < 1:
        raise ValueError(f"runs must be >= 1, received {runs}")
    if int(warmup) < 0:
        raise ValueError(f"warmup must be >= 0, received {warmup}")
    names = list(flatbuffers)
    rng = np.random.default_rng(seed)
    runtimes = dict(runtimes or {})
    unknown = {n: r for n, r in runtimes.items() if r not in RUNTIMES or n not in flatbuffers}
    if unknown:
        raise ValueError(f"runtimes must map model names to one of {list(RUNTIMES)}; received {unknown}")
    calls = {}
    for name in names:
        if runtimes.get(name, "lce") == "tflite":
            calls[name] = _tflite_call(flatbuffers[name], num_threads, rng)
            continue
        interp = make_interpreter(flatbuffers[name], num_threads=num_threads, use_indirect_bgemm=use_indirect_bgemm)
        # the wrapper's predict on one batch: sets the input, invokes, copies the output (no Python generator)
        calls[name] = (interp, interp.interpreter.predict, [_random_input(interp, rng)])
    for name in names:
        _, predict, inputs = calls[name]
        for _ in range(int(warmup)):
            predict(inputs)
    times: Dict[str, List[float]] = {name: [] for name in names}
    order = list(names)
    rounds = range(int(runs))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=int(runs), desc=f"timing {len(names)} model(s)", unit="round", leave=False, file=sys.stderr)
    with _gc_paused():
        start = time.perf_counter()
        r = 0
        while r < int(runs) or time.perf_counter() - start < float(min_time_s):
            rng.shuffle(order)
            for name in order:
                _, predict, inputs = calls[name]
                t0 = time.perf_counter()
                predict(inputs)
                times[name].append((time.perf_counter() - t0) * 1e3)
            r += 1
            if bar is not None and r <= int(runs):
                bar.update(1)
    if bar is not None:
        bar.close()
    del calls
    if times_out is not None:
        times_out.update({name: list(times[name]) for name in names})
    return {name: LatencyStats.from_times(times[name], num_threads=int(num_threads)) for name in names}


def measure_latency(
    flatbuffer: Flatbuffer,
    *,
    num_threads: int = 1,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    use_indirect_bgemm: bool = True,
    min_time_s: float = 0.0,
    seed: int = 0,
) -> LatencyStats:
    """Time single-image inference of a converted model on this host with LCE's interpreter.

    # Arguments
        flatbuffer: the converted model (bytes from `larq_compute_engine.convert_keras_model`) or a path.
        num_threads: interpreter threads.
        warmup: untimed runs first (allocations, caches).
        runs: timed runs (each one `predict` of one random image, timed with `time.perf_counter`). More are
            made while `min_time_s` has not elapsed.
        use_indirect_bgemm: use LCE's indirect BGEMM kernel for `LceBconv2d` (required for grouped binary
            convs; the default kernel rejects them with "Grouped binary convolutions are not supported
            with this kernel").
        min_time_s: keep timing until at least this long has passed.
        seed: seed of the random input image.

    # Returns
        `LatencyStats` (median, mean, p10/p90, quartiles, ...; milliseconds). The timing covers setting the
        input, `Invoke` and copying the output: the same per call for every model of one input shape.
        To compare models, time them together with `measure_latencies` (round-robin).
    """
    return measure_latencies(
        {"model": flatbuffer},
        num_threads=num_threads,
        warmup=warmup,
        runs=runs,
        use_indirect_bgemm=use_indirect_bgemm,
        min_time_s=min_time_s,
        seed=seed,
    )["model"]


# --------------------------------------------------------------------------------------------------------
# Layer configurations (table keys)


def layer_key(spec: ConvSpec, groups: int, threads: int) -> Dict[str, Any]:
    """The configuration of searchable layer `spec` at `groups` groups, as a JSON-able table key."""
    return {
        "kind": spec.kind,
        "kernel": int(spec.kernel),
        "in_size": [int(s) for s in spec.in_size],
        "in_channels": int(spec.in_channels),
        "out_channels": int(spec.out_channels),
        "groups": int(groups),
        "stride": int(spec.stride),
        "threads": int(threads),
    }


def key_id(key: Mapping[str, Any]) -> str:
    """Canonical string of a key (dict lookups)."""
    return json.dumps({f: key[f] for f in KEY_FIELDS}, sort_keys=True, separators=(",", ":"))


def describe_key(key: Mapping[str, Any]) -> str:
    """Human-readable layer configuration, e.g. ``binary 3x3 conv 56x56x128->128 stride 2 groups 4, 1 thread``."""
    h, w = key["in_size"]
    k = key["kernel"]
    t = key["threads"]
    return (
        f"{key['kind']} {k}x{k} conv {h}x{w}x{key['in_channels']}->{key['out_channels']} "
        f"stride {key['stride']} groups {key['groups']}, {t} thread{'s' if t != 1 else ''}"
    )


def _check_key(key: Any, where: str) -> Dict[str, Any]:
    if not isinstance(key, dict):
        raise LatencyTableError(f"{where}: 'key' must be an object, found {type(key).__name__}")
    missing = [f for f in KEY_FIELDS if f not in key]
    if missing:
        raise LatencyTableError(f"{where}: key is missing {missing} (a key has {list(KEY_FIELDS)})")
    if key["kind"] not in ("binary", "float"):
        raise LatencyTableError(f"{where}: key kind must be 'binary' or 'float', found {key['kind']!r}")
    for f in ("kernel", "in_channels", "out_channels", "groups", "stride", "threads"):
        v = key[f]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise LatencyTableError(f"{where}: key {f} must be a positive integer, found {v!r}")
    size = key["in_size"]
    if (
        not isinstance(size, list)
        or len(size) != 2
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size)
    ):
        raise LatencyTableError(f"{where}: key in_size must be [height, width] positive integers, found {size!r}")
    return {f: key[f] for f in KEY_FIELDS}


def default_allowed(arch: Architecture) -> Tuple[Tuple[int, ...], ...]:
    """Group counts the table covers by default: the LCE search space (`SearchSpace(arch, "lce")`)."""
    return arch.allowed_groups(lce_compatible=True)


def table_keys(
    arch: Architecture, allowed: Optional[Sequence[Sequence[int]]] = None, threads: int = 1
) -> List[Tuple[Dict[str, Any], List[str]]]:
    """Distinct (key, [layer names]) pairs needed to cost every genotype of `allowed` (ordered as the network)."""
    allowed = default_allowed(arch) if allowed is None else allowed
    if len(allowed) != arch.num_genes:
        raise ValueError(f"allowed has {len(allowed)} gene entries, {arch.module} has {arch.num_genes} genes")
    out: Dict[str, Tuple[Dict[str, Any], List[str]]] = {}
    for spec, values in zip(arch.gene_layers, allowed):
        for g in values:
            key = layer_key(spec, g, threads)
            out.setdefault(key_id(key), (key, []))[1].append(spec.name)
    return list(out.values())


# --------------------------------------------------------------------------------------------------------
# Models to time


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


def build_genotype_model(arch: Architecture, genotype: Sequence[int]):
    """The full fixed network of `arch` with `genotype` (LCE-incompatible groups allowed for paper mode)."""
    from ..nn.models import build_network, fixed_conv_factory

    genes = arch.expand_groups(tuple(genotype))
    lce_ok = all(g in a for g, a in zip(genes, default_allowed(arch)))
    genes = arch.check_groups(genes, lce_compatible=lce_ok)
    return build_network(arch, fixed_conv_factory(genes, lce_ok), name=f"binary_mobilenet_{arch.module}")


def _source_fingerprint() -> str:
    """Hash of the package code that shapes converted models (for the flatbuffer cache)."""
    h = hashlib.sha1()
    here = Path(__file__).resolve().parent
    for name in ("layers.py", "models.py", "quantizers.py", "specs.py"):
        with contextlib.suppress(OSError):
            h.update((here / name).read_bytes())
    for fn in (build_layer_model, build_genotype_model):
        with contextlib.suppress(OSError, TypeError):
            h.update(inspect.getsource(fn).encode())
    h.update(_version("larq-compute-engine").encode())
    h.update(_version("larq").encode())
    h.update(_version("tensorflow").encode())
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
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(fb)
                os.replace(tmp, path)
        self._memory[digest] = fb
        return fb

    def layer(self, key: Mapping[str, Any]) -> bytes:
        what = {"layer": {f: key[f] for f in KEY_FIELDS if f != "threads"}}
        return self.get(what, lambda: build_layer_model(key))

    def network(self, arch: Architecture, genotype: Sequence[int]) -> bytes:
        genes = [int(g) for g in arch.expand_groups(tuple(genotype))]
        what = {"network": architecture_info(arch), "genotype": genes}
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


# --------------------------------------------------------------------------------------------------------
# Tables


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
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
        "tensorflow_version": _version("tensorflow"),
        "lce_version": _version("larq-compute-engine"),
        "larq_version": _version("larq"),
        "threads": int(threads),
        "use_indirect_bgemm": bool(use_indirect_bgemm),
    }
    info.update(extra)
    return info


def architecture_info(arch: Architecture) -> Dict[str, Any]:
    return {
        "module": arch.module,
        "input_shape": [int(s) for s in arch.input_shape],
        "num_classes": int(arch.num_classes),
        "width_multiplier": float(arch.width_multiplier),
    }


def _describe_arch(info: Mapping[str, Any]) -> str:
    h, w, c = info["input_shape"]
    return (
        f"{str(info['module']).upper()} {h}x{w}x{c}, {info['num_classes']} classes, "
        f"width {info['width_multiplier']:g}"
    )


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
        key = _check_key(dict(key), "entry")
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
        )
        if not same:
            how = (
                "export its calibration models and benchmark them on the device (export/README.md)"
                if self.source.startswith(DEVICE_PREFIX)
                else "python -m larq_mobisearch.latency build ..."
            )
            raise LatencyTableError(
                f"This latency table ({self.source}) was measured for {_describe_arch(have)}, not for "
                f"{_describe_arch(want)}: its fixed part (stem, pointwise convs, classifier) does not apply. "
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
        return out


def save_latency_table(table: LatencyTable, path: Union[str, os.PathLike]) -> None:
    """Write `table` as JSON, atomically."""
    validate_table_json(table.to_json(), allow_partial=not table.complete)  # never write what we cannot load
    atomic_write_text(path, json.dumps(table.to_json(), indent=1) + "\n")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_table_json(data: Any, *, allow_partial: bool = False, where: str = "latency table") -> LatencyTable:
    """Check the structure of a table's parsed JSON and return a `LatencyTable`; LatencyTableError if not valid."""
    if not isinstance(data, dict):
        raise LatencyTableError(f"{where}: expected a JSON object, found {type(data).__name__}")
    required = ("version", "machine", "source", "entries", "fixed_ms", "architecture")
    missing = [k for k in required if k not in data]
    if missing:
        raise LatencyTableError(f"{where}: missing keys {missing} (a table has {list(required)})")
    if data["version"] != TABLE_VERSION:
        raise LatencyTableError(f"{where}: unsupported version {data['version']!r} (this code reads {TABLE_VERSION})")
    machine = data["machine"]
    if not isinstance(machine, dict):
        raise LatencyTableError(f"{where}: 'machine' must be an object")
    threads = machine.get("threads")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise LatencyTableError(f"{where}: machine.threads must be a positive integer, found {threads!r}")
    source = data["source"]
    if not isinstance(source, str) or not (
        source == SOURCE_HOST or (source.startswith(DEVICE_PREFIX) and len(source) > len(DEVICE_PREFIX))
    ):
        raise LatencyTableError(f"{where}: source must be 'host' or 'device:<name>', found {source!r}")
    arch = data["architecture"]
    if not isinstance(arch, dict) or any(k not in arch for k in ARCH_FIELDS):
        raise LatencyTableError(f"{where}: 'architecture' must be an object with {list(ARCH_FIELDS)}, found {arch!r}")
    shape = arch["input_shape"]
    if not isinstance(shape, list) or len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise LatencyTableError(f"{where}: architecture.input_shape must be [h, w, c], found {shape!r}")
    if not _finite(arch["width_multiplier"]) or arch["width_multiplier"] <= 0:
        raise LatencyTableError(f"{where}: architecture.width_multiplier must be > 0, found {arch['width_multiplier']!r}")
    if isinstance(arch["num_classes"], bool) or not isinstance(arch["num_classes"], int) or arch["num_classes"] < 1:
        raise LatencyTableError(f"{where}: architecture.num_classes must be a positive integer")
    fixed = data["fixed_ms"]
    if fixed is None:
        if not allow_partial:
            raise LatencyTableError(
                f"{where}: fixed_ms is null (an interrupted build); finish it by re-running the build"
            )
    elif not _finite(fixed):
        raise LatencyTableError(f"{where}: fixed_ms must be a finite number, found {fixed!r}")
    entries = data["entries"]
    if not isinstance(entries, list):
        raise LatencyTableError(f"{where}: 'entries' must be a list")
    table = LatencyTable(
        machine=dict(machine),
        source=source,
        entries={},
        fixed_ms=None if fixed is None else float(fixed),
        architecture=dict(arch),
        calibration=data.get("calibration"),
        method=str(data.get("method", "")),
    )
    for i, entry in enumerate(entries):
        here = f"{where}: entry {i}"
        if not isinstance(entry, dict) or "key" not in entry or "ms" not in entry:
            raise LatencyTableError(f"{here}: must be an object with 'key' and 'ms', found {entry!r}")
        key = _check_key(entry["key"], here)
        if not _finite(entry["ms"]) or entry["ms"] < 0:
            raise LatencyTableError(f"{here} ({describe_key(key)}): ms must be a finite number >= 0, found {entry['ms']!r}")
        if key["threads"] != threads:
            raise LatencyTableError(
                f"{here} ({describe_key(key)}): measured with {key['threads']} threads, the table says {threads}"
            )
        kid = key_id(key)
        if kid in table.entries:
            raise LatencyTableError(f"{here}: duplicate entry for {describe_key(key)}")
        table.entries[kid] = {**entry, "key": key, "ms": float(entry["ms"])}
    return table


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


# --------------------------------------------------------------------------------------------------------
# Cost model


class LatencyCostModel(AdditiveCostModel):
    """Predicted latency (ms) of a genotype: ``fixed_ms + sum over genes of table[layer config at its groups]``.

    # Arguments
        table: a `LatencyTable` or a path to its JSON.
        arch: the `specs.Architecture` searched; must be the one the table was measured for.
        allowed: group counts per gene to cost (default: the LCE search space); every one must have an
            entry, else LatencyTableError names the layer and its configuration.
        threads: if given, the table must have been measured with this many threads.
    """

    unit = "ms"
    name = "latency"

    def __init__(
        self,
        table: Union[LatencyTable, str, os.PathLike],
        arch: Architecture,
        allowed: Optional[Sequence[Sequence[int]]] = None,
        *,
        threads: Optional[int] = None,
    ):
        if not isinstance(table, LatencyTable):
            table = load_latency_table(table)
        if not table.complete:
            raise LatencyTableError("The latency table has no fixed_ms (an interrupted build); finish the build first")
        table.check_architecture(arch)
        if threads is not None and int(threads) != table.threads:
            raise LatencyTableError(
                f"The latency table was measured with {table.threads} thread(s), not {int(threads)}; "
                f"build or measure a table with --threads {int(threads)}"
            )
        allowed = default_allowed(arch) if allowed is None else allowed
        if len(allowed) != arch.num_genes:
            raise ValueError(f"allowed has {len(allowed)} gene entries, {arch.module} has {arch.num_genes} genes")
        per_gene = []
        missing = []
        for spec, values in zip(arch.gene_layers, allowed):
            t = {}
            for g in values:
                key = layer_key(spec, int(g), table.threads)
                try:
                    t[int(g)] = table.lookup(key)
                except KeyError:
                    missing.append(f"{spec.name} (gene {spec.gene}) at groups={g}: {describe_key(key)}")
            per_gene.append(t)
        if missing:
            shown = "; ".join(missing[:5]) + (f"; ... ({len(missing)} in all)" if len(missing) > 5 else "")
            raise LatencyTableError(
                f"The latency table ({table.source}) has no entry for {shown}. Rebuild the table with these "
                "group counts, or restrict the search space to the measured ones."
            )
        self.latency_table = table
        self.arch = arch
        self.source = table.source
        super().__init__(table.fixed_ms, per_gene)

    def breakdown(self, genotype: Sequence[int]) -> List[Tuple[str, int, float]]:
        """(layer name, groups, ms) per gene, for reports."""
        return [(spec.name, int(g), self.table[i][int(g)]) for i, (spec, g) in enumerate(zip(self.arch.gene_layers, genotype))]


# --------------------------------------------------------------------------------------------------------
# Building a host table


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="model", leave=False, file=sys.stderr)


def reference_genotypes(arch: Architecture, allowed: Optional[Sequence[Sequence[int]]] = None) -> List[Tuple[int, ...]]:
    """Uniform genotypes that together use every allowed group count of every gene (each gene clamped to its
    largest allowed count <= g, for each distinct allowed value g), from all-fewest to all-most groups.

    They calibrate ``fixed_ms`` of host tables and are the calibration models of device tables.
    """
    allowed = default_allowed(arch) if allowed is None else allowed
    out: List[Tuple[int, ...]] = []
    for v in sorted({int(g) for a in allowed for g in a}):
        genotype = tuple(max([g for g in a if g <= v] or [min(a)]) for a in allowed)
        if genotype not in out:
            out.append(genotype)
    return out


@dataclass
class HostMeasurement:
    """A host table and the end-to-end timings of the networks measured with it (same round-robin loop)."""

    table: LatencyTable
    networks: Dict[Tuple[int, ...], LatencyStats]


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
) -> HostMeasurement:
    """Convert every distinct layer configuration and the reference (+ extra) networks, time them all in one
    round-robin loop (`measure_latencies`), and assemble the table (see the module docstring).

    `extra_genotypes` are timed in the same loop (e.g. to check predictions against measurements taken
    under the same conditions) and returned in `networks` with the references; they do not enter the table.
    """
    check_choice("Unknown statistic", statistic, STATISTICS)
    measure_fn = measure_fn or measure_latencies
    cache = cache or FlatbufferCache()
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    allowed = default_allowed(arch) if allowed is None else tuple(tuple(int(g) for g in a) for a in allowed)
    refs = [arch.expand_groups(tuple(r)) for r in (references if references is not None else reference_genotypes(arch, allowed))]
    if not refs:
        raise ValueError("At least one reference genotype is needed to calibrate fixed_ms")
    networks: List[Tuple[int, ...]] = []
    for g in list(refs) + [arch.expand_groups(tuple(x)) for x in extra_genotypes]:
        if g not in networks:
            networks.append(g)

    needed = table_keys(arch, allowed, threads)
    fbs: Dict[str, bytes] = {}
    for key, _ in _progress(needed, len(needed), f"converting {arch.module} layers", progress):
        fbs["layer:" + key_id(key)] = cache.layer(key)
    for g in _progress(networks, len(networks), f"converting {arch.module} networks", progress):
        fbs["network:" + "-".join(map(str, g))] = cache.network(arch, g)
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
        method=(
            "host: each searchable layer converted alone (conv + BatchNorm, LceQuantize on its float input); layer "
            f"models and reference networks timed together round-robin with LCE's interpreter ({statistic} of "
            f"{runs} rounds); fixed_ms = median over reference genotypes of measured end-to-end latency minus "
            "the sum of their entries"
        ),
    )
    for key, layers in needed:
        st = stats["layer:" + key_id(key)]
        table.add(key, st.statistic(statistic), layers=layers, stats=st.as_dict())
    net_stats = {g: stats["network:" + "-".join(map(str, g))] for g in networks}
    cal = []
    for g in refs:
        entries_ms = sum(table.lookup(layer_key(s, x, threads)) for s, x in zip(arch.gene_layers, g))
        measured = net_stats[g].statistic(statistic)
        cal.append({
            "genotype": list(g),
            "measured_ms": measured,
            "sum_entries_ms": entries_ms,
            "residual_ms": measured - entries_ms,
            "stats": net_stats[g].as_dict(),
        })
    table.fixed_ms = float(np.median([c["residual_ms"] for c in cal]))
    table.calibration = {"method": "median residual of the reference genotypes", "references": cal}
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
    out_path: Optional[Union[str, os.PathLike]] = None,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    progress: bool = True,
    use_indirect_bgemm: bool = True,
    convert_fn: Callable[[Any], bytes] = None,
    measure_fn: Callable[..., Dict[str, LatencyStats]] = None,
    log: Callable[[str], None] = None,
) -> LatencyTable:
    """Measure a host latency table for `arch` (see the module docstring for the method).

    # Arguments
        arch: the architecture (module, input size, classes, width).
        allowed: group counts per gene to cover (default: LCE search space).
        threads: interpreter threads (part of every key).
        warmup, runs: warm-up runs and timed rounds of the round-robin loop.
        statistic: which summary of the timings is stored: "mean" (default; see `DEFAULT_STATISTIC`),
            "median", "p10" or "min".
        references: genotypes measured end to end to calibrate ``fixed_ms`` (default: `reference_genotypes`).
        out_path: if given, the table is written there (atomically).
        cache_dir: directory for converted models (`FlatbufferCache`): a rebuilt or interrupted table
            converts nothing twice. Distinct layer configurations are converted and timed once regardless.
        progress: show tqdm progress bars.
        convert_fn, measure_fn: injectable for tests (default: LCE conversion and `measure_latencies`).
        log: function for progress messages (default: print to stderr).
    """
    result = measure_host_table(
        arch,
        allowed=allowed,
        threads=threads,
        warmup=warmup,
        runs=runs,
        statistic=statistic,
        references=references,
        cache=FlatbufferCache(cache_dir, convert_fn),
        progress=progress,
        use_indirect_bgemm=use_indirect_bgemm,
        measure_fn=measure_fn,
        log=log,
    )
    if out_path is not None:
        save_latency_table(result.table, out_path)
    return result.table


# --------------------------------------------------------------------------------------------------------
# Command line: python -m larq_mobisearch.latency build|show|predict


def _parse_arch(args) -> Architecture:
    size = int(args.input_size)
    return architecture(args.module, (size, size, 3), args.num_classes, args.width_multiplier)


def _add_arch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--module", default="m3", choices=["m1", "m2", "m3"])
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--width-multiplier", type=float, default=1.0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m larq_mobisearch.latency", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="measure a host latency table")
    _add_arch_args(b)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--warmup", type=int, default=DEFAULT_WARMUP)
    b.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    b.add_argument("--statistic", default=DEFAULT_STATISTIC, choices=STATISTICS)
    b.add_argument("--mode", default="lce", choices=["lce", "paper"], help="search space whose groups to cover")
    b.add_argument("--cache-dir", default=None, help="directory for converted models (speeds up rebuilds)")
    b.add_argument("--out", required=True, help="output JSON path")

    s = sub.add_parser("show", help="validate and summarize a table")
    s.add_argument("table")

    pr = sub.add_parser("predict", help="predicted latency of genotypes from a table")
    _add_arch_args(pr)
    pr.add_argument("table")
    pr.add_argument("genotypes", nargs="+",
                    help="genotypes like 1-2-4-... or one number g for uniform groups (clamped per layer)")

    args = parser.parse_args(argv)
    if args.command == "build":
        from ..nn.space import SearchSpace

        import larq_mobisearch  # noqa: F401  (Keras 2 before TensorFlow)

        arch = _parse_arch(args)
        table = build_latency_table(
            arch,
            allowed=SearchSpace(arch, args.mode).candidates,
            threads=args.threads,
            warmup=args.warmup,
            runs=args.runs,
            statistic=args.statistic,
            out_path=args.out,
            cache_dir=args.cache_dir,
        )
        print(f"Wrote {args.out}: {len(table.entries)} entries, fixed_ms={table.fixed_ms:.3f}")
        return 0
    if args.command == "show":
        t = load_latency_table(args.table)
        print(f"source: {t.source}; architecture: {_describe_arch(t.architecture)}; threads: {t.threads}")
        print(f"machine: {t.machine.get('cpu')} ({t.machine.get('platform')}); LCE {t.machine.get('lce_version')}")
        print(f"fixed_ms: {t.fixed_ms:.4f}")
        for e in sorted(t.entries.values(), key=lambda e: (e["key"]["in_size"][0] * -1, e["key"]["in_channels"], e["key"]["groups"])):
            print(f"  {e['ms']:10.4f} ms  {describe_key(e['key'])}")
        return 0
    if args.command == "predict":
        from ..nn.space import SearchSpace, decode

        arch = _parse_arch(args)
        model = LatencyCostModel(args.table, arch)
        space = SearchSpace(arch, "lce")
        for text in args.genotypes:
            g = space.uniform(int(text)) if text.isdigit() else arch.expand_groups(decode(text))
            print(f"{'-'.join(map(str, g))}: {model.cost(g):.3f} ms")
        return 0
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
