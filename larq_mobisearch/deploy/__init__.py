"""Deployment: LCE export and its checks, host and device latency, latency tables.

Modules (one concept each):

- `flatbuffer`: the one TFLite flatbuffer reader/writer (ops, tensors, options, conv signatures, census);
- `converter`: LCE conversion of a Keras model; `lowering`: which binary convs become ``LceBconv2d``;
- `fuse`: export-time fusion of M3's pointwise pairs; `export`: `export_tflite`, `export_report`;
- `verify`: LCE interpreter vs Keras, near ties, the numerics gate;
- `timing`: round-robin interpreter timing; `profile`: per-op host time breakdown;
- `table_plan`: what a table measures (layer keys, scopes, reference networks); `latency_table`: `LatencyTable`,
  load/save; `schema`: the JSON file schemas (pydantic);
- `host_table`: host tables; `benchmark_output`: ``lce_benchmark_model`` output parser;
  `device_table`: device tables; `calibration`: calibration models and manifests.

The public names of these modules are re-exported here and imported on first use: importing one module
(e.g. the pure-Python `latency_table` and `table_plan`, which `search.costs` reads) does not import the TensorFlow-based ones,
and there is no import cycle with `search`. The latency cost model lives with the other cost models:
`larq_mobisearch.search.costs.LatencyCostModel` (also reachable here).
"""

from __future__ import annotations

import importlib
from typing import Dict, Tuple

_PUBLIC: Dict[str, Tuple[str, ...]] = {
    "flatbuffer": ("TFLiteModel", "Op", "Tensor", "ConvSignature", "LCE_BCONV", "check_flatbuffer",
                   "read_flatbuffer", "read_model", "op_census", "node_outputs", "conv_signature",
                   "conv_signatures"),
    "converter": ("convert", "convert_with_output", "inference_function", "native_stderr_captured"),
    "lowering": ("ExportError", "ConvLayer", "binary_convs", "float_convs", "lowering_problems",
                 "unlowered_layers", "zero_padded_small_map_convs"),
    "fuse": ("fuse_pointwise_pairs", "fusable_pairs", "PointwisePair"),
    "profile": ("op_profile", "OpProfile", "OpTime", "single_op_model", "empty_twin"),
    "export": ("export_tflite", "export_report", "ExportReport", "write_tflite", "float_model",
               "float_tflite_size", "parameter_memory"),
    "verify": ("verify_tflite", "VerifyReport", "sign_margins", "lce_interpreter", "run_tflite",
               "DEFAULT_TIE_MARGIN", "DEFAULT_MAX_ABS_DIFF", "NumericsError", "check_numerics",
               "numerics_failures", "logit_tolerance"),
    "timing": ("LatencyStats", "measure_latency", "measure_latencies", "make_interpreter", "DEFAULT_STATISTIC",
               "DEFAULT_RUNS", "DEFAULT_WARMUP"),
    "table_plan": ("layer_key", "key_id", "describe_key", "table_keys", "default_allowed", "reference_genotypes",
                   "random_references", "DEFAULT_CALIBRATION_SAMPLES", "block_conv_keys", "block_table_keys",
                   "SCOPE_GENES", "SCOPE_BLOCKS", "KEY_FIELDS", "HostReferences", "host_references",
                   "width_references", "distinct_draws", "plan_for", "TablePlan", "cover_genotypes",
                   "conv_key", "has_width_scope"),
    "latency_table": ("LatencyTable", "LatencyTableError", "machine_info", "architecture_info",
                      "load_latency_table", "save_latency_table", "validate_table_json", "describe_architecture",
                      "TABLE_VERSION", "DEVICE_PREFIX"),
    "host_table": ("build_latency_table", "measure_host_table", "HostMeasurement", "FlatbufferCache",
                   "convert_host_models", "build_layer_model", "build_genotype_model", "measure_genotype"),
    "benchmark_output": ("parse_benchmark_output", "BenchmarkOutput", "BenchmarkOutputError", "RunStats",
                         "OpRow", "TypeRow", "ProfileSection"),
    "device_table": ("latency_table_from_benchmark_outputs", "latency_table_from_benchmark_output",
                     "layer_times", "layer_of_names", "tflite_node_outputs", "exported_convs"),
    "calibration": ("calibration_genotypes", "export_calibration_models", "load_manifest",
                    "table_from_manifest"),
    "schema": ("TableFile", "Manifest", "MANIFEST_VERSION", "describe_validation_error", "SOURCE_HOST"),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}
_WHERE["LatencyCostModel"] = "..search.costs"

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    target = module[2:] if module.startswith("..") else module
    value = getattr(importlib.import_module(("larq_mobisearch." if module.startswith("..") else __name__ + ".")
                                            + target), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
