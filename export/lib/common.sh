# shellcheck shell=bash
# Shared helpers for the export/ scripts (sourced, not executed).
#
# Every command that touches a device, the network or the disk goes through `run` / `run_capture`, so
# `--dry-run` prints exactly the commands that would run (one per line, prefixed with "+ ", arguments
# shell-quoted) and runs nothing.

DRY_RUN=${DRY_RUN:-0}

EXPORT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "${EXPORT_DIR}/.." && pwd)"

log() { printf '%s\n' "$*" >&2; }

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Shell-quote a command line for display.
quote_cmd() {
  local out="" arg
  for arg in "$@"; do
    out+="$(printf '%q' "${arg}") "
  done
  printf '%s' "${out% }"
}

# run CMD ARGS...: run a command, or print it with --dry-run.
run() {
  if [[ "${DRY_RUN}" == 1 ]]; then
    printf '+ %s\n' "$(quote_cmd "$@")"
  else
    "$@"
  fi
}

# run_capture FILE CMD ARGS...: run a command with stdout+stderr saved to FILE (and echoed); fail loudly.
run_capture() {
  local file=$1
  shift
  if [[ "${DRY_RUN}" == 1 ]]; then
    printf '+ %s > %s 2>&1\n' "$(quote_cmd "$@")" "$(printf '%q' "${file}")"
    return 0
  fi
  mkdir -p "$(dirname "${file}")"
  local status=0
  "$@" >"${file}" 2>&1 || status=$?
  if [[ ${status} -ne 0 ]]; then
    log "---- last lines of ${file} ----"
    tail -n 20 "${file}" >&2 || true
    if grep -q "Grouped binary convolutions are not supported" "${file}" 2>/dev/null; then
      log "hint: grouped LceBconv2d needs the indirect BGEMM kernel (--use_indirect_bgemm=true)."
    fi
    die "command failed (exit ${status}): $(quote_cmd "$@")"
  fi
  grep -E "Inference timings in us" "${file}" >&2 || true
}

require_value() {
  # require_value OPTION "$#": options taking a value must have one.
  [[ $2 -ge 2 ]] || die "$1 needs a value"
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# Options shared by the device run scripts (defaults; a script sets BINARY and DEVICE before parsing).
THREADS=1
NUM_RUNS=50
WARMUP_RUNS=5
XNNPACK=false
TASKSET=""
OUT_DIR=""
MANIFEST=""
TABLE=""
PARSE=1
ARGS=()

# parse_run_options SCRIPT_OPTION_HANDLER "$@": parse the command line into the shared variables above and
# ARGS (models). SCRIPT_OPTION_HANDLER is a function called as `handler "$@"` for every other option; it
# sets CONSUMED to the number of words it used (0: unknown option).
parse_run_options() {
  local handler=$1
  shift
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --binary) require_value "$1" "$#"; BINARY=$2; shift 2 ;;
      --threads) require_value "$1" "$#"; THREADS=$2; shift 2 ;;
      --num-runs) require_value "$1" "$#"; NUM_RUNS=$2; shift 2 ;;
      --warmup-runs) require_value "$1" "$#"; WARMUP_RUNS=$2; shift 2 ;;
      --xnnpack) require_value "$1" "$#"; XNNPACK=$2; shift 2 ;;
      --taskset) require_value "$1" "$#"; TASKSET=$2; shift 2 ;;
      --out) require_value "$1" "$#"; OUT_DIR=$2; shift 2 ;;
      --device) require_value "$1" "$#"; DEVICE=$2; shift 2 ;;
      --manifest) require_value "$1" "$#"; MANIFEST=$2; shift 2 ;;
      --table) require_value "$1" "$#"; TABLE=$2; shift 2 ;;
      --no-parse) PARSE=0; shift ;;
      --dry-run) DRY_RUN=1; shift ;;
      -h | --help) usage; exit 0 ;;
      --) shift; ARGS+=("$@"); break ;;
      -*)
        CONSUMED=0
        "${handler}" "$@"
        [[ ${CONSUMED} -gt 0 ]] || die "unknown option: $1 (see --help)"
        shift "${CONSUMED}"
        ;;
      *) ARGS+=("$1"); shift ;;
    esac
  done
}

# check_run_options BUILD_SCRIPT: validate the shared options, collect MODELS, fill OUT_DIR / TABLE /
# MANIFEST defaults, and check the benchmark binary (BUILD_SCRIPT is named in the error).
check_run_options() {
  is_uint "${THREADS}" && [[ ${THREADS} -ge 1 ]] || die "--threads must be a positive integer, got ${THREADS}"
  is_uint "${NUM_RUNS}" || die "--num-runs must be an integer, got ${NUM_RUNS}"
  is_uint "${WARMUP_RUNS}" || die "--warmup-runs must be an integer, got ${WARMUP_RUNS}"
  [[ "${XNNPACK}" == true || "${XNNPACK}" == false ]] || die "--xnnpack must be true or false"
  [[ -z "${TASKSET}" || "${TASKSET}" =~ ^[0-9A-Fa-f]+$ ]] || die "--taskset takes a hex CPU mask, got ${TASKSET}"
  [[ "${DEVICE}" =~ ^[A-Za-z0-9._-]+$ ]] || die "--device must be a simple name, got ${DEVICE}"
  collect_models "${ARGS[@]+"${ARGS[@]}"}"
  if [[ ! -f "${BINARY}" ]]; then
    [[ "${DRY_RUN}" == 1 ]] || die "lce_benchmark_model not found at ${BINARY}: build it with $1, or pass --binary / set LCE_BENCHMARK_MODEL"
    log "note: ${BINARY} does not exist (dry run continues)"
  fi
  OUT_DIR="${OUT_DIR:-runs/device/${DEVICE}}"
  TABLE="${TABLE:-${OUT_DIR}/latency_table.json}"
  [[ -n "${MANIFEST}" ]] || MANIFEST="$(default_manifest "${MODELS[0]}")"
}

