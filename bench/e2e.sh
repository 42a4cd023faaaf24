#!/bin/sh
# End-to-end encrypted benchmark: CryptoNets and the CNN at full batch, 1 and 2 threads.
# Then the CNN with per-sample round masks (real packing), 2 threads; with E2E_PRIVATE=1
# also the CNN in the model-private mode (one full batch, about half an hour).
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
# The model-private mode (Relu and MaxPool on the server, blind refreshes): about half an
# hour per full batch of the CNN on two cores, so only with E2E_PRIVATE=1. One batch of
# 8,192 images (the capacity at N = 16384, real packing), streamed under a DRAM budget
# with a file tier in $E2E_TIER (default /tmp), checked against the plaintext executor.
if [ "${E2E_PRIVATE:-0}" = 1 ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  tier=${E2E_TIER:-/tmp}
  /usr/bin/python3 -c "import numpy as np, sys; x = np.load(sys.argv[1]); np.save(sys.argv[2], x[np.arange(8192) % len(x)])" \
    "$images" "$tmp/x.npy"
  "$build/heinfer" run "$root/models/fmnist_cnn.onnx" --input "$tmp/x.npy" --output "$tmp/y.npy" --privacy model \
    --batch 8192 --check --threads 2 --dram-budget 8G --pmem-dir "$tier" > "$tmp/run.log" 2>&1
  awk '
    /^total / { s = $2; ips = $4 }
    /^client / { rounds = $6 }
    /^traffic / { up = $3 " " $4; down = $6 " " $7; gsub(/,/, "", up) }
    /^peak memory / { peak = $3 " " $4 }
    /^check / { agree = $6 }
    END { printf "{\"model\":\"fmnist_cnn\",\"privacy\":\"model\",\"batch\":8192,\"threads\":2,\"latency_s\":%s,\"images_per_s\":%s,\"rounds\":%s,\"to_server\":\"%s\",\"to_client\":\"%s\",\"peak_rss\":\"%s\",\"top1_agreement\":\"%s\"}\n", s, ips, rounds, up, down, peak, agree }
  ' "$tmp/run.log"
fi
