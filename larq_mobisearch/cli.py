"""`mobisearch` command line: the only module that imports click.

    mobisearch run                      # whole pipeline on the bundled digits data
    mobisearch teacher|supernet|search|train|export --run-dir DIR
    mobisearch train --run-dir DIR --baseline mobinet   # the MoBiNet-style (depthwise) baseline
    mobisearch flops --module m3 --groups 4 [--input-size 224 --num-classes 1000] [--json]
    mobisearch latency build|show|predict ...     # host latency tables
    mobisearch device parse|table|export-models   # lce_benchmark_model outputs -> device latency tables
"""

from __future__ import annotations

from . import _startup

_startup.quiet_cli_startup()  # TensorFlow's C++ log level, before anything loads TensorFlow (the CLI process only)

import functools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from typing import Optional  # noqa: E402

import click  # noqa: E402

from .choices import BASELINES, DEFAULT_STEM, MAPPINGS, MODULES, SPACE_GENES, SPACE_MODES, STATISTICS, STEMS  # noqa: E402
from .nn.specs import DEFAULT_WIDTH_CHOICES  # noqa: E402  (pure Python)

DEFAULT_RUN_DIR = "runs/digits"
_STEM_OPTION = click.option("--stem", type=click.Choice(list(STEMS), case_sensitive=False), default=DEFAULT_STEM,
                            show_default=True, help="The float stem: MobileNet's (2x down) or QuickNet's (4x down).")
_CALIBRATION_OPTION = click.option("--calibration-samples", default=None, type=click.IntRange(min=0), help=(
    "Random genotypes whose end-to-end times calibrate fixed_ms (default: the library's; 0: the uniform ones do)."))


