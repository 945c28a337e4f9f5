#!/usr/bin/env bash
# Gateway benchmark: a running civicgate (built here), a real redis-server
# persisting with AOF everysec, and bench/gateway/loadgen (signed Telegram
# webhooks from many chats + a fast fake Bot API in one C process).
# Runs a closed loop (max throughput) and an open loop at RATE msgs/s.
# Telegram's own sending limits (30/s) are switched off in the config: the
# fake Bot API has none, and this measures what the gateway can do.
# Usage: bench/gateway/run.sh [MESSAGES] [RATE]   — loopback only, bounded.
set -euo pipefail
cd "$(dirname "$0")/../.."
msgs=${1:-30000}; rate=${2:-1000}
make -s build >/dev/null
cc -std=c11 -D_DEFAULT_SOURCE -O2 -o build/loadgen bench/gateway/loadgen.c $(pkg-config --cflags --libs libuv)
work=$(mktemp -d)
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
rport=$(free_port); gport=$(free_port); aport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --dir "$work" --appendonly yes --appendfsync everysec \
  --save '' --daemonize yes --logfile "$work/redis.log"
cleanup() { kill "$gwpid" 2>/dev/null || true; redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
cat >"$work/cfg.json" <<JSON
{"listen": {"address": "127.0.0.1", "port": $gport},
 "redis": {"url": "redis://127.0.0.1:$rport/0"},
 "intents": {"dir": "intents"},
 "log": {"level": "warn"},
 "limits": {"citizen_messages_per_minute": 0},
 "channels": {"telegram": {"bot_token": "123:bench", "webhook_secret": "bench-secret",
                           "api_base": "http://127.0.0.1:$aport",
                           "max_per_second": 0, "max_per_chat_per_second": 0}}}
JSON
build/civicgate serve --config "$work/cfg.json" 2>"$work/gw.log" &
gwpid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$gport/readyz" >/dev/null && break; sleep 0.1; done
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# closed loop, 64 connections, $msgs messages, 2000 chats"
build/loadgen --gateway 127.0.0.1:$gport --api-port "$aport" --messages "$msgs" --concurrency 64 \
  --chats 2000 --duration 60 --drain 20 || true
echo "# peak RSS of the gateway: $(grep VmHWM /proc/$gwpid/status | awk '{print $2, $3}')"
redis-cli -p "$rport" flushall >/dev/null
# The fake API's port is reused: wait for the previous listener to be gone.
aport=$(free_port)
kill "$gwpid"; wait "$gwpid" || true
sed -i "s#\"api_base\": \"http://127.0.0.1:[0-9]*\"#\"api_base\": \"http://127.0.0.1:$aport\"#" "$work/cfg.json"
build/civicgate serve --config "$work/cfg.json" 2>>"$work/gw.log" &
gwpid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$gport/readyz" >/dev/null && break; sleep 0.1; done
echo "# open loop, $rate messages/s for 10 s"
build/loadgen --gateway 127.0.0.1:$gport --api-port "$aport" --rate "$rate" --messages $((rate * 10)) \
  --concurrency 64 --chats 2000 --duration 10 --drain 20
