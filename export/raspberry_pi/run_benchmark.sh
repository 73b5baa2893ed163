#!/usr/bin/env bash
# Benchmark converted models on a Raspberry Pi with LCE's lce_benchmark_model, over ssh/scp.
#
# For each model: copy it to the Pi, run
#   lce_benchmark_model --graph=... --num_threads=N --use_indirect_bgemm=true --enable_op_profiling=true ...
# save the output to OUT_DIR/<model name>.txt, then parse the outputs (mobisearch device parse) and,
# if a manifest.json from `mobisearch device export-models` is next to the models, write a
# device latency table for `mobisearch search --latency-table`.
#
# Usage:
#   export/raspberry_pi/run_benchmark.sh --host pi@raspberrypi.local [options] MODEL.tflite|DIR ...
#
# Options:
#   --host DEST         ssh destination (user@host), required
#   --binary PATH       lce_benchmark_model built for the Pi (default: $LCE_BENCHMARK_MODEL, else
#                       export/bin/lce_benchmark_model_aarch64 written by build_benchmark.sh)
#   --remote-dir DIR    working directory on the Pi (default: /tmp/mobisearch)
#   --threads N         --num_threads for the runs (default: 1; use the same value as the search)
#   --num-runs N        timed runs (default: 50); --warmup-runs N (default: 5)
#   --xnnpack BOOL      --use_xnnpack (default: false, so every float op is timed as its own node)
#   --taskset MASK      pin the benchmark to these CPUs (runs `taskset MASK ...` on the Pi)
#   --out DIR           local directory for the outputs (default: runs/device/<device>)
#   --device NAME       device name for the table (default: rpi)
#   --manifest PATH     calibration manifest (default: manifest.json next to the first model, if any)
#   --table PATH        table to write (default: OUT/latency_table.json)
#   --ssh-option OPT    extra `-o OPT` for ssh and scp (repeatable), e.g. --ssh-option Port=2222
#   --no-parse          do not run the parser
#   --dry-run           print the commands instead of running them
#   -h, --help          this help
set -euo pipefail

# shellcheck source=SCRIPTDIR/../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

HOST=""
BINARY="${LCE_BENCHMARK_MODEL:-${EXPORT_DIR}/bin/lce_benchmark_model_aarch64}"
REMOTE_DIR="/tmp/mobisearch"
DEVICE="rpi"
SSH_OPTS=()

pi_option() {
  case "$1" in
    --host) require_value "$1" "$#"; HOST=$2; CONSUMED=2 ;;
    --remote-dir) require_value "$1" "$#"; REMOTE_DIR=$2; CONSUMED=2 ;;
    --ssh-option) require_value "$1" "$#"; SSH_OPTS+=(-o "$2"); CONSUMED=2 ;;
  esac
}
parse_run_options pi_option "$@"

[[ -n "${HOST}" ]] || die "--host user@host is required (see --help)"
[[ "${REMOTE_DIR}" =~ ^[A-Za-z0-9._/~-]+$ ]] || die "--remote-dir must not contain spaces or shell characters"
check_run_options export/raspberry_pi/build_benchmark.sh

REMOTE_BIN="${REMOTE_DIR}/lce_benchmark_model"
run ssh "${SSH_OPTS[@]+"${SSH_OPTS[@]}"}" "${HOST}" "mkdir -p ${REMOTE_DIR}"
run scp "${SSH_OPTS[@]+"${SSH_OPTS[@]}"}" "${BINARY}" "${HOST}:${REMOTE_BIN}"
run ssh "${SSH_OPTS[@]+"${SSH_OPTS[@]}"}" "${HOST}" "chmod +x ${REMOTE_BIN}"
[[ "${DRY_RUN}" == 1 ]] || mkdir -p "${OUT_DIR}"

OUTPUTS=()
for model in "${MODELS[@]}"; do
  name="$(basename "${model}")"
  [[ "${name}" =~ ^[A-Za-z0-9._-]+$ ]] || die "model file names must not contain spaces or shell characters: ${name}"
  remote_model="${REMOTE_DIR}/${name}"
  output="${OUT_DIR}/${name%.tflite}.txt"
  run scp "${SSH_OPTS[@]+"${SSH_OPTS[@]}"}" "${model}" "${HOST}:${remote_model}"
  benchmark_flags "${remote_model}" "${THREADS}" "${NUM_RUNS}" "${WARMUP_RUNS}" "${XNNPACK}"
  remote_cmd=("${REMOTE_BIN}" "${BENCH_FLAGS[@]}")
  [[ -z "${TASKSET}" ]] || remote_cmd=(taskset "${TASKSET}" "${remote_cmd[@]}")
  log "benchmarking ${name} on ${HOST} (${THREADS} thread(s)) -> ${output}"
  # ssh joins its arguments into one remote shell command: quote them for that shell.
  run_capture "${output}" ssh "${SSH_OPTS[@]+"${SSH_OPTS[@]}"}" "${HOST}" "$(quote_cmd "${remote_cmd[@]}")"
  OUTPUTS+=("${output}")
done

if [[ ${PARSE} == 1 ]]; then
  parse_outputs "${OUT_DIR}" "${DEVICE}" "${MANIFEST}" "${TABLE}" "${OUTPUTS[@]}"
fi
log "outputs in ${OUT_DIR}"
