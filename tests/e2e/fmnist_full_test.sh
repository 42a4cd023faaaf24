#!/usr/bin/env bash
# Acceptance on real data: the whole Fashion-MNIST test set (10,000 images) through
# both committed models, encrypted, must agree with the plaintext executor on >= 99.9% of
# images (top-1), and the max |logit error| is printed.
# Usage: fmnist_full_test.sh HEINFER_BINARY SOURCE_DIR
set -euo pipefail
heinfer=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 "$src/tools/prepare_fashion_mnist.py" --out "$work" >/dev/null
status=0
for model in cryptonets cnn; do
  log="$work/$model.log"
  "$heinfer" run "$src/models/fmnist_$model.onnx" --input "$work/fmnist_test_images.npy" \
    --labels "$work/fmnist_test_labels.npy" --output "$work/$model.npy" --check \
    >"$log" 2>&1 || { cat "$log"; echo "FAIL: $model: heinfer run exited non-zero"; status=1; continue; }
  line=$(grep -E 'top-1 agreement with plaintext' "$log" || true)
  acc=$(grep -E '^top-1 accuracy' "$log" || true)
  echo "$model: $acc | $line"
  if [[ ! $line =~ \(([0-9]+)/([0-9]+)\) ]]; then
    cat "$log"; echo "FAIL: $model: no agreement line in the summary"; status=1; continue
  fi
  agree=${BASH_REMATCH[1]}
  total=${BASH_REMATCH[2]}
  if (( total != 10000 || agree * 1000 < total * 999 )); then
    echo "FAIL: $model: agreement $agree/$total is below 99.9% of 10000 images"; status=1
  fi
done
exit $status
