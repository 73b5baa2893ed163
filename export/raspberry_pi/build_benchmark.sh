#!/usr/bin/env bash
# Build (or locate) LCE's lce_benchmark_model for a Raspberry Pi by cross-compiling with Bazel.
#
# Needs a checkout of https://github.com/larq/compute-engine at the version of the converter that made the
# models (this repository pins larq-compute-engine==0.16.0: `git checkout v0.16.0`), with its TensorFlow
# submodule, and Bazel (bazelisk picks the version in the checkout's .bazelversion). Bazel target and
# configs are LCE's own (see its .bazelrc and release workflow):
#
#   bazel build -c opt --config=aarch64 --copt=-O3 //larq_compute_engine/tflite/benchmark:lce_benchmark_model
#
# --config=aarch64 is for 64-bit Raspberry Pi OS (Pi 3/4/5); --config=rpi3 for 32-bit (armv7 + NEON).
# LCE also publishes prebuilt binaries on its GitHub releases (lce_benchmark_model_aarch64 / _aarch32):
# pass one with --locate PATH instead of building.
#
# Usage:
#   export/raspberry_pi/build_benchmark.sh --lce-src ~/compute-engine [--config aarch64|rpi3] [--out PATH]
#   export/raspberry_pi/build_benchmark.sh --locate ~/Downloads/lce_benchmark_model_aarch64
#
# Options:
#   --lce-src DIR     LCE checkout to build in
#   --config NAME     aarch64 (default) or rpi3
#   --bazel CMD       bazel executable (default: bazelisk if installed, else bazel)
#   --out PATH        where to copy the binary (default: export/bin/lce_benchmark_model_<config>)
#   --locate PATH     use an existing binary: check it and copy it to --out
#   --dry-run         print the commands instead of running them
#   -h, --help        this help
set -euo pipefail

# shellcheck source=SCRIPTDIR/../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

LCE_SRC=""
CONFIG="aarch64"
BAZEL=""
OUT=""
LOCATE=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --lce-src) require_value "$1" "$#"; LCE_SRC=$2; shift 2 ;;
    --config) require_value "$1" "$#"; CONFIG=$2; shift 2 ;;
    --bazel) require_value "$1" "$#"; BAZEL=$2; shift 2 ;;
    --out) require_value "$1" "$#"; OUT=$2; shift 2 ;;
    --locate) require_value "$1" "$#"; LOCATE=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

case "${CONFIG}" in
  aarch64 | rpi3) ;;
  *) die "--config must be aarch64 (64-bit Pi OS) or rpi3 (32-bit), got ${CONFIG}" ;;
esac
OUT="${OUT:-${EXPORT_DIR}/bin/lce_benchmark_model_${CONFIG}}"

if [[ -n "${LOCATE}" ]]; then
  [[ -f "${LOCATE}" || "${DRY_RUN}" == 1 ]] || die "no binary at ${LOCATE}"
  install_binary "${LOCATE}" "${OUT}"
  exit 0
fi

enter_lce_checkout "${LCE_SRC}"
run "${BAZEL}" build -c opt "--config=${CONFIG}" --copt=-O3 "${LCE_BENCHMARK_TARGET}"
install_binary "${LCE_BENCHMARK_OUTPUT}" "${OUT}" "${CONFIG}"
