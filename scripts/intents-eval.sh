#!/usr/bin/env bash
# The demo table's checks in `make test`: it must validate, and the labelled
# test set (tests/intents/*.jsonl, written apart from the examples) must reach
# a minimum accuracy. Usage: scripts/intents-eval.sh BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/civicgate}
min=${CG_MIN_ACCURACY:-0.85}
"$bin" intents check intents >/tmp/cg-intents-check.$$ || { cat /tmp/cg-intents-check.$$; rm -f /tmp/cg-intents-check.$$; exit 1; }
tail -n 1 /tmp/cg-intents-check.$$; rm -f /tmp/cg-intents-check.$$
cases=$(mktemp)
trap 'rm -f "$cases"' EXIT
cat tests/intents/*.jsonl >"$cases"
"$bin" intents eval --intents intents --cases "$cases" --min-accuracy "$min" --top 5 | sed -n '1,4p;/most confused/,$p'
