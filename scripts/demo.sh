#!/usr/bin/env bash
# Installs, builds and runs the main job.
# Today: a CKKS demonstration (encrypt, compute, decrypt, error printed) and a plaintext
# run of the committed Fashion-MNIST models on the committed test slice. Encrypted
# inference replaces the plaintext run when it lands (issue 4).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
HEINFER="$BUILD_DIR/heinfer"

echo "== CKKS: encrypt, compute, decrypt =="
"$HEINFER" ckks-demo

for model in cryptonets cnn; do
  echo
  echo "== Fashion-MNIST $model, 64 test images, plaintext reference executor =="
  "$HEINFER" inspect "models/fmnist_$model.onnx"
  out=$(mktemp --suffix=.npy)
  "$HEINFER" run "models/fmnist_$model.onnx" --input models/fmnist_test64_images.npy \
    --labels models/fmnist_test64_labels.npy --output "$out" --plain
  rm -f "$out"
done
