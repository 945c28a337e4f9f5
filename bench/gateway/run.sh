#!/usr/bin/env bash
# Gateway benchmark: a running civicgate (built here), a real redis-server
# persisting with AOF everysec, and bench/gateway/loadgen (signed Telegram
# webhooks from many chats + a fast fake Bot API in one C process).
# Runs a closed loop (max throughput) and an open loop at RATE msgs/s.
# Telegram's own sending limits (30/s) are switched off in the config: the
# fake Bot API has none, and this measures what the gateway can do.
# After the closed loop it prints the Redis work per message (requests and
# the commands run inside scripts, from INFO commandstats) and the CPU time
# per message of the gateway and of Redis (/proc/<pid>/stat).
# Usage: bench/gateway/run.sh [MESSAGES] [RATE]   — loopback only, bounded.
#        OPEN=0 skips the open loop; GW_WRAP="valgrind --tool=callgrind ..."
#        runs the first gateway (the closed loop's) under a profiler;
#        BIN=path measures another civicgate build (default build/civicgate);
#        REDIS_UNIX=1 connects the gateway to Redis over a Unix socket;
#        REDIS_OPTS="--more redis-server options" (diagnostics), KEEP_LOG=file
#        keeps a copy of redis.log (when AOF rewrites ran), LG_OPTS="--trace
#        FILE" (more loadgen options for the closed loop).
set -euo pipefail
cd "$(dirname "$0")/../.."
msgs=${1:-30000}; rate=${2:-1000}
bin=${BIN:-build/civicgate}
[ -n "${BIN:-}" ] || make -s build >/dev/null
cc -std=c11 -D_DEFAULT_SOURCE -O2 -o build/loadgen bench/gateway/loadgen.c $(pkg-config --cflags --libs libuv)
work=$(mktemp -d)
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
rport=$(free_port); gport=$(free_port); aport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --dir "$work" --appendonly yes --appendfsync everysec \
  --save '' --daemonize yes --logfile "$work/redis.log" --unixsocket "$work/redis.sock" --unixsocketperm 700 ${REDIS_OPTS:-}
cleanup() { kill "$gwpid" 2>/dev/null || true; redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
            [ -z "${KEEP_LOG:-}" ] || cp "$work/redis.log" "$KEEP_LOG"; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
cat >"$work/cfg.json" <<JSON
{"listen": {"address": "127.0.0.1", "port": $gport},
 "redis": {"url": "$([ "${REDIS_UNIX:-0}" = 1 ] && echo "unix://$work/redis.sock" || echo "redis://127.0.0.1:$rport/0")"},
 "intents": {"dir": "intents"},
 "log": {"level": "warn"},
 "limits": {"citizen_messages_per_minute": 0},
 "channels": {"telegram": {"bot_token": "123:bench", "webhook_secret": "bench-secret",
                           "api_base": "http://127.0.0.1:$aport",
                           "max_per_second": 0, "max_per_chat_per_second": 0}}}
JSON
${GW_WRAP:-} "$bin" serve --config "$work/cfg.json" 2>"$work/gw.log" &
gwpid=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$gport/readyz" >/dev/null && break; sleep 0.1; done
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# closed loop, 64 connections, $msgs messages, 2000 chats"
rpid=$(redis-cli -p "$rport" info server | tr -d '\r' | awk -F: '/^process_id:/{print $2}')
cpu_ms() { awk '{print ($14 + $15) * 1000 / '"$(getconf CLK_TCK)"'}' "/proc/$1/stat"; }
redis-cli -p "$rport" config resetstat >/dev/null
g0=$(cpu_ms "$gwpid"); r0=$(cpu_ms "$rpid")
build/loadgen --gateway 127.0.0.1:$gport --api-port "$aport" --messages "$msgs" --concurrency 64 \
  --chats 2000 --duration 60 --drain 20 ${LG_OPTS:-} | tee "$work/closed.json" || true
g1=$(cpu_ms "$gwpid"); r1=$(cpu_ms "$rpid")
echo "# peak RSS of the gateway: $(grep VmHWM /proc/$gwpid/status | awk '{print $2, $3}')"
n=$(sed -n 's/.*"replies":\([0-9]*\).*/\1/p' "$work/closed.json"); n=${n:-0}
if [ "$n" -gt 0 ]; then
  echo "# per message ($n replies): CPU gateway $(echo "($g1 - $g0) * 1000 / $n" | bc) µs," \
       "Redis $(echo "($r1 - $r0) * 1000 / $n" | bc) µs"
  # requests = what clients sent (EVALSHA, XREADGROUP, ...); script commands
  # = what the scripts ran inside them (not counted as requests)
  redis-cli -p "$rport" info commandstats | tr -d '\r' | awk -F'[:=,]' -v n="$n" '
    /^cmdstat_/ { c = substr($1, 9); calls[c] = $3 }
    END {
      split("evalsha eval xreadgroup xautoclaim xpending xclaim script ping info", req, " ")
      for (i in req) { r += calls[req[i]]; isreq[req[i]] = 1 }
      for (c in calls) if (!(c in isreq)) { s += calls[c]; line = line sprintf(" %s %.2f", c, calls[c] / n) }
      printf "# Redis per message: %.2f requests (evalsha %.2f, xreadgroup %.2f), %.2f commands inside scripts:%s\n",
             r / n, calls["evalsha"] / n, calls["xreadgroup"] / n, s / n, line }'
fi
[ "${OPEN:-1}" = 0 ] && exit 0
redis-cli -p "$rport" flushall >/dev/null
# The fake API's port is reused: wait for the previous listener to be gone.
aport=$(free_port)
kill "$gwpid"; wait "$gwpid" || true
sed -i "s#\"api_base\": \"http://127.0.0.1:[0-9]*\"#\"api_base\": \"http://127.0.0.1:$aport\"#" "$work/cfg.json"
"$bin" serve --config "$work/cfg.json" 2>>"$work/gw.log" &
gwpid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$gport/readyz" >/dev/null && break; sleep 0.1; done
echo "# open loop, $rate messages/s for 10 s"
build/loadgen --gateway 127.0.0.1:$gport --api-port "$aport" --rate "$rate" --messages $((rate * 10)) \
  --concurrency 64 --chats 2000 --duration 10 --drain 20
