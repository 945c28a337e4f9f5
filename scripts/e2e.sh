#!/usr/bin/env bash
# End-to-end tests: node:test against the real binary ($CIVICGATE_BIN), a real
# redis-server per test file (started by the tests on free ports) and local
# fake platform APIs. Browser tests drive Debian's chromium via playwright-core.
set -euo pipefail
cd "$(dirname "$0")/../tests/e2e"
export CIVICGATE_BIN=${CIVICGATE_BIN:-$PWD/../../build/civicgate}
export CIVICGATE_ROOT=$(cd ../.. && pwd)
node --test --test-concurrency=1 *.test.js
