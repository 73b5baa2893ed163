#!/usr/bin/env bash
# Build (or locate) LCE's lce_benchmark_model for 64-bit Android (arm64-v8a) with Bazel.
#
# Needs a checkout of https://github.com/larq/compute-engine at the converter's version (this repository
# pins larq-compute-engine==0.16.0: `git checkout v0.16.0`), Bazel/bazelisk, and the Android NDK + SDK.
# LCE's ./configure.py writes the Android workspace settings when LCE_SET_ANDROID_WORKSPACE=1; this script
# runs it with --configure, reading the paths from the environment (names as in LCE's release workflow):
#
#   ANDROID_SDK_HOME, ANDROID_NDK_HOME, ANDROID_API_LEVEL, ANDROID_NDK_API_LEVEL, ANDROID_BUILD_TOOLS_VERSION
#
# then builds LCE's target with LCE's config:
#
#   bazel build -c opt --config=android_arm64 --copt=-O3 //larq_compute_engine/tflite/benchmark:lce_benchmark_model
#
# LCE's GitHub releases also carry a prebuilt lce_benchmark_model_android_arm64: pass it with --locate.
#
# Usage:
#   export/android/build_benchmark.sh --lce-src ~/compute-engine --configure [--out PATH]
#   export/android/build_benchmark.sh --locate ~/Downloads/lce_benchmark_model_android_arm64
#
# Options:
#   --lce-src DIR     LCE checkout to build in
#   --configure       run LCE's ./configure.py for Android first (needs the environment variables above)
#   --bazel CMD       bazel executable (default: bazelisk if installed, else bazel)
#   --out PATH        where to copy the binary (default: export/bin/lce_benchmark_model_android_arm64)
#   --locate PATH     use an existing binary: copy it to --out
#   --dry-run         print the commands instead of running them
#   -h, --help        this help
set -euo pipefail

# shellcheck source=SCRIPTDIR/../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

LCE_SRC=""
CONFIGURE=0
BAZEL=""
OUT="${EXPORT_DIR}/bin/lce_benchmark_model_android_arm64"
LOCATE=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --lce-src) require_value "$1" "$#"; LCE_SRC=$2; shift 2 ;;
    --configure) CONFIGURE=1; shift ;;
    --bazel) require_value "$1" "$#"; BAZEL=$2; shift 2 ;;
    --out) require_value "$1" "$#"; OUT=$2; shift 2 ;;
    --locate) require_value "$1" "$#"; LOCATE=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

if [[ -n "${LOCATE}" ]]; then
  [[ -f "${LOCATE}" || "${DRY_RUN}" == 1 ]] || die "no binary at ${LOCATE}"
  install_binary "${LOCATE}" "${OUT}" android_arm64
  exit 0
fi

enter_lce_checkout "${LCE_SRC}"
if [[ ${CONFIGURE} == 1 ]]; then
  for var in ANDROID_SDK_HOME ANDROID_NDK_HOME; do
    [[ -n "${!var:-}" || "${DRY_RUN}" == 1 ]] || die "--configure needs ${var} in the environment"
  done
  run env LCE_SET_ANDROID_WORKSPACE=1 \
    "ANDROID_SDK_HOME=${ANDROID_SDK_HOME:-}" "ANDROID_NDK_HOME=${ANDROID_NDK_HOME:-}" \
    "ANDROID_API_LEVEL=${ANDROID_API_LEVEL:-30}" "ANDROID_NDK_API_LEVEL=${ANDROID_NDK_API_LEVEL:-30}" \
    "ANDROID_BUILD_TOOLS_VERSION=${ANDROID_BUILD_TOOLS_VERSION:-31.0.0}" ./configure.py
fi
run "${BAZEL}" build -c opt --config=android_arm64 --copt=-O3 "${LCE_BENCHMARK_TARGET}"
install_binary "${LCE_BENCHMARK_OUTPUT}" "${OUT}" "android_arm64"
