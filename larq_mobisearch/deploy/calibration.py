"""Calibration models for device latency tables, and their manifest.

One profiled run gives one group count per searchable layer, so to cover the search space run a set of models
whose genotypes together use every candidate: `calibration_genotypes` gives the uniform genotypes (each gene
clamped to its largest legal count <= g, for each distinct candidate value g), `export_calibration_models`
writes them as ``.tflite`` files with a ``manifest.json``, and `table_from_manifest` reads the manifest back
with the captured ``lce_benchmark_model`` outputs (``<model stem>.txt``) into a device table.

With width genes (``space=`` a `nn.space.SearchSpace` of ``width`` / ``joint`` genes) the table has scope
``block_convs``: the models are `table_plan.cover_genotypes` (together they contain every block conv at every
width pair and group count), exported without fusing M3's pointwise pairs so that each conv is its own node,
and the manifest records the space.

The manifest is JSON validated with pydantic (`Manifest`): ``{"version": 1, "architecture": {...},
"space": {...} (width genes only), "models": [{"file": "<plain name>.tflite", "genotype": [1, 2, ...]}, ...]}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple, Union

from pydantic import ValidationError

from ..fileio import atomic_write_bytes, atomic_write_text
from ..nn.space import SearchSpace
from ..nn.specs import Architecture, architecture
from .benchmark_output import parse_benchmark_output
from .device_table import latency_table_from_benchmark_outputs
from .latency_table import LatencyTable, architecture_info
from .table_plan import cover_genotypes, has_width_scope, reference_genotypes
from .schema import MANIFEST_VERSION, Manifest, describe_validation_error


def calibration_genotypes(arch: Architecture, allowed: Optional[Sequence[Sequence[int]]] = None
                          ) -> List[Tuple[int, ...]]:
    """Uniform genotypes that together use every allowed group count of every gene
    (`table_plan.reference_genotypes`)."""
    return reference_genotypes(arch, allowed)


def calibration_file_name(arch: Architecture, genotype: Sequence[int], space: Optional[SearchSpace] = None) -> str:
    """``m3_224x224_1-2-4-....tflite`` (with width genes ``..._w32-64-....tflite``)."""
    h, w, _ = arch.input_shape
    text = space.encode(genotype) if space is not None else "-".join(map(str, genotype))
    return f"{arch.module}_{h}x{w}_{text}.tflite"


def space_info(space: Optional[SearchSpace]) -> Optional[dict]:
    """The manifest's ``space`` (None for a groups-only space)."""
    if space is None or not space.has_widths:
        return None
    return {"genes": space.genes, "mode": space.mode, "width_choices": list(space.width_choices),
            "max_groups": space.max_groups}


def export_calibration_models(
    arch: Architecture,
    out_dir: Union[str, os.PathLike],
    *,
    allowed: Optional[Sequence[Sequence[int]]] = None,
    genotypes: Optional[Sequence[Sequence[int]]] = None,
    convert_fn: Optional[Callable[[Any], bytes]] = None,
    build_fn: Optional[Callable[..., Any]] = None,
    space: Optional[SearchSpace] = None,
    progress: Optional[Callable[[int, int, str], None]] = None,
) -> Path:
    """Convert the calibration genotypes of `arch` to ``.tflite`` files in `out_dir` (atomic writes).

    # Arguments
        arch: the architecture searched.
        out_dir: directory for the models and ``manifest.json`` (created).
        allowed: candidate group counts per gene (default: the LCE search space).
        genotypes: the genotypes to export (default: `calibration_genotypes`; with `space`: `cover_genotypes`).
        convert_fn: Keras model -> flatbuffer bytes (default: `converter.convert`).
        build_fn: (arch, group counts, fuse_pointwise=...) -> Keras model (default:
            `host_table.build_genotype_model`).
        space: a `nn.space.SearchSpace` of `arch` with width genes: models for a ``block_convs`` table (see
            the module docstring).
        progress: called with (models done, models in all, file name) after each model.

    # Returns
        The path of the manifest.
    """
    if convert_fn is None:
        from .converter import convert as convert_fn
    if build_fn is None:
        from .host_table import build_genotype_model as build_fn
    widths = has_width_scope(arch, space)

    out_dir = Path(out_dir)
    default = (lambda: cover_genotypes(space)) if widths else (lambda: calibration_genotypes(arch, allowed))
    genotypes = [space.validate(tuple(g)) if widths else tuple(g) for g in (genotypes or default())]
    models = []
    for n, genotype in enumerate(genotypes, start=1):
        name = calibration_file_name(arch, genotype, space if widths else None)
        at, groups = space.resolve(genotype) if widths else (arch, genotype)
        atomic_write_bytes(out_dir / name, convert_fn(build_fn(at, groups, fuse_pointwise=not widths)))
        models.append({"file": name, "genotype": list(genotype)})
        if progress is not None:
            progress(n, len(genotypes), name)
    manifest = {"version": MANIFEST_VERSION, "architecture": architecture_info(arch), "models": models}
    if widths:
        manifest["space"] = space_info(space)
    Manifest.model_validate(manifest)  # never write what load_manifest refuses
    path = out_dir / "manifest.json"
    atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")
    return path


def load_manifest(path: Union[str, os.PathLike]
                  ) -> Tuple[Architecture, List[Tuple[str, Tuple[int, ...]]], Optional[SearchSpace]]:
    """(architecture, [(tflite file name, genotype)], search space with width genes or None) from a calibration
    manifest, validated.

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
    sp = manifest.space
    space = None if sp is None else SearchSpace(arch, sp.mode, sp.max_groups, genes=sp.genes,
                                               width_choices=sp.width_choices)
    out = []
    for i, m in enumerate(manifest.models):
        try:
            out.append((m.file, arch.expand_groups(m.genotype) if space is None else space.validate(tuple(m.genotype))))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Manifest {path}: models.{i}.genotype: {exc}") from None
    return arch, out, space


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
    arch, models, space = load_manifest(manifest)
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
        runs, arch, device=device, threads=threads, tflites=tflites, mapping=mapping, machine=machine, space=space
    )
