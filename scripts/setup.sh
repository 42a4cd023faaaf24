#!/usr/bin/env bash
# Installs every Debian package heinfer needs, then configures and builds it (Release).
# Idempotent: packages already present are not reinstalled, and the build is incremental.
# Environment: BUILD_DIR (default: build), JOBS (default: nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  cmake g++ make pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  libsodium-dev libssl-dev
  libprotobuf-dev protobuf-compiler libonnx-dev
  libgrpc++-dev protobuf-compiler-grpc openssl
  libcli11-dev nlohmann-json3-dev libomp-dev libmemkind-dev libopenblas-openmp-dev
  libopenmpi-dev openmpi-bin
  libonnx-testdata dataset-fashion-mnist
  python3-numpy python3-torch python3-torchvision python3-onnx python3-matplotlib
  pybind11-dev python3-dev python3-pytest python3-tqdm
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
