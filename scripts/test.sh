#!/usr/bin/env bash
# Installs, builds and runs the whole test suite (CTest over the GoogleTest binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
cd "$BUILD_DIR"
# The long tests (label `long`: the 224x224 models, hours) run in scripts/long_tests.sh.
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --output-on-failure -j "${JOBS:-$(nproc)}" -LE long "$@"
