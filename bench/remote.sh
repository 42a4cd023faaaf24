#!/bin/sh
# Two-party benchmark (docs/performance.md, "Two-party deployment (gRPC + TLS)"): for
# CryptoNets and the CNN, embedded `heinfer run` against `heinfer serve` + `heinfer
# client` over TLS on loopback (certificates generated with openssl in a temporary
# directory). Prints JSON lines: per layer and totals, {"mode": "embedded"|"remote", ...}.
# Usage: bench/remote.sh [BUILD_DIR] [IMAGES.npy]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
images=${2:-$root/models/fmnist_test64_images.npy}
heinfer=$build/heinfer
tmp=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
(
  cd "$tmp"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=ca
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile ext.cnf
) >/dev/null 2>&1
for model in fmnist_cryptonets fmnist_cnn; do
  # Embedded: per-layer lines of `heinfer run` ("  NAME OP SECONDS s ...") and the traffic line.
  "$heinfer" run "$root/models/$model.onnx" --input "$images" --output "$tmp/local.npy" --quiet > "$tmp/run.log"
  awk -v m="$model" '
    /^per layer:/ { on = 1; next }
    on && /^  [^ ]+ +[^ ]+ +[0-9.]+ s / { printf "{\"mode\":\"embedded\",\"model\":\"%s\",\"layer\":\"%s\",\"op\":\"%s\",\"seconds\":%s}\n", m, $1, $2, $3; next }
    on && !/^  / { on = 0 }
    /^total / { printf "{\"mode\":\"embedded\",\"model\":\"%s\",\"layer\":\"total\",\"seconds\":%s}\n", m, $2 }
    /^traffic / { printf "{\"mode\":\"embedded\",\"model\":\"%s\",\"layer\":\"traffic\",\"text\":\"%s\"}\n", m, substr($0, 18) }
    /^client / { printf "{\"mode\":\"embedded\",\"model\":\"%s\",\"layer\":\"rounds\",\"rounds\":%s}\n", m, $6 }
  ' "$tmp/run.log"
  # Remote: a fresh server per model, one client run.
  "$heinfer" serve --model "m=$root/models/$model.onnx" --calibration "m=$images" --listen 127.0.0.1:0 \
    --privacy activations --tls-cert "$tmp/server.pem" --tls-key "$tmp/server.key" > "$tmp/server.log" 2>&1 &
  server_pid=$!
  port=
  for _ in $(seq 1 600); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/server.log")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$tmp/server.log" >&2; exit 1; }
  "$heinfer" client --server "localhost:$port" --model m --input "$images" --output "$tmp/remote.npy" \
    --tls-ca "$tmp/ca.pem" --quiet --json | sed "s/^{/{\"mode\":\"remote\",\"file\":\"$model\",/"
  kill "$server_pid"
  wait "$server_pid" || true
  server_pid=
done
