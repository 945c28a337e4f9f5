#!/usr/bin/env bash
# One open-loop run against a fresh Redis (AOF everysec) and a fresh gateway,
# for pairs of builds taken one right after the other (the VM's noise moves a
# p99 by milliseconds between runs, so compare builds in alternating pairs).
# Usage: bench/gateway/openloop.sh BIN RATE [SECONDS]   — loopback only, bounded.
#        WARMUP=s (default 2), LG_OPTS="--trace FILE" (more loadgen options),
#        KEEP_LOG=file (a copy of redis.log: when AOF rewrites ran), KEEP_GWLOG=file,
#        GW_LOG=level, REDIS_OPTS="--more redis-server options" (diagnostics).
# Prints: build dir, rate, replies/s, lost, ack p50 p99 p99.9, e2e p50 p99 p99.9 (ms),
# CPU µs per reply of the gateway, Redis and the load generator (the measured part),
# the load generator's reconnects (a connection the gateway closed), EVALSHA calls per message (warm-up included) and the messages that skipped the load.
set -u
bin=$1; rate=$2; secs=${3:-10}
cd "$(dirname "$0")/../.."
[ -x build/loadgen ] || cc -std=c11 -D_DEFAULT_SOURCE -O2 -o build/loadgen bench/gateway/loadgen.c \
  $(pkg-config --cflags --libs libuv)
work=$(mktemp -d)
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
rport=$(free_port); gport=$(free_port); aport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --dir "$work" --appendonly yes --appendfsync everysec \
  --save '' --daemonize yes --logfile "$work/redis.log" ${REDIS_OPTS:-}
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
cat >"$work/cfg.json" <<JSON
{"listen": {"address": "127.0.0.1", "port": $gport}, "redis": {"url": "redis://127.0.0.1:$rport/0"},
 "intents": {"dir": "intents"}, "log": {"level": "${GW_LOG:-warn}"}, "limits": {"citizen_messages_per_minute": 0},
 "channels": {"telegram": {"bot_token": "123:bench", "webhook_secret": "bench-secret",
   "api_base": "http://127.0.0.1:$aport", "max_per_second": 0, "max_per_chat_per_second": 0}}}
JSON
"$bin" serve --config "$work/cfg.json" 2>"$work/gw.log" & gw=$!
cleanup() { kill "$gw" 2>/dev/null; wait "$gw" 2>/dev/null; [ -z "${KEEP_GWLOG:-}" ] || cp "$work/gw.log" "$KEEP_GWLOG"; redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1; [ -z "${KEEP_LOG:-}" ] || cp "$work/redis.log" "$KEEP_LOG"; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$gport/readyz" >/dev/null && break; sleep 0.1; done
n=$(python3 -c "print(int($rate * $secs))")
rpid=$(redis-cli -p "$rport" info server | tr -d '\r' | awk -F: '/^process_id:/{print $2}')
build/loadgen --gateway "127.0.0.1:$gport" --api-port "$aport" --messages "$n" --rate "$rate" --chats 2000 \
  --warmup ${WARMUP:-2} --duration $((secs + 20)) --drain 10 --watch "$gw,$rpid" ${LG_OPTS:-} |
  python3 -c "import json,sys; d=json.load(sys.stdin); a=d['ack_ms']; e=d['e2e_ms']; c=d['cpu_s']; r=max(d['replies'],1); print('$(dirname "$(dirname "$bin")")', 'rate', d['rate'], 'rps', d['replies_per_second'], 'lost', d['lost'], 'ack', a['p50'], a['p99'], a['p999'], 'e2e', e['p50'], e['p99'], e['p999'], 'cpu_us/msg gw %d redis %d loadgen %d reconnects %d' % (c[0]*1e6/r, c[1]*1e6/r, d['loadgen_cpu_s']*1e6/r, d.get('reconnects', 0)), end=' ')"
# Redis script calls per reply, and how many messages skipped the load (the preload)
redis-cli -p "$rport" info commandstats | tr -d '\r' | awk -F'[=,:]' -v n="$n" \
  '/^cmdstat_evalsha:/ { printf "evalsha/msg %.2f ", $3 / n }'
curl -s "http://127.0.0.1:$gport/metrics" | awk '/^civicgate_pipeline_preloaded_total/ { s += $2 } END { printf "preloaded %d\n", s }'