def _friendly_errors(fn):
    """Turn the library's documented errors into a one-line `Error: ...` (no traceback soup)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except click.ClickException:
            raise
        except (ValueError, RuntimeError, FileNotFoundError, TypeError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _config_options(fn):
    fn = click.option("--run-dir", default=DEFAULT_RUN_DIR, show_default=True, type=click.Path(file_okay=False),
                      help="Run directory: every stage reads and writes its files here.")(fn)
    fn = click.option("--preset", default=None,
                      help="Config preset for a new run: digits (default), fashion, fashion_react, cifar10, "
                           "imagenet.")(fn)
    fn = click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
                      help="JSON or YAML config file (merged over the run's saved config, or the preset).")(fn)
    fn = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                      help="Override a config value, e.g. --set search.population=20 (repeatable).")(fn)
    fn = click.option("--quiet", is_flag=True, help="No progress bars (they are only drawn on a terminal; otherwise one line per epoch).")(fn)
    return fn


def _search_options(fn, flag: str = "--search"):
    names = [flag, "--name"] if flag == "--search" else [flag, "--search"]
    fn = click.option(*names, "search_name", default="default", show_default=True,
                      help="Name of the search (several searches share one supernet: budgets, devices).")(fn)
    fn = click.option("--restart-from", type=click.Choice(["teacher", "supernet", "search", "retrain", "export"]),
                      default=None, help="Delete this stage's files (and the later stages') and redo them.")(fn)
    return fn


def _open_run(run_dir, preset, config_path, overrides, quiet, *, create: bool, search: Optional[str] = "default",
              restart_from=None):
    """A new run starts from a preset; an existing one from its saved config (that of search `search`)."""
    from .config import load_config
    from .pipeline import Run
    from .pipeline.rundir import saved_config

    saved = saved_config(run_dir, search, echo=click.echo)
    cfg = None
    if saved is None:
        if not create:
            raise click.ClickException(f"{run_dir} is not a run directory (no config.json); start one with "
                                       f"`mobisearch run --run-dir {run_dir}`")
        cfg = load_config(config_path, preset=preset, overrides=overrides)
    elif preset:
        cfg = load_config(config_path, preset=preset, overrides=overrides)
    elif config_path or overrides:
        cfg = load_config(config_path, overrides=overrides, base=saved)
    return Run.open(run_dir, cfg, verbose=0 if quiet else 1, search=search, restart_from=restart_from,
                    echo=click.echo)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose):
    """Find, train and ship binary MobileNets (Phan et al., CVPR 2020) with Larq and LCE.

    Quiet by default: TensorFlow's C++ start-up lines, its Python and absl warnings and the LCE converter's
    output are shown with -v (converter output, info) or -vv (debug, all of TensorFlow's logging). Errors are
    always shown.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # TensorFlow's Python-side loggers (its own and absl's, used by tf-keras for "WARNING:absl:..." lines);
    # the C++ side was set before TensorFlow loaded (larq_mobisearch._startup).
    noisy = logging.ERROR if verbose == 0 else logging.WARNING if verbose == 1 else logging.DEBUG
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(noisy)


def _baseline_option(fn, help_text: str):
    return click.option("--baseline", "baselines", multiple=True, type=click.Choice(list(BASELINES)),
                        help=help_text)(fn)


@main.command()
@_config_options
@_search_options
@functools.partial(_baseline_option, help_text=(
    "Also retrain and export this named baseline in the search of its name (mobinet: the MoBiNet-style "
    "depthwise model, exported with float fallback); repeatable."))
@_friendly_errors
def run(run_dir, preset, config_path, overrides, quiet, search_name, restart_from, baselines):
    """Run all stages: supernet -> search -> retrain -> export (finished stages are skipped).

    With --set supernet.loss=distributional or retrain.loss=distributional, the float teacher is trained
    first (teacher stage) unless teacher.source=path.
    """
    from .pipeline import run_all

    r = _open_run(run_dir, preset, config_path, overrides, quiet, create=True, search=search_name,
                  restart_from=restart_from)
    report = run_all(r, echo=click.echo, baselines=baselines)
    if "worker" in report:  # a multi-worker run's non-chief worker: the chief exports and reports
        click.echo(f"worker {report['worker']} of {report['workers']} finished; the chief writes the reports")
        return
    click.echo("")
    click.echo(f"search          {r.search}")
    click.echo(f"genotype        {report['genotype']}")
    click.echo(f"test top-1      {report['test_accuracy']:.4f}")
    click.echo(f"FLOPs           {report['costs']['flops']:.4g} (BOPs {report['costs']['bops']:,}, "
               f"float {report['costs']['float_flops']:,})")
    click.echo(f"model size      {report['tflite_bytes']:,} bytes .tflite "
               f"(parameters {report['parameter_memory']['bytes']:,} bytes)")
    click.echo(f"tflite          {report['tflite']}")
    click.echo(f"report          {r.search_path('report.md')} (all searches: {r.path('report.md')})")


@main.command()
@_config_options
@_friendly_errors
def teacher(run_dir, preset, config_path, overrides, quiet):
    """Train the real-valued teacher of the distributional loss (the float twin, once per run)."""
    from .pipeline import train_teacher

    r = _open_run(run_dir, preset, config_path, overrides, quiet, create=True, search=None)
    if r.cfg.teacher.source == "path":
        click.echo(f"teacher.source is 'path': the teacher is {r.cfg.teacher.path}; nothing to train")
        return
    if r.done("teacher"):
        click.echo(f"teacher trained already: {r.path('teacher', 'weights.h5')}")
        return
    train_teacher(r)
    click.echo(f"teacher weights: {r.path('teacher', 'weights.h5')}")


@main.command()
@_config_options
@_friendly_errors
def supernet(run_dir, preset, config_path, overrides, quiet):
    """Stage 1: train the weight-sharing supernet with a random genotype every step (once per run)."""
    from .pipeline import train_supernet

    r = _open_run(run_dir, preset, config_path, overrides, quiet, create=True, search=None)
    if r.done("supernet"):
        click.echo(f"supernet trained already: {r.path('supernet', 'weights.h5')}")
        return
    train_supernet(r)
    click.echo(f"supernet weights: {r.path('supernet', 'weights.h5')}")


@main.command()
@_config_options
@functools.partial(_search_options, flag="--name")
@click.option("--latency-table", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Latency table JSON (host or device) for a latency budget / Pareto axis.")
@click.option("--latency-budget-ms", default=None, type=float, help="Latency budget in milliseconds.")
@click.option("--flops-budget", default=None, type=float, help="FLOPs budget (BOPs/64 + float FLOPs).")
@_friendly_errors
def search(run_dir, preset, config_path, overrides, quiet, search_name, restart_from, latency_table,
           latency_budget_ms, flops_budget):
    """Stage 2: evolutionary search (Algorithm 1) on the trained supernet; resumes from its state file.

    Each --name is its own search (own budgets, state, winner, retraining and .tflite) on the same supernet.
    """
    from .pipeline import search as run_search

    extra = list(overrides)
    if latency_table:
        extra.append(f"search.latency_table={os.path.abspath(latency_table)}")
    if latency_budget_ms is not None:
        extra.append(f"search.latency_budget_ms={latency_budget_ms}")
    if flops_budget is not None:
        extra.append(f"search.flops_budget={flops_budget}")
    r = _open_run(run_dir, preset, config_path, tuple(extra), quiet, create=False, search=search_name,
                  restart_from=restart_from)
    if r.done("search"):
        click.echo(f"search {r.search!r} is done already: {r.marker('search')}")
        return
    result = run_search(r)
    click.echo(json.dumps(result, indent=2))


@main.command()
@_config_options
@_search_options
@click.option("--genotype", default=None, help="Genotype to train, e.g. 1-1-2-4-... (default: the searched one).")
@click.option("--init-from-supernet", is_flag=True, default=None,
              help="Start from the supernet's cropped weights instead of from scratch (beyond the paper).")
@click.option("--baseline", default=None, type=click.Choice(list(BASELINES)),
              help="Train a named baseline instead (mobinet: every 3x3 conv depthwise), in the search of its name "
                   "unless --search is given; export it with --allow-float-fallback.")
@_friendly_errors
def train(run_dir, preset, config_path, overrides, quiet, search_name, restart_from, genotype, init_from_supernet,
          baseline):
    """Stage 3: train a genotype from scratch (the search's winner by default)."""
    from .pipeline import retrain
    from .nn.space import decode

    if baseline and genotype:
        raise click.UsageError("--genotype and --baseline are exclusive")
    if baseline and search_name == "default":
        search_name = baseline
    r = _open_run(run_dir, preset, config_path, overrides, quiet, create=genotype is not None or bool(baseline),
                  search=search_name, restart_from=restart_from)
    genes = r.space.validate(decode(genotype)) if genotype else None
    _, acc = retrain(r, genes, init_from_supernet=init_from_supernet, baseline=baseline)
    click.echo(f"test top-1 {acc:.4f}; weights: {r.search_path('final', 'weights.h5')}")


@main.command()
@_config_options
@_search_options
@click.option("--allow-float-fallback", is_flag=True, default=None,
              help="Export even if some binary conv cannot be lowered to LceBconv2d (it stays float).")
@click.option("--allow-mismatch", is_flag=True, default=None,
              help="Write the .tflite even if it disagrees with Keras beyond export.max_abs_diff on samples "
                   "without near ties (export.json marks it); with --set export.verify_samples=0, export "
                   "unverified.")
@click.option("--output", default=None, type=click.Path(dir_okay=False), help="Where to write the .tflite.")
@_friendly_errors
def export(run_dir, preset, config_path, overrides, quiet, search_name, restart_from, allow_float_fallback,
           allow_mismatch, output):
    """Stage 4: convert the search's retrained model with LCE, verify it against Keras, write the .tflite.

    Refused (nothing written but export_refused.json) when a verification sample that is not a near tie
    differs from Keras by more than export.max_abs_diff x logit scale, or top-1 agreement on those samples
    is below 100%, unless --allow-mismatch.
    """
    from .config import parse_override
    from .pipeline import export as run_export
    from .pipeline import write_report

    if allow_mismatch and any(parse_override(o) == ("export.verify_samples", 0) for o in overrides):
        overrides = (*overrides, "export.allow_mismatch=true")  # no verification is a mismatch allowed
    r = _open_run(run_dir, preset, config_path, overrides, quiet, create=False, search=search_name,
                  restart_from=restart_from)
    out = run_export(r, allow_float_fallback=allow_float_fallback, allow_mismatch=allow_mismatch, output=output)
    if r.done("search") or out.get("baseline"):
        write_report(r)
    v = out.get("verification") or {}
    status = ("not verified" if not v.get("verified") else "verified" if v.get("passed")
              else "MISMATCH (written with --allow-mismatch)")
    figures = ""
    if v.get("verified"):
        figures = (f": max |logit diff| {v['max_abs_diff_clear']:.3g} on {v['clear_samples']} samples without near "
                   f"ties (tolerance {v['tolerance']:.3g}), top-1 agreement {100 * v['top1_agreement_clear']:.1f}%")
    click.echo(f"tflite {out['tflite']} ({out['tflite_bytes']:,} bytes); LceBconv2d {out['num_lce_bconv']}/"
               f"{out['num_binary_convs']}; {status}{figures}")


@main.command()
@click.option("--run-dir", default=DEFAULT_RUN_DIR, show_default=True, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@_friendly_errors
def searches(run_dir, as_json):
    """List the searches of a run directory: budgets, winner, held-out fitness, test top-1, FLOPs, latency."""
    from .pipeline import list_searches, searches_table

    r = _open_run(run_dir, None, None, (), True, create=False, search=None)
    rows = list_searches(r)
    click.echo(json.dumps(rows, indent=2) if as_json else "\n".join(searches_table(rows)))


@main.command("latency-table")
@_config_options
@click.option("--threads", default=1, show_default=True, type=int, help="Interpreter threads to time with.")
@click.option("--runs", default=None, type=int, help="Timing rounds (default: the library's).")
@_CALIBRATION_OPTION
@click.option("--output", default=None, type=click.Path(dir_okay=False),
              help="Where to write the table (default: RUN_DIR/latency_table.json).")
@_friendly_errors
def latency_table(run_dir, preset, config_path, overrides, quiet, threads, runs, calibration_samples, output):
    """Measure a host latency lookup table for the run's architecture and search space (LCE interpreter).

    Use it with `mobisearch search --latency-table FILE --latency-budget-ms X`. With width genes the table
    times every block conv at every width pair. Host x86 timings rank genotypes; for a device, build the
    table from `lce_benchmark_model` output (see export/README.md).
    """
    from .deploy.host_table import build_latency_table

    r = _open_run(run_dir, preset, config_path, overrides, quiet, create=True, search=None)
    kwargs = {"runs": runs} if runs else {}
    if calibration_samples is not None:
        kwargs["calibration_samples"] = calibration_samples
    path = output or r.path("latency_table.json")
    table = build_latency_table(r.arch, allowed=r.space.group_candidates, space=r.space, threads=threads, out_path=path,
                                cache_dir=r.path("latency_cache"), progress=not quiet and sys.stderr.isatty(), **kwargs)
    click.echo(f"latency table: {path} ({len(table.entries)} layer configurations, fixed {table.fixed_ms:.3f} ms)")


@main.command()
@click.option("--module", type=click.Choice(["m1", "m2", "m3"], case_sensitive=False), required=True)
@click.option("--groups", required=True, help="One int (uniform) or a comma/dash-separated gene list, optionally with "
              "block widths after '_w' (1-2-4-..._w32-64-96-...).")
@click.option("--input-size", default=224, show_default=True, type=int)
@click.option("--channels", default=3, show_default=True, type=int)
@click.option("--num-classes", default=1000, show_default=True, type=int)
@click.option("--width-multiplier", default=1.0, show_default=True, type=float)
@_STEM_OPTION
@click.option("--space", "space_mode", type=click.Choice(["paper", "lce"]), default="paper", show_default=True,
              help="Which group counts are legal: all divisors (paper) or LCE-lowerable ones (lce).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object with bops, float_flops, flops.")
@_friendly_errors
def flops(module, groups, input_size, channels, num_classes, width_multiplier, stem, space_mode, as_json):
    """BOPs, float FLOPs and FLOPs (= BOPs/64 + float FLOPs) of a genotype, counted analytically."""
    from .search.costs import count_costs
    from .nn.space import decode
    from .nn.specs import architecture

    arch = architecture(module, (input_size, input_size, channels), num_classes, width_multiplier, stem)
    genes = decode(groups)
    spec = genes[0] if len(genes) == 1 else genes
    if "_w" in groups:  # group counts, then one width per block: counted at those widths
        from .nn.space import SearchSpace

        n = arch.num_genes
        if len(genes) != n + len(arch.blocks):
            raise click.BadParameter(f"received {len(genes)} genes; a genotype with widths has {n} group counts and "
                                     f"{len(arch.blocks)} block widths", param_hint="--groups")
        arch, spec = SearchSpace(arch, space_mode, genes="joint").resolve(genes)
    costs = count_costs(arch, spec, check=True, lce_compatible=space_mode == "lce")
    if as_json:
        click.echo(json.dumps(costs.as_dict()))
    else:
        click.echo(f"BOPs         {costs.bops:,}")
        click.echo(f"float FLOPs  {costs.float_flops:,}")
        click.echo(f"FLOPs        {costs.flops:,.0f}  ({costs.flops / 1e8:.4f}e8)")


# ----------------------------------------------------------------------------------------------------------
# Latency tables and device benchmarks (no run directory)


def _arch_options(fn, *, module_required: bool = True, module_default: str = None):
    fn = _STEM_OPTION(fn)
    fn = click.option("--width-multiplier", default=1.0, show_default=True, type=float)(fn)
    fn = click.option("--num-classes", default=1000, show_default=True, type=int)(fn)
    fn = click.option("--channels", default=3, show_default=True, type=int, help="Input channels.")(fn)
    fn = click.option("--input-size", default=224, show_default=True, type=int, help="Input height = width.")(fn)
    fn = click.option("--module", type=click.Choice(list(MODULES), case_sensitive=False), default=module_default,
                      required=module_required and module_default is None, show_default=module_default is not None)(fn)
    return fn


def _architecture(module, input_size, channels, num_classes, width_multiplier, stem=DEFAULT_STEM):
    from .nn.specs import architecture

    return architecture(module, (input_size, input_size, channels), num_classes, width_multiplier, stem)


@main.group()
def latency():
    """Host latency lookup tables: build one, show it, predict genotypes from it."""


@latency.command("build")
@functools.partial(_arch_options, module_default="m3")
@click.option("--threads", default=1, show_default=True, type=int, help="Interpreter threads (part of every key).")
@click.option("--warmup", default=None, type=int, help="Untimed runs of every model first (default: the library's).")
@click.option("--runs", default=None, type=int, help="Round-robin timing rounds (default: the library's).")
@click.option("--statistic", type=click.Choice(list(STATISTICS)), default="mean", show_default=True,
              help="Summary of the timings stored per entry.")
@click.option("--mode", type=click.Choice(list(SPACE_MODES)), default="lce", show_default=True,
              help="Search space whose group counts the table covers.")
@_CALIBRATION_OPTION
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
              help="Directory for converted models (a rebuild converts nothing twice).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Table JSON to write.")
@_friendly_errors
def latency_build(module, input_size, channels, num_classes, width_multiplier, stem, threads, warmup, runs,
                  statistic, mode, calibration_samples, cache_dir, out):
    """Measure a host latency table (LCE interpreter, every layer configuration timed round-robin)."""
    from .deploy.host_table import build_latency_table
    from .nn.space import SearchSpace

    arch = _architecture(module, input_size, channels, num_classes, width_multiplier, stem)
    kwargs = {k: v for k, v in (("warmup", warmup), ("runs", runs), ("calibration_samples", calibration_samples))
              if v is not None}
    table = build_latency_table(arch, allowed=SearchSpace(arch, mode).candidates, threads=threads, statistic=statistic,
                                out_path=out, cache_dir=cache_dir, progress=sys.stderr.isatty(), **kwargs)
    click.echo(f"Wrote {out}: {len(table.entries)} entries, fixed_ms={table.fixed_ms:.3f}")


@latency.command("show")
@click.argument("table", type=click.Path(dir_okay=False))
@_friendly_errors
def latency_show(table):
    """Validate a latency table and print its entries."""
    from .deploy import describe_architecture, describe_key, load_latency_table

    t = load_latency_table(table)
    click.echo(f"source: {t.source}; architecture: {describe_architecture(t.architecture)}; threads: {t.threads}")
    click.echo(f"machine: {t.machine.get('cpu')} ({t.machine.get('platform')}); LCE {t.machine.get('lce_version')}")
    click.echo(f"fixed_ms: {t.fixed_ms:.4f}")
    for e in sorted(t.entries.values(),
                    key=lambda e: (-e["key"]["in_size"][0], e["key"]["in_channels"], e["key"]["groups"])):
        click.echo(f"  {e['ms']:10.4f} ms  {describe_key(e['key'])}")


@latency.command("predict")
@functools.partial(_arch_options, module_default="m3")
@click.argument("table", type=click.Path(dir_okay=False))
@click.argument("genotypes", nargs=-1, required=True)
@_friendly_errors
def latency_predict(module, input_size, channels, num_classes, width_multiplier, stem, table, genotypes):
    """Predicted latency of GENOTYPES (1-2-4-... or one number g: uniform groups, clamped per layer)."""
    from .nn.space import SearchSpace, decode
    from .search.costs import LatencyCostModel

    arch = _architecture(module, input_size, channels, num_classes, width_multiplier, stem)
    model = LatencyCostModel(table, arch)
    space = SearchSpace(arch, "lce")
    for text in genotypes:
        g = space.uniform(int(text)) if text.isdigit() else arch.expand_groups(decode(text))
        click.echo(f"{'-'.join(map(str, g))}: {model.cost(g):.3f} ms")


@main.group()
def device():
    """Device latency: lce_benchmark_model outputs -> latency tables (see export/README.md)."""


def _echo_parsed(out, top: int) -> None:
    click.echo("\n".join(out.describe(top)))


@device.command("parse")
@click.argument("outputs", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print each summary as JSON.")
@click.option("--top", default=10, show_default=True, type=int, help="Slowest nodes to list.")
@_friendly_errors
def device_parse(outputs, as_json, top):
    """Parse lce_benchmark_model output files and print a summary of each."""
    from pathlib import Path

    from .deploy.benchmark_output import parse_benchmark_output

    for path in outputs:
        out = parse_benchmark_output(Path(path).read_text(encoding="utf-8", errors="replace"))
        if as_json:
            click.echo(json.dumps({"file": path, **out.summary()}, indent=1))
        else:
            click.echo(f"== {path}")
            _echo_parsed(out, top)


@device.command("table")
@click.option("--device", "device_name", required=True, help="Device name, e.g. rpi4 or pixel6.")
@click.option("--manifest", default=None, type=click.Path(dir_okay=False, exists=True),
              help="manifest.json written by `mobisearch device export-models`.")
@click.option("--outputs", default=None, type=click.Path(file_okay=False),
              help="Directory with <model stem>.txt outputs (with --manifest; default: the manifest's directory).")
@click.option("--run", "runs", multiple=True, metavar="OUTPUT.txt=GENOTYPE",
              help="An output file and its genotype (1-2-4-...), repeatable (needs --module).")
@functools.partial(_arch_options, module_required=False)
@click.option("--threads", default=None, type=int, help="Threads of the runs (default: read from the outputs).")
@click.option("--mapping", type=click.Choice(list(MAPPINGS)), default="auto", show_default=True,
              help="How profiled nodes are attributed to layers.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Table JSON to write.")
@_friendly_errors
def device_table(device_name, manifest, outputs, runs, module, input_size, channels, num_classes, width_multiplier,
                 stem, threads, mapping, out):
    """Build a device latency table from captured lce_benchmark_model outputs."""
    from pathlib import Path

    from .deploy.calibration import table_from_manifest
    from .deploy.device_table import latency_table_from_benchmark_outputs
    from .deploy import describe_key, save_latency_table
    from .nn.space import decode

    if manifest:
        def show(path, parsed):
            click.echo(f"== {path}")
            _echo_parsed(parsed, top=0)

        table = table_from_manifest(manifest, outputs or Path(manifest).parent, device=device_name, threads=threads,
                                    mapping=mapping, on_output=show)
    else:
        if not runs or not module:
            raise click.UsageError("table needs --manifest, or --module and at least one --run OUTPUT.txt=GENOTYPE")
        arch = _architecture(module, input_size, channels, num_classes, width_multiplier, stem)
        parsed_runs = []
        for item in runs:
            path, _, geno = item.rpartition("=")
            if not path:
                raise click.UsageError(f"--run expects OUTPUT.txt=GENOTYPE, received {item!r}")
            parsed_runs.append((Path(path).read_text(encoding="utf-8", errors="replace"), decode(geno)))
        table = latency_table_from_benchmark_outputs(parsed_runs, arch, device=device_name, threads=threads,
                                                     mapping=mapping)
    save_latency_table(table, out)
    click.echo(f"Wrote {out}: {len(table.entries)} entries, fixed_ms={table.fixed_ms:.3f} ({table.source})")
    for entry in table.entries.values():
        click.echo(f"  {entry['ms']:9.3f} ms  {describe_key(entry['key'])}")


@device.command("export-models")
@_arch_options
@click.option("--mode", type=click.Choice(list(SPACE_MODES)), default="lce", show_default=True,
              help="Search space whose group counts the models cover.")
@click.option("--space-genes", type=click.Choice(list(SPACE_GENES)), default="groups", show_default=True,
              help="Genes searched (model.space_genes); with width genes the models cover every block conv at "
                   "every width pair (a block_convs table).")
@click.option("--width-choice", "width_choices", multiple=True, type=float, default=DEFAULT_WIDTH_CHOICES,
              show_default=True, help="A block width multiplier of a width / joint space (repeatable).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory.")
@_friendly_errors
def device_export_models(module, input_size, channels, num_classes, width_multiplier, stem, mode, space_genes,
                         width_choices, out):
    """Convert the calibration models (genotypes covering the space) and write manifest.json."""
    from .deploy.calibration import export_calibration_models
    from .nn.space import SearchSpace

    arch = _architecture(module, input_size, channels, num_classes, width_multiplier, stem)
    space = SearchSpace(arch, mode, genes=space_genes, width_choices=width_choices)
    path = export_calibration_models(arch, out, allowed=None if space.has_widths else space.candidates, space=space,
                                     progress=lambda n, total, name: click.echo(f"[{n}/{total}] {name}", err=True))
    click.echo(f"Wrote {path}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