# LCE's benchmark target and where Bazel leaves it (both build scripts).
LCE_BENCHMARK_TARGET="//larq_compute_engine/tflite/benchmark:lce_benchmark_model"
LCE_BENCHMARK_OUTPUT="bazel-bin/larq_compute_engine/tflite/benchmark/lce_benchmark_model"

# install_binary SRC OUT [LABEL]: copy an lce_benchmark_model binary to OUT and make it executable.
install_binary() {
  run mkdir -p "$(dirname "$2")"
  run cp "$1" "$2"
  run chmod +x "$2"
  log "lce_benchmark_model${3:+ ($3)}: $2"
}

# enter_lce_checkout LCE_SRC: check that LCE_SRC is a larq/compute-engine checkout, cd into it, and set
# BAZEL to bazelisk (else bazel) unless the caller chose one.
enter_lce_checkout() {
  [[ -n "$1" ]] || die "pass --lce-src DIR (an LCE checkout) or --locate PATH (a prebuilt binary)"
  if [[ "${DRY_RUN}" != 1 ]]; then
    [[ -f "$1/larq_compute_engine/tflite/benchmark/BUILD" ]] \
      || die "$1 is not a larq/compute-engine checkout (no larq_compute_engine/tflite/benchmark/BUILD)"
  fi
  if [[ -z "${BAZEL}" ]]; then
    if command -v bazelisk >/dev/null 2>&1; then BAZEL=bazelisk; else BAZEL=bazel; fi
  fi
  if [[ "${DRY_RUN}" == 1 ]]; then
    printf '+ %s\n' "$(quote_cmd cd "$1")"
  else
    cd "$1" || die "cannot enter $1"
  fi
}

# The `mobisearch` command for the parser (sets the MOBISEARCH_CMD array): $MOBISEARCH (a command line, split
# on spaces), else the repository's .venv/bin/mobisearch, else `mobisearch` on PATH, else
# `${PYTHON:-python3} -m larq_mobisearch.cli` (the same CLI without the installed script).
find_mobisearch() {
  if [[ -n "${MOBISEARCH:-}" ]]; then
    read -r -a MOBISEARCH_CMD <<<"${MOBISEARCH}"
  elif [[ -x "${REPO_DIR}/.venv/bin/mobisearch" ]]; then
    MOBISEARCH_CMD=("${REPO_DIR}/.venv/bin/mobisearch")
  elif command -v mobisearch >/dev/null 2>&1; then
    MOBISEARCH_CMD=(mobisearch)
  else
    MOBISEARCH_CMD=("${PYTHON:-python3}" -m larq_mobisearch.cli)
  fi
}

# Expand model arguments (files or directories of *.tflite) into the MODELS array.
collect_models() {
  MODELS=()
  local item f
  for item in "$@"; do
    if [[ -d "${item}" ]]; then
      for f in "${item%/}"/*.tflite; do
        [[ -e "${f}" ]] && MODELS+=("${f}")
      done
    elif [[ -f "${item}" || "${DRY_RUN}" == 1 ]]; then
      [[ "${item}" == *.tflite ]] || die "not a .tflite file: ${item}"
      MODELS+=("${item}")
    else
      die "no such model file or directory: ${item}"
    fi
  done
  [[ ${#MODELS[@]} -gt 0 ]] || die "no .tflite models given (pass files or a directory)"
}

# The lce_benchmark_model flags used for every run. Grouped binary convolutions (LceBconv2d with groups > 1)
# only run on LCE's indirect BGEMM kernel: without --use_indirect_bgemm=true they fail at Prepare with
# "Grouped binary convolutions are not supported with this kernel."
benchmark_flags() {
  # benchmark_flags REMOTE_MODEL THREADS NUM_RUNS WARMUP_RUNS XNNPACK  (sets the BENCH_FLAGS array)
  # shellcheck disable=SC2034  # read by the calling script
  BENCH_FLAGS=(
    "--graph=$1"
    "--num_threads=$2"
    "--use_indirect_bgemm=true"
    "--enable_op_profiling=true"
    "--num_runs=$3"
    "--warmup_runs=$4"
    "--use_xnnpack=$5"
  )
}

# After the runs: parse every output, and build a device latency table when a manifest is known.
parse_outputs() {
  # parse_outputs OUT_DIR DEVICE MANIFEST TABLE OUTPUT_FILES...
  local out_dir=$1 device=$2 manifest=$3 table=$4
  shift 4
  find_mobisearch
  if [[ -n "${manifest}" ]]; then
    # `table` prints the summary of every output of the manifest, then writes the device latency table.
    run env "PYTHONPATH=${REPO_DIR}${PYTHONPATH:+:${PYTHONPATH}}" "${MOBISEARCH_CMD[@]}" device table \
      --manifest "${manifest}" --outputs "${out_dir}" --device "${device}" --out "${table}"
  else
    run env "PYTHONPATH=${REPO_DIR}${PYTHONPATH:+:${PYTHONPATH}}" "${MOBISEARCH_CMD[@]}" device parse "$@"
  fi
}

# Manifest next to the models (written by `mobisearch device export-models`), if any.
default_manifest() {
  local dir
  dir="$(dirname "$1")"
  if [[ -f "${dir}/manifest.json" ]]; then
    printf '%s' "${dir}/manifest.json"
  fi
}
