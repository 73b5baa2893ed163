"""BENCHMARKS.md section of `convert_time.py` (pure Python: the markdown generator imports no TensorFlow)."""

from __future__ import annotations

from typing import Any, List, Mapping

CONVERT_CMD = ".venv/bin/python benchmarks/convert_time.py --json benchmarks/results/convert_time.json"
#: The methods in the order the table shows them (the first is the reference of the ratios).
METHODS = ("signature", "variables", "keras")


def table(result: Mapping[str, Any]) -> str:
    """Markdown table: median seconds per method with its ratio to ``signature``, and the checks."""
    lines = ["| model | input, width | parameters | " + " | ".join(f"`{m}` s (ratio)" for m in METHODS)
             + " | same ops as `signature`, max LCE output diff |",
             "|---|---|---:|" + "---:|" * len(METHODS) + "---|"]
    for row in result["rows"]:
        methods = row["methods"]
        ref = methods[METHODS[0]]["median_seconds"]
        cells = [f"{methods[m]['median_seconds']:.2f} ({methods[m]['median_seconds'] / ref:.2f}x)" for m in METHODS]
        checks = "; ".join(f"`{m}`: {'yes' if methods[m]['same_ops'] else 'NO'}, "
                           f"{methods[m]['max_abs_output_diff']:.1e}" for m in METHODS[1:])
        lines.append(f"| {row['module'].upper()} | {row['input_size']}x{row['input_size']}x3, {row['width']} | "
                     f"{row['params']:,} | " + " | ".join(cells) + f" | {checks} |")
    return "\n".join(lines)


def section(result: Mapping[str, Any]) -> List[str]:
    s = result["settings"]
    return [
        "## LCE conversion time: frozen signature vs variables vs `convert_keras_model`",
        "",
        f"One conversion of a fixed network (uniform {s['groups']} groups, {s['classes']} classes; M3 fused as "
        f"exported), after one untimed conversion per method; {s['rounds']} rounds, the methods "
        "round-robin in one process; median wall seconds. `signature` is `export_tflite`'s default (the weights frozen "
        "into one traced serving signature), `variables` the same signature saved with the model's variables (the "
        "default before), `keras` LCE's own `convert_keras_model`. Each flatbuffer is compared with the `signature` "
        "one: op census, and LCE outputs on 8 random images.",
        "",
        table(result),
        "",
        f"Load average before {result.get('load_average_before')}, after {result.get('load_average_after')}. "
        f"Command: `{result['command']}`",
        "",
    ]
