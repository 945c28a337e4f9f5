#!/usr/bin/env bash
# run.sh: the intent matcher's accuracy and speed benchmark.
#
#   bench/intents/run.sh [path/to/civicgate]      (make bench-intents)
#
# Accuracy figures come from the real CLI, `civicgate intents eval`, on intent
# tables converted from the datasets in ../shared/datasets (make_tables.py).
# The out-of-scope threshold is chosen on validation data (BANKING77's
# fewshot_dnnc train → valid split, the same ten intents held out), never on
# the test set, then applied to the test table. Speed (classifications per
# second on one thread, training time, memory) comes from matchbench.c, built
# here against the engine library next to the binary, on a table of 150
# intents x 100 examples (BANKING77 77 + HWU64 64 in English + 9 ArBanking77
# intents in Arabic). Scale: the same harness on synthetic catalogues
# (matchbench --scale: the 141 English intents crossed with place names),
# with liblinear at LIBLINEAR_SIZES and the large-table model at
# SCALE_SIZES, both forced, one "scale:" line each; then the CLI_SIZE
# catalogue written as intent files and run through `civicgate intents
# eval`. Not part of `make test`.
#
# Environment: DATASETS (default: ../shared/datasets next to the repo, or
# /work/shared/datasets), WORK (scratch dir), LOSS_BUDGET (in-scope accuracy
# points the threshold may cost on validation; default 1.5), SPEED_SECONDS,
# SCALE_SIZES (default "150 1000 3000 10000"), LIBLINEAR_SIZES (default
# "150 500 1000": liblinear's time and memory grow with intents squared),
# CLI_SIZE (default 10000).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/build/civicgate}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
builddir=$(dirname "$bin")
datasets=${DATASETS:-}
if [ -z "$datasets" ]; then
  for d in "$root/../shared/datasets" /work/shared/datasets; do
    if [ -d "$d/banking77" ]; then datasets=$(cd "$d" && pwd); break; fi
  done
fi
[ -n "$datasets" ] && [ -d "$datasets/banking77" ] || { echo "run.sh: datasets not found (set DATASETS)" >&2; exit 2; }
[ -x "$bin" ] || { echo "run.sh: $bin is not an executable (build it: make build)" >&2; exit 2; }
work=${WORK:-${TMPDIR:-/tmp}/civicgate-bench-intents}
budget=${LOSS_BUDGET:-1.5}
speed_seconds=${SPEED_SECONDS:-3}
mkdir -p "$work"

echo "civicgate intent matcher benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "binary: $bin"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) core(s), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "datasets: $datasets"
echo

python3 "$here/make_tables.py" --datasets "$datasets" --out "$work" 2>"$work/make_tables.log"

# eval NAME → prints "accuracy in_scope_accuracy oos_recall cases seconds"
evaljson() {
  local table=$1 cases=$2 out=$3
  local t0 t1
  t0=$(date +%s.%N)
  "$bin" intents eval --intents "$table" --cases "$cases" --json >"$out" 2>"$out.err" || {
    echo "run.sh: civicgate intents eval failed on $table:" >&2
    cat "$out.err" >&2
    exit 1
  }
  t1=$(date +%s.%N)
  python3 - "$out" "$t0" "$t1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f'{100*r["accuracy"]:.2f} {100*r["in_scope_accuracy"]:.2f} {100*r["out_of_scope_recall"]:.2f} '
      f'{int(r["cases"])} {float(sys.argv[3]) - float(sys.argv[2]):.2f}')
PY
}

printf '%-22s %8s %8s %8s %s\n' "benchmark" "cases" "accuracy" "target" "load+train+eval"
row() {  # name target
  local name=$1 target=$2 r
  r=$(evaljson "$work/$name/table" "$work/$name/cases.jsonl" "$work/$name/result.json")
  set -- $r
  printf '%-22s %8s %7s%% %7s%% %6ss\n' "$name" "$4" "$1" "$target" "$5"
}
row banking77 91
row banking77-10shot 76
row hwu64 88
row arbanking77 85
echo

# ---- out of scope -----------------------------------------------------------
echo "out of scope: 10 BANKING77 intents left out of the table ($(tr '\n' ' ' <"$work/holdout.txt"))"
setth() { python3 "$here/make_tables.py" --datasets "$datasets" --out "$work" --set-threshold "$1" "$2"; }
v=$work/banking77-oos-valid
setth "$v/table" 0
set -- $(evaljson "$v/table" "$v/cases.jsonl" "$v/r0.json")
base_valid=$2
best=0
best_recall=0
for th in 0.30 0.35 0.40 0.45 0.50 0.55 0.60 0.65 0.70 0.75 0.80; do
  setth "$v/table" "$th"
  set -- $(evaljson "$v/table" "$v/cases.jsonl" "$v/r$th.json")
  lost=$(python3 -c "print(f'{$base_valid - $2:.2f}')")
  printf '  validation: threshold %s: in-scope accuracy %s%% (lost %s), out-of-scope recall %s%%\n' "$th" "$2" "$lost" "$3"
  if python3 -c "import sys; sys.exit(0 if $base_valid - $2 <= $budget else 1)"; then
    best=$th
    best_recall=$3
  fi
