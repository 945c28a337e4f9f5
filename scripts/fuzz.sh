#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR for SECONDS each, seeded from
# fuzz/corpus/<name>/ (copied: the seeds in git stay as they are).
# Usage: scripts/fuzz.sh BUILD_DIR SECONDS
set -euo pipefail
cd "$(dirname "$0")/.."
bdir=$1; secs=$2
shopt -s nullglob
ran=0
for bin in "$bdir"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin"); name=${name#fuzz_}
  work=$(mktemp -d)
  [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/"
  dict=(); [ -f fuzz/json.dict ] && dict=(-dict=fuzz/json.dict)
  echo "fuzz $name: ${secs}s"
  if ! "$bin" "${dict[@]}" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=0 -artifact_prefix="$work/" "$work" >"$work.log" 2>&1; then
    tail -n 40 "$work.log"; echo "fuzz $name: FAILED (artifacts in $work)"; exit 1
  fi
  grep -E '^(#[0-9]+.*(DONE|pulse)|Done)' "$work.log" | tail -n 1 || true
  rm -rf "$work" "$work.log"
  ran=$((ran + 1))
done
echo "fuzz: $ran target(s) ran clean"
