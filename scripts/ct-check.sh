#!/usr/bin/env bash
# Constant-time compares of secrets (tests/ct/ct_compare.c), checked with
# valgrind's memcheck: the real compares must raise no report on
# secret-marked data, and the negative control (memcmp's early exit) must,
# or the check would prove nothing.
# Usage: scripts/ct-check.sh BUILD_DIR   (a plain build: make build)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build}/ct_compare
cmake --build "${1:-build}" --target ct_compare >/dev/null
vg=(valgrind --quiet --error-exitcode=3 --track-origins=yes)
if ! "${vg[@]}" "$bin" >/dev/null; then
  echo "ct-check: a secret compare depends on the secret (see the valgrind report above)"; exit 1
fi
if "${vg[@]}" "$bin" naive >/dev/null 2>&1; then
  echo "ct-check: the negative control was not reported: this check cannot see a leak"; exit 1
fi
echo "ct-check: cg_secure_equal compares in constant time (memcheck clean; the early-exit control is caught)"