done
echo "  chosen on validation: threshold $best (largest within $budget points of in-scope accuracy)"
t=$work/banking77-oos
setth "$t/table" 0
set -- $(evaljson "$t/table" "$t/cases.jsonl" "$t/r0.json")
base_test=$2
ths="$best"
python3 -c "import sys; sys.exit(0 if abs($best - 0.5) < 1e-9 else 1)" || ths="$best 0.5"
for th in $ths; do
  setth "$t/table" "$th"
  set -- $(evaljson "$t/table" "$t/cases.jsonl" "$t/r$th.json")
  lost=$(python3 -c "print(f'{$base_test - $2:.2f}')")
  printf '  test: threshold %s: out-of-scope recall %s%%, in-scope accuracy %s%% (%s without threshold, lost %s points)\n' \
    "$th" "$3" "$2" "$base_test" "$lost"
done
echo

# ---- speed (matchbench) -----------------------------------------------------
mb=$work/matchbench
lib=$builddir/libcgengine.a
[ -f "$lib" ] || { echo "run.sh: $lib not found (build the civicgate target first)" >&2; exit 2; }
inc_linear=$(dirname "$(find /usr/include -maxdepth 2 -name linear.h | head -1)")
${CC:-cc} -std=c11 -O2 -I"$root/include" -I"$root/engine" -I"$inc_linear" \
  "$here/matchbench.c" "$lib" -o "$mb" $(pkg-config --libs libutf8proc libcjson) -lstemmer -llinear -lm -lpthread
D=$datasets
echo "speed: table of 150 intents x 100 examples (77 BANKING77 + 64 HWU64 in en, 9 ArBanking77 in ar)"
"$mb" --train "$D/banking77/train.csv:en:b-:100" --train "$D/hwu64/train.csv:en:h-:100" \
      --train "$D/arbanking77/Banking77_Arabized_MSA_PAL_train.csv:ar:a-:100:9" \
      --test "$D/banking77/test.csv:en:b-" --test "$D/hwu64/test.csv:en:h-" \
      --test "$D/arbanking77/Banking77_Arabized_MSA_PAL_val.csv:ar:a-" \
      --speed "$speed_seconds" | sed 's/^/  /'
echo "  (the test questions of intents outside the table count as out of scope there)"
echo
echo "typos: BANKING77 test with one edit in 30% of the words of 4+ letters"
"$mb" --train "$D/banking77/train.csv" --test "$D/banking77/test.csv" --typos 0.3 | grep 'accuracy (' | sed 's/^/  /'

# ---- scale (synthetic catalogues) ---------------------------------------------
echo
echo "scale: synthetic catalogues of N intents: the 141 English intents of BANKING77 and HWU64 x place"
echo "  names, 10 examples each naming the place; held-out questions: the datasets' test rows, each"
echo "  naming one of its intent's places (matchbench.c, make_catalogue); us/message on one thread"
scale() {  # SIZES, then extra matchbench arguments
  local sizes=$1
  shift
  for n in $sizes; do
    "$mb" --train "$D/banking77/train.csv:en:b-" --train "$D/hwu64/train.csv:en:h-" \
          --test "$D/banking77/test.csv:en:b-" --test "$D/hwu64/test.csv:en:h-" \
          --scale "$n" --speed "$speed_seconds" "$@" | grep '^scale:' | sed 's/^scale: /  /'
  done
}
echo " liblinear (the model below large_min_intents), forced:"
scale "${LIBLINEAR_SIZES:-150 500 1000}" --large 0
echo " large-table model (inverted index + centroid rerank), forced:"
scale "${SCALE_SIZES:-150 1000 3000 10000}" --large 1
n=${CLI_SIZE:-10000}
cat_dir=$work/catalogue-$n
mkdir -p "$cat_dir"
"$mb" --train "$D/banking77/train.csv:en:b-" --train "$D/hwu64/train.csv:en:h-" \
      --test "$D/banking77/test.csv:en:b-" --test "$D/hwu64/test.csv:en:h-" \
      --scale "$n" --dump "$cat_dir" >/dev/null
python3 "$here/make_tables.py" --csv "$cat_dir/train.csv" "$cat_dir/test.csv" --out "$cat_dir" 2>/dev/null
t0=$(date +%s.%N)
"$bin" intents eval --intents "$cat_dir/table" --cases "$cat_dir/cases.jsonl" >"$cat_dir/eval.txt" 2>&1 || {
  echo "run.sh: civicgate intents eval failed on the catalogue:" >&2
  head -5 "$cat_dir/eval.txt" >&2
  exit 1
}
t1=$(date +%s.%N)
echo " through the CLI: the $n-intent catalogue as intent files (threshold 0.5),"
printf '  civicgate intents eval: %s (load %s files + train + %s questions: %.1f s)\n' \
  "$(grep -m1 '^accuracy:' "$cat_dir/eval.txt")" "$(ls "$cat_dir/table" | wc -l)" \
  "$(wc -l <"$cat_dir/cases.jsonl")" "$(python3 -c "print($t1 - $t0)")"
