#!/usr/bin/env bash
# Benchmark converted models on an Android phone with LCE's lce_benchmark_model, over adb.
#
# For each model: adb push it to the phone, run
#   lce_benchmark_model --graph=... --num_threads=N --use_indirect_bgemm=true --enable_op_profiling=true ...
# with `adb shell`, save the output to OUT_DIR/<model name>.txt, then parse the outputs
# (mobisearch device parse) and, if a manifest.json from
# `mobisearch device export-models` is next to the models, write a device latency table for
# `mobisearch search --latency-table`.
#
# Usage:
#   export/android/run_benchmark.sh [options] MODEL.tflite|DIR ...
#
# Options:
#   --serial SERIAL     adb device serial (adb -s); default: the only connected device
#   --binary PATH       lce_benchmark_model built for android_arm64 (default: $LCE_BENCHMARK_MODEL, else
#                       export/bin/lce_benchmark_model_android_arm64 written by build_benchmark.sh)
#   --device-dir DIR    working directory on the phone (default: /data/local/tmp/mobisearch)
#   --threads N         --num_threads for the runs (default: 1; use the same value as the search)
#   --num-runs N        timed runs (default: 50); --warmup-runs N (default: 5)
#   --xnnpack BOOL      --use_xnnpack (default: false, so every float op is timed as its own node)
#   --taskset MASK      pin to these CPUs, e.g. f0 for the big cores of many 4+4 SoCs (`taskset MASK ...`)
#   --out DIR           local directory for the outputs (default: runs/device/<device>)
#   --device NAME       device name for the table (default: android)
#   --manifest PATH     calibration manifest (default: manifest.json next to the first model, if any)
#   --table PATH        table to write (default: OUT/latency_table.json)
#   --no-parse          do not run the parser
#   --dry-run           print the commands instead of running them
#   -h, --help          this help
#
# Keep the phone plugged in, screen on and cool; big.LITTLE phones vary a lot between core types, so pin
# with --taskset for repeatable numbers.
set -euo pipefail

# shellcheck source=SCRIPTDIR/../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

SERIAL="${ANDROID_SERIAL:-}"
BINARY="${LCE_BENCHMARK_MODEL:-${EXPORT_DIR}/bin/lce_benchmark_model_android_arm64}"
DEVICE_DIR="/data/local/tmp/mobisearch"
DEVICE="android"

android_option() {
  case "$1" in
    --serial) require_value "$1" "$#"; SERIAL=$2; CONSUMED=2 ;;
    --device-dir) require_value "$1" "$#"; DEVICE_DIR=$2; CONSUMED=2 ;;
  esac
}
parse_run_options android_option "$@"

[[ "${DEVICE_DIR}" =~ ^/[A-Za-z0-9._/-]+$ ]] || die "--device-dir must be an absolute path without spaces"
check_run_options export/android/build_benchmark.sh

ADB=(adb)
[[ -z "${SERIAL}" ]] || ADB+=(-s "${SERIAL}")
DEVICE_BIN="${DEVICE_DIR}/lce_benchmark_model"

run "${ADB[@]}" shell mkdir -p "${DEVICE_DIR}"
run "${ADB[@]}" push "${BINARY}" "${DEVICE_BIN}"
run "${ADB[@]}" shell chmod 755 "${DEVICE_BIN}"
[[ "${DRY_RUN}" == 1 ]] || mkdir -p "${OUT_DIR}"

OUTPUTS=()
for model in "${MODELS[@]}"; do
  name="$(basename "${model}")"
  [[ "${name}" =~ ^[A-Za-z0-9._-]+$ ]] || die "model file names must not contain spaces or shell characters: ${name}"
  device_model="${DEVICE_DIR}/${name}"
  output="${OUT_DIR}/${name%.tflite}.txt"
  run "${ADB[@]}" push "${model}" "${device_model}"
  benchmark_flags "${device_model}" "${THREADS}" "${NUM_RUNS}" "${WARMUP_RUNS}" "${XNNPACK}"
  cmd=("${DEVICE_BIN}" "${BENCH_FLAGS[@]}")
  [[ -z "${TASKSET}" ]] || cmd=(taskset "${TASKSET}" "${cmd[@]}")
  log "benchmarking ${name} on ${SERIAL:-the adb device} (${THREADS} thread(s)) -> ${output}"
  run_capture "${output}" "${ADB[@]}" shell "${cmd[@]}"
  OUTPUTS+=("${output}")
done

if [[ ${PARSE} == 1 ]]; then
  parse_outputs "${OUT_DIR}" "${DEVICE}" "${MANIFEST}" "${TABLE}" "${OUTPUTS[@]}"
fi
log "outputs in ${OUT_DIR}"
