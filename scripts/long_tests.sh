#!/usr/bin/env bash
# Installs, builds and runs the long tests (CTest label `long`: MobileNetV2 and ResNet-50
# at 224x224 encrypted, replayed against the plan), one at a time; hours on 2 cores.
# Extra arguments go to ctest (e.g. -R mobilenet_v2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
cd "$BUILD_DIR"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --output-on-failure -L long "$@"
