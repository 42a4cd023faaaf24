#!/bin/sh
# Memory-bounded execution benchmarks: large models encrypted end to end under a DRAM budget with a file
# tier, batch 2048, at secure parameters (the planner's smallest 128-bit N).
#   sh bench/large_models.sh [BUILD_DIR] [WORK_DIR] [CASES]
# CASES: space-separated names among mobilenet_v2_0.35_96 (the anchor case),
# mobilenet_v2_1.0_96, resnet50_64 (default: these three, in that order), and the
# test-suite models at secure parameters, mobilenet_v2_0.35_32 and resnet50_32.
# Without streaming across layers the tier must hold the live tensors: check
# `heinfer inspect MODEL --batch 2048 --resolution R` against the free space of WORK_DIR.
# Environment: BUDGET_<name> overrides a case's --dram-budget (e.g. BUDGET_resnet50_64=6G),
# THREADS (default 2), BATCH (default 2048), MASKS (--round-masks: per-window, the default,
# or per-sample, which runs with real packing), LIMB_WORDS (--limb-words: auto, the default, 32 or 64).
# Prints one JSON line per case (time, peak memory per tier, bytes moved, the anchor
# figures where the case has one) and keeps each run's log and profile in WORK_DIR.
set -eu
BUILD=${1:-build}
WORK=${2:-/tmp/heinfer-large-bench}
CASES=${3:-"mobilenet_v2_0.35_96 mobilenet_v2_1.0_96 resnet50_64"}
THREADS=${THREADS:-2}
BATCH=${BATCH:-2048}
MASKS=${MASKS:-per-window}
LIMB_WORDS=${LIMB_WORDS:-auto}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HEINFER=$(cd "$BUILD" && pwd)/heinfer
mkdir -p "$WORK"

for c in $CASES; do
  case $c in
    mobilenet_v2_0.35_96) arch=mobilenet_v2; width=0.35; res=96; budget=4G;
      anchor='{"peak_bytes": 71e9, "seconds": 665, "machine": "2x Xeon 8260L, 48 cores, DRAM only (Lloret-Talavera et al. 2021)"}' ;;
    mobilenet_v2_1.0_96) arch=mobilenet_v2; width=1.0; res=96; budget=8G;
      anchor='{"peak_bytes": 157e9, "seconds": 1645, "machine": "2x Xeon 8260L, 48 cores, DRAM only (Lloret-Talavera et al. 2021)"}' ;;
    resnet50_64) arch=resnet50; width=1.0; res=64; budget=8G; anchor=null ;;
    mobilenet_v2_0.35_32) arch=mobilenet_v2; width=0.35; res=32; budget=1G; anchor=null ;;
    resnet50_32) arch=resnet50; width=1.0; res=32; budget=2G; anchor=null ;;
    *) echo "unknown case $c" >&2; exit 2 ;;
  esac
  eval "budget=\${BUDGET_$(echo "$c" | tr . _):-$budget}"
  dir="$WORK/$c"
  mkdir -p "$dir/tier"
  if [ ! -f "$dir/model.onnx" ] || [ ! -f "$dir/x.npy" ]; then
    /usr/bin/python3 "$ROOT/tools/export_torchvision.py" --arch "$arch" --width "$width" --resolution "$res" \
      --threads "$THREADS" --out "$dir/model.onnx" --input-npy "$dir/x.npy" --count "$BATCH" > "$dir/export.log" 2>&1
  fi
  OMP_NUM_THREADS=$THREADS "$HEINFER" run "$dir/model.onnx" --input "$dir/x.npy" --output "$dir/y.npy" \
    --threads "$THREADS" --dram-budget "$budget" --pmem-dir "$dir/tier" --profile "$dir/profile.json" \
    --round-masks "$MASKS" --limb-words "$LIMB_WORDS" \
    > "$dir/run.log" 2>&1 || { echo "{\"case\": \"$c\", \"error\": \"see $dir/run.log\"}"; continue; }
  /usr/bin/python3 - "$dir/profile.json" "$c" "$budget" "$BATCH" "$anchor" "$MASKS" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
t = p["tiers"]
print(json.dumps({
    "case": sys.argv[2], "batch": int(sys.argv[4]), "params": p["params"], "round_masks": sys.argv[6],
    "limb_words": p["memory"]["limb_words"],
    "threads": p["threads"], "dram_budget": sys.argv[3], "seconds": round(p["seconds"], 1),
    "images_per_second": round(int(sys.argv[4]) / p["seconds"], 2),
    "rounds": p["rounds"], "peak_rss_anon_bytes": p["peak_rss_anon_bytes"],
    "dram": t["dram"], "pmem": t["pmem"],
    "client_traffic_bytes": p["bytes_to_client"] + p["bytes_to_server"],
    "anchor": json.loads(sys.argv[5])}))
PY
done
