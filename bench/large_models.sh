#!/bin/sh
# Memory-bounded execution benchmarks: large models encrypted end to end under a DRAM budget with a file
# tier, batch 2048, at secure parameters (the planner's smallest 128-bit N).
#   sh bench/large_models.sh [BUILD_DIR] [WORK_DIR] [CASES]
# CASES: space-separated names among mobilenet_v2_0.35_96 (the anchor case),
# mobilenet_v2_1.0_96, resnet50_64 (default: these three, in that order), and the
# test-suite models at secure parameters, mobilenet_v2_0.35_32 and resnet50_32, and the
# 224x224 cases resnet50_224 and mobilenet_v2_1.4_224 (hours per batch: resumable, below).
# Without streaming across layers the tier must hold the live tensors: check
# `heinfer inspect MODEL --batch 2048 --resolution R` against the free space of WORK_DIR.
# Environment: BUDGET_<name> overrides a case's --dram-budget (e.g. BUDGET_resnet50_64=6G),
# THREADS (default 2), BATCH (default 2048), MASKS (--round-masks: per-window, the default,
# or per-sample, which runs with real packing), LIMB_WORDS (--limb-words: auto, the default, 32 or 64),
# SEGMENT_CUTS=on cuts streamed segments for the budget (`run --segment-cuts`, docs/memory.md),
# CHECKPOINT (seconds between checkpoints; default 1800 for the 224x224 cases, 0 = none for
# the others). With checkpoints a case is resumable: run the script again after a crash, a
# reboot or the end of a session and it continues from WORK_DIR/<case>/ck; the JSON line
# then adds the earlier attempts' time (up to the checkpoint), peaks and tier bytes.
# Prints one JSON line per case (time, peak memory per tier, bytes moved, top-1 agreement
# with the plaintext executor on every image and the largest logit error (--check: the
# calibration's plaintext run, no extra pass), the anchor figures where the case has one) and keeps each run's log and profile in WORK_DIR.
set -eu
BUILD=${1:-build}
WORK=${2:-/tmp/heinfer-large-bench}
CASES=${3:-"mobilenet_v2_0.35_96 mobilenet_v2_1.0_96 resnet50_64"}
THREADS=${THREADS:-2}
BATCH=${BATCH:-2048}
MASKS=${MASKS:-per-window}
SEGMENT_CUTS=${SEGMENT_CUTS:-off}
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
    resnet50_224) arch=resnet50; width=1.0; res=224; budget=10G;
      anchor='{"peak_bytes": 840e9, "seconds": 226800, "machine": "2x Xeon 8260L, 48 cores, DRAM + Optane PMEM (Lloret-Talavera et al. 2021)"}' ;;
    mobilenet_v2_1.4_224) arch=mobilenet_v2; width=1.4; res=224; budget=10G;
      anchor='{"peak_bytes": 1.2e12, "seconds": null, "machine": "2x Xeon 8260L, 48 cores, DRAM + Optane PMEM (Lloret-Talavera et al. 2021)"}' ;;
    *) echo "unknown case $c" >&2; exit 2 ;;
  esac
  eval "budget=\${BUDGET_$(echo "$c" | tr . _):-$budget}"
  dir="$WORK/$c"
  mkdir -p "$dir/tier"
  if [ ! -f "$dir/model.onnx" ] || [ ! -f "$dir/x.npy" ]; then
    /usr/bin/python3 "$ROOT/tools/export_torchvision.py" --arch "$arch" --width "$width" --resolution "$res" \
      --threads "$THREADS" --out "$dir/model.onnx" --input-npy "$dir/x.npy" --count "$BATCH" > "$dir/export.log" 2>&1
  fi
  case $res in 224) interval=${CHECKPOINT:-1800} ;; *) interval=${CHECKPOINT:-0} ;; esac
  resume=""
  if [ "$interval" != 0 ]; then
    if [ -f "$dir/ck/checkpoint.json" ]; then resume="--resume $dir/ck"; else resume="--checkpoint $dir/ck"; fi
    resume="$resume --checkpoint-interval $interval"
  fi
  # shellcheck disable=SC2086 # $resume is several options
  OMP_NUM_THREADS=$THREADS "$HEINFER" run "$dir/model.onnx" --input "$dir/x.npy" --output "$dir/y.npy" \
    --threads "$THREADS" --dram-budget "$budget" --pmem-dir "$dir/tier" --profile "$dir/profile.json" \
    --round-masks "$MASKS" --limb-words "$LIMB_WORDS" --segment-cuts "$SEGMENT_CUTS" --check $resume \
    >> "$dir/run.log" 2>&1 || { echo "{\"case\": \"$c\", \"error\": \"see $dir/run.log (with checkpoints: run again to resume)\"}"; continue; }
  /usr/bin/python3 - "$dir/profile.json" "$c" "$budget" "$BATCH" "$anchor" "$MASKS" "$dir/run.log" <<'PY'
import json, re, sys
p = json.load(open(sys.argv[1]))
t = p["tiers"]
# A resumed run: the profile covers the last attempt; the earlier ones (up to the
# checkpoint it resumed from) add their time, peaks and tier bytes.
e = p.get("earlier_attempts")
if e:
    p["seconds"] += e["seconds"]
    p["peak_rss_anon_bytes"] = max(p["peak_rss_anon_bytes"], e["rss_anon_peak"])
    t["dram"]["peak_bytes"] = max(t["dram"]["peak_bytes"], e["dram_peak"])
    t["pmem"]["peak_bytes"] = max(t["pmem"]["peak_bytes"], e["pmem_peak"])
    t["pmem"]["bytes_written"] += e["pmem_written"]
    t["pmem"]["bytes_read"] += e["pmem_read"]
# --check: agreement with the plaintext executor on every image (the last attempt's line).
check = None
for line in open(sys.argv[7]):
    m = re.match(r"check +top-1 agreement with plaintext ([0-9.]+)% \((\d+)/(\d+)\), max \|logit error\| (\S+)", line)
    if m:
        check = {"top1_agreement": int(m.group(2)), "images": int(m.group(3)), "max_abs_logit_error": float(m.group(4))}
print(json.dumps({
    "case": sys.argv[2], "batch": int(sys.argv[4]), "params": p["params"], "round_masks": sys.argv[6],
    "limb_words": p["memory"]["limb_words"], "kernels": p["kernels"],
    "threads": p["threads"], "dram_budget": sys.argv[3], "seconds": round(p["seconds"], 1),
    "images_per_second": round(int(sys.argv[4]) / p["seconds"], 2),
    "rounds": p["rounds"], "peak_rss_anon_bytes": p["peak_rss_anon_bytes"],
    "dram": t["dram"], "pmem": t["pmem"],
    "client_traffic_bytes": p["bytes_to_client"] + p["bytes_to_server"], "check": check,
    "resumed": e is not None, "anchor": json.loads(sys.argv[5])}))
PY
done
