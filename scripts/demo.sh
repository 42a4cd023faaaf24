#!/usr/bin/env bash
# Installs, builds and runs the main job: encrypted inference (embedded client and server)
# of the committed Fashion-MNIST models on a committed slice of 64 real test images, with
# the summary and a check against the plaintext reference executor. A CKKS round trip
# with its error comes first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
HEINFER="$BUILD_DIR/heinfer"
out_dir=$(mktemp -d)
trap 'rm -rf "$out_dir"' EXIT

echo "== CKKS: encrypt, compute, decrypt =="
"$HEINFER" ckks-demo

for model in cryptonets cnn; do
  echo
  echo "== Fashion-MNIST $model: encrypted inference on 64 test images =="
  "$HEINFER" inspect "models/fmnist_$model.onnx"
  "$HEINFER" run "models/fmnist_$model.onnx" --input models/fmnist_test64_images.npy \
    --labels models/fmnist_test64_labels.npy --output "$out_dir/fmnist_${model}_logits.npy" --check
done
