"""Calibration models for device latency tables, and their manifest.

One profiled run gives one group count per searchable layer, so to cover the search space run a set of models
whose genotypes together use every candidate: `calibration_genotypes` gives the uniform genotypes (each gene
clamped to its largest legal count <= g, for each distinct candidate value g), `export_calibration_models`
writes them as ``.tflite`` files with a ``manifest.json``, and `table_from_manifest` reads the manifest back
with the captured ``lce_benchmark_model`` outputs (``<model stem>.txt``) into a device table.

The manifest is JSON validated with pydantic (`Manifest`): ``{"version": 1, "architecture": {...},
"models": [{"file": "<plain name>.tflite", "genotype": [1, 2, ...]}, ...]}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple, Union

from pydantic import ValidationError

from ..fileio import atomic_write_bytes, atomic_write_text
from ..nn.specs import Architecture, architecture
from .benchmark_output import parse_benchmark_output
from .device_table import latency_table_from_benchmark_outputs
from .latency_table import LatencyTable, architecture_info
from .table_plan import reference_genotypes
from .schema import MANIFEST_VERSION, Manifest, describe_validation_error


def calibration_genotypes(arch: Architecture, allowed: Optional[Sequence[Sequence[int]]] = None) -> List[Tuple[int, ...]]:
    """Uniform genotypes that together use every allowed group count of every gene
    (`table_plan.reference_genotypes`)."""
    return reference_genotypes(arch, allowed)


def calibration_file_name(arch: Architecture, genotype: Sequence[int]) -> str:
    """``m3_224x224_1-2-4-....tflite``."""
    h, w, _ = arch.input_shape
    return f"{arch.module}_{h}x{w}_{'-'.join(map(str, genotype))}.tflite"


def export_calibration_models(
    arch: Architecture,
    out_dir: Union[str, os.PathLike],
    *,
    allowed: Optional[Sequence[Sequence[int]]] = None,
    genotypes: Optional[Sequence[Sequence[int]]] = None,
    convert_fn: Optional[Callable[[Any], bytes]] = None,
    build_fn: Optional[Callable[[Architecture, Sequence[int]], Any]] = None,
) -> Path:
    """Convert the calibration genotypes of `arch` to ``.tflite`` files in `out_dir` (atomic writes).

    # Arguments
        arch: the architecture searched.
        out_dir: directory for the models and ``manifest.json`` (created).
        allowed: candidate group counts per gene (default: the LCE search space).
        genotypes: the genotypes to export (default: `calibration_genotypes`).
        convert_fn: Keras model -> flatbuffer bytes (default: `converter.convert`).
        build_fn: (arch, genotype) -> Keras model (default: `host_table.build_genotype_model`).

    # Returns
        The path of the manifest.
    """
    if convert_fn is None:
        from .converter import convert as convert_fn
    if build_fn is None:
        from .host_table import build_genotype_model as build_fn

    out_dir = Path(out_dir)
    genotypes = [tuple(g) for g in (genotypes or calibration_genotypes(arch, allowed))]
    models = []
    for genotype in genotypes:
        name = calibration_file_name(arch, genotype)
        atomic_write_bytes(out_dir / name, convert_fn(build_fn(arch, genotype)))
        models.append({"file": name, "genotype": list(genotype)})
    manifest = {"version": MANIFEST_VERSION, "architecture": architecture_info(arch), "models": models}
    Manifest.model_validate(manifest)  # never write what load_manifest refuses
    path = out_dir / "manifest.json"
    atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")
    return path


def load_manifest(path: Union[str, os.PathLike]) -> Tuple[Architecture, List[Tuple[str, Tuple[int, ...]]]]:
    """(architecture, [(tflite file name, genotype)]) from a calibration manifest, validated.

    Raises ValueError naming each problem by its dotted location (``models.0.file``) and the value received.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"Manifest {path} is not valid JSON ({exc})") from None
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc, f"Manifest {path}")) from None
    a = manifest.architecture
    arch = architecture(a.module, tuple(a.input_shape), a.num_classes, a.width_multiplier, a.stem)
    out = []
    for i, m in enumerate(manifest.models):
        try:
            out.append((m.file, arch.expand_groups(m.genotype)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Manifest {path}: models.{i}.genotype: {exc}") from None
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
