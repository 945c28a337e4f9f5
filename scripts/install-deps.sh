#!/usr/bin/env bash
# Installs what civicgate needs on Debian 12, only what is missing.
#   scripts/install-deps.sh build   compilers and libraries (make, make run)
#   scripts/install-deps.sh test    + cmocka, redis, chromium, clang, node packages
set -euo pipefail
cd "$(dirname "$0")/.."

build_pkgs="build-essential cmake pkg-config libwebsockets-dev libcjson-dev libhiredis-dev
 libcurl4-openssl-dev libuv1-dev libssl-dev libsodium-dev libutf8proc-dev libstemmer-dev
 liblinear-dev redis-server tzdata"
test_pkgs="libcmocka-dev clang libclang-rt-14-dev chromium nodejs npm docker-compose valgrind"

want="$build_pkgs"
[ "${1:-build}" = test ] && want="$want $test_pkgs"

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# A machine may already have node and npm from elsewhere: do not fight it.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=$(echo "$missing" | tr ' ' '\n' | grep -vx -e nodejs -e npm | tr '\n' ' ')
fi
if [ -n "${missing// /}" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages:$missing (run as root or install them)" >&2
    exit 1
  fi
  echo "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ "${1:-build}" = test ] && [ -f tests/e2e/package-lock.json ]; then
  if [ ! -d tests/e2e/node_modules ] || [ tests/e2e/package-lock.json -nt tests/e2e/node_modules ]; then
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
