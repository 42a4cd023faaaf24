#!/usr/bin/env bash
# A timed libFuzzer campaign over every target of tests/fuzz/, one at a time:
#   scripts/fuzz.sh [seconds_per_target] [target...]
# Needs the fuzzing build (default build-fuzz/; BUILD_DIR=... to change):
#   CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHEINFER_BUILD_FUZZERS=ON
#   cmake --build build-fuzz --target fuzzers
# Each target starts from its committed corpus (tests/fuzz/corpus/<target>/, read only)
# and its dictionary (tests/fuzz/<target>.dict, or ckks_objects.dict for the CKKS
# object loaders); new inputs go to
# $WORK_DIR/<target>/corpus, findings (crash-*, leak-*, timeout-*, oom-*) to
# $WORK_DIR/<target>/ (default WORK_DIR: build-fuzz/fuzz-campaign). Limits: 1 s per
# input, 1 GiB RSS and 1 GiB per allocation. Prints one line per target: runs, exec/s,
# coverage (cov: edges, ft: features), corpus size and findings; exits 1 on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
shift || true
BUILD_DIR=${BUILD_DIR:-build-fuzz}
WORK_DIR=${WORK_DIR:-$BUILD_DIR/fuzz-campaign}
if [[ ! "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [seconds_per_target] [target...]" >&2
  exit 2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for src in tests/fuzz/*.cc; do targets+=("$(basename "$src" .cc)"); done
fi
printf '%-28s %10s %8s %7s %7s %7s %9s %s\n' target runs exec/s cov ft corpus seconds findings
total_findings=0
for t in "${targets[@]}"; do
  bin="$BUILD_DIR/$t"
  if [ ! -x "$bin" ]; then
    echo "$t: $bin not built (cmake --build $BUILD_DIR --target fuzzers)" >&2
    exit 2
  fi
  out="$WORK_DIR/$t"
  mkdir -p "$out/corpus"
  dict=()
  if [ -f "tests/fuzz/$t.dict" ]; then
    dict=("-dict=tests/fuzz/$t.dict")
  elif [[ "$t" == fuzz_load_* ]]; then  # the CKKS object loaders share one
    dict=("-dict=tests/fuzz/ckks_objects.dict")
  fi
  log="$out/fuzz.log"
  start=$(date +%s)
  set +e
  "$bin" "$out/corpus" "tests/fuzz/corpus/$t" "${dict[@]}" -max_total_time="$SECONDS_PER_TARGET" \
    -timeout=1 -rss_limit_mb=1024 -malloc_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$out/" >"$log" 2>&1
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  # The last status line (#N ... cov: C ft: F corp: K/..) and the final stats.
  status=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  runs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}' || true)
  execs=$(grep -E '^stat::average_exec_per_sec:' "$log" | awk '{print $2}' || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$status")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$status")
  corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$status")
  findings=$(find "$out" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' -o -name 'slow-unit-*' \) | wc -l)
  if [ "$rc" -ne 0 ] && [ "$findings" -eq 0 ]; then findings=1; fi
  total_findings=$((total_findings + findings))
  note=$findings
  if [ "$findings" -ne 0 ]; then note="$findings (see $out/, $log)"; fi
  printf '%-28s %10s %8s %7s %7s %7s %9s %s\n' "$t" "${runs:-?}" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
    "${corp:-?}" "$secs" "$note"
done
[ "$total_findings" -eq 0 ]
