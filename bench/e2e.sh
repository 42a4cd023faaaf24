#!/bin/sh
# End-to-end encrypted benchmark: CryptoNets and the CNN at full batch, 1 and 2 threads.
# Then the CNN with per-sample round masks (real packing), 2 threads.
# Usage: bench/e2e.sh [BUILD_DIR] [IMAGES.npy]   (JSON lines on stdout)
set -e
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
images=${2:-$root/models/fmnist_test64_images.npy}
for model in fmnist_cryptonets fmnist_cnn; do
  for t in 1 2; do
    "$build/e2e_bench" "$root/models/$model.onnx" "$images" --threads "$t" --batches 2
  done
done
"$build/e2e_bench" "$root/models/fmnist_cnn.onnx" "$images" --threads 2 --batches 2 --packing real --round-masks per-sample
