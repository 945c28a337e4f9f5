#!/usr/bin/env bash
# Per-message costs of the gateway and of Redis that do not depend on how
# busy the machine is: instruction counts under callgrind, system calls under
# strace, Redis commands from INFO commandstats. The same set-up as run.sh
# (redis-server with AOF everysec, bench/gateway/loadgen, Telegram limits
# off; unlike run.sh the per-citizen flood limit keeps its default, 30 a
# minute, so its INCR is in the counts as in a default deployment: keep
# MESSAGES ≤ 30 × CHATS, or what is over it is limited, not answered), one
# closed loop of MESSAGES webhooks; the profiler counts only that loop
# (callgrind's instrumentation is switched on for it), not the start.
#
# Usage: bench/gateway/profile.sh MODE [MESSAGES] [CONCURRENCY]
#   MODE gateway   callgrind on the gateway → instructions per message
#        redis     callgrind on redis-server → instructions per message
#                  (serverCron, which runs by the clock, left out)
#        strace    strace -c on the gateway → system calls per message
#        cpu       no profiler: CPU µs per message of gateway, Redis, loadgen,
#                  and of it in the kernel (system time)
#        perf      perf record (cpu-clock samples, every process, kernel
#                  included) → share of CPU per process and library, and
#                  the profile in OUT for `perf report`
#        replay    Redis's CPU per message for exactly the commands the
#                  gateway sent: MONITOR logs them during the loop (which
#                  slows it), then they are sent again in the same order to
#                  a fresh redis-server with the same options
#                  (monitor_resp.py, redis-cli --pipe): no network round
#                  trips, no gateway, the same work. REPLAY_CALLGRIND=1 runs
#                  that redis-server under callgrind (instructions per
#                  message; OUT keeps redis-replay.out)
#   BIN=path      another civicgate build to measure (default build/civicgate)
#   OUT=dir       keep the profiles there (default: a temporary directory)
#   REDIS_OPTS="--more redis-server options" (diagnostics, e.g. a slowlog
#                 of every command: "--slowlog-log-slower-than 0
#                 --slowlog-max-len 1000000"; kept in OUT/slowlog.json)
#   CHATS=n       distinct chats (default 2000: with 3 000 messages two thirds
#                 are a chat's first; 200 measures the steady state)
#   RATE=n        an open loop at n webhooks/s instead of the closed loop
#                 (CONCURRENCY is then the number of connections)
#   WS=n          n web-chat WebSockets held open during the loop (wsload,
#                 bench/compare/wsload.c; they ping every 20 s, as the widget
#                 does every 25 s): what idle citizens cost the webhooks
# Loopback only, bounded; callgrind runs take about a minute for 3 000.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:?usage: profile.sh gateway|redis|strace|cpu|perf|replay [MESSAGES] [CONCURRENCY]}
msgs=${2:-3000}; conc=${3:-64}
bin=${BIN:-build/civicgate}
[ -n "${BIN:-}" ] || make -s build >/dev/null
cc -std=c11 -D_DEFAULT_SOURCE -O2 -o build/loadgen bench/gateway/loadgen.c $(pkg-config --cflags --libs libuv)
work=$(mktemp -d)
out=${OUT:-$work/out}
mkdir -p "$out"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
rport=$(free_port); gport=$(free_port); aport=$(free_port)
redis_args=(--bind 127.0.0.1 --port "$rport" --dir "$work" --appendonly yes --appendfsync everysec
            --save '' --logfile "$work/redis.log" ${REDIS_OPTS:-})
gwpid=; spid=; wspid=; mpid=; rport2=
cleanup() {
  [ -n "$spid" ] && kill "$spid" 2>/dev/null || true
  [ -n "$mpid" ] && kill "$mpid" 2>/dev/null || true
  [ -n "$rport2" ] && redis-cli -p "$rport2" shutdown nosave >/dev/null 2>&1 || true
  [ -n "$wspid" ] && kill "$wspid" 2>/dev/null || true
  [ -n "$gwpid" ] && kill "$gwpid" 2>/dev/null || true
  redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  [ -n "${OUT:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
if [ "$mode" = redis ]; then
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/redis.%p" \
    redis-server "${redis_args[@]}" 2>/dev/null &
else
  redis-server "${redis_args[@]}" --daemonize yes
fi
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
if [ "$mode" = replay ]; then   # before the gateway connects: its SCRIPT LOADs and XGROUPs too
  redis-cli -p "$rport" monitor >"$out/monitor.txt" & mpid=$!
  for _ in $(seq 50); do [ -s "$out/monitor.txt" ] && break; sleep 0.1; done
fi
cat >"$work/cfg.json" <<JSON
{"listen": {"address": "127.0.0.1", "port": $gport},
 "redis": {"url": "redis://127.0.0.1:$rport/0"},
 "intents": {"dir": "intents"},
 "log": {"level": "warn"},
 "channels": {"telegram": {"bot_token": "123:bench", "webhook_secret": "bench-secret",
                           "api_base": "http://127.0.0.1:$aport",
                           "max_per_second": 0, "max_per_chat_per_second": 0},
              "webchat": {"enabled": true, "allowed_origins": ["http://127.0.0.1:$gport"]}}}
JSON
if [ "$mode" = gateway ]; then
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/gateway.%p" \
    "$bin" serve --config "$work/cfg.json" 2>"$work/gw.log" &
else
  "$bin" serve --config "$work/cfg.json" 2>"$work/gw.log" &
fi
gwpid=$!
for _ in $(seq 900); do curl -sf "http://127.0.0.1:$gport/readyz" >/dev/null && break; sleep 0.1; done
rpid=$(redis-cli -p "$rport" info server | tr -d '\r' | awk -F: '/^process_id:/{print $2}')
if [ "${WS:-0}" -gt 0 ]; then
  [ -x build/bench/wsload ] || { mkdir -p build/bench && cc -O2 -D_GNU_SOURCE -o build/bench/wsload \
    bench/compare/wsload.c $(pkg-config --cflags --libs libwebsockets); }
  (ulimit -n $((WS + 1000)); exec build/bench/wsload --port "$gport" --connections "$WS" --hold 300 \
     --origin "http://127.0.0.1:$gport" --verbose 1 >"$work/ws.json" 2>"$work/ws.log") & wspid=$!
  for _ in $(seq 600); do grep -q "welcomed $WS " "$work/ws.log" 2>/dev/null && break; sleep 0.5; done
  grep -q "welcomed $WS " "$work/ws.log" || { echo "profile.sh: $WS WebSockets not all welcomed" >&2; exit 1; }
fi
redis-cli -p "$rport" config resetstat >/dev/null
case $mode in
  gateway) callgrind_control -i on "$gwpid" >/dev/null ;;
  redis) callgrind_control -i on "$rpid" >/dev/null ;;
  strace) strace ${STRACE_OPTS:--c} -f -p "$gwpid" -o "$out/strace.txt" & spid=$!; sleep 1 ;;
  perf) perf record -q -e cpu-clock -F 2000 -a -g -o "$out/perf.data" >/dev/null 2>&1 & spid=$!; sleep 1 ;;
esac
tck=$(getconf CLK_TCK)
cpu_ms() { awk -v t="$tck" '{print ($14 + $15) * 1000 / t}' "/proc/$1/stat"; }
sys_ms() { awk -v t="$tck" '{print $15 * 1000 / t}' "/proc/$1/stat"; }
g0=$(cpu_ms "$gwpid"); r0=$(cpu_ms "$rpid"); gs0=$(sys_ms "$gwpid"); rs0=$(sys_ms "$rpid")
/usr/bin/time -f "%U %S" -o "$work/lgtime" build/loadgen --gateway 127.0.0.1:$gport --api-port "$aport" \
  --messages "$msgs" --concurrency "$conc" --chats "${CHATS:-2000}" --duration 300 --drain 120 \
  ${RATE:+--rate "$RATE"} | tee "$out/loadgen.json" || true
g1=$(cpu_ms "$gwpid"); r1=$(cpu_ms "$rpid"); gs1=$(sys_ms "$gwpid"); rs1=$(sys_ms "$rpid")
n=$(sed -n 's/.*"replies":\([0-9]*\).*/\1/p' "$out/loadgen.json"); n=${n:-0}
[ "$n" -gt 0 ] || { echo "profile.sh: no replies" >&2; exit 1; }
redis-cli -p "$rport" info commandstats | tr -d '\r' | grep cmdstat >"$out/commandstats.txt" || true
case ${REDIS_OPTS:-} in *slowlog*) redis-cli -p "$rport" --json slowlog get 1000000 >"$out/slowlog.json" || true ;; esac
# (awk reads to the end: an early exit would SIGPIPE callgrind_annotate, and pipefail stop the script)
total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !t {gsub(",","",$1); t = $1} END {print t}'; }
case $mode in
  gateway)
    callgrind_control -i off "$gwpid" >/dev/null; callgrind_control -d "$gwpid" >/dev/null; sleep 1
    f=$(ls -S "$out"/gateway.* | head -1)
    echo "# gateway: $(( $(total "$f") / n )) instructions per message ($n messages${OUT:+; profile $f})" ;;
  redis)
    callgrind_control -i off "$rpid" >/dev/null; callgrind_control -d "$rpid" >/dev/null; sleep 1
    f=$(ls -S "$out"/redis.* | head -1)
    cron=$(callgrind_annotate --inclusive=yes "$f" 2>/dev/null | awk '/ \?\?\?:serverCron / && !c {gsub(",","",$1); c = $1} END {print c}')
    echo "# redis: $(( ($(total "$f") - ${cron:-0}) / n )) instructions per message without serverCron ($n messages${OUT:+; profile $f})" ;;
  strace)
    kill -INT "$spid"; wait "$spid" 2>/dev/null || true; spid=
    echo "# gateway system calls per message ($n messages):"
    awk -v n="$n" '$1 ~ /^[0-9.]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {
      printf "#   %-14s %.2f\n", $NF, $4 / n }' "$out/strace.txt" | sort -k3 -rn | head -12 ;;
  perf)
    kill -INT "$spid"; wait "$spid" 2>/dev/null || true; spid=
    echo "# CPU samples by process and library ($n messages; perf report -i $out/perf.data):"
    perf report -i "$out/perf.data" --no-children --sort comm,dso --stdio 2>/dev/null |
      awk '/^ +[0-9.]+%/ && $1 + 0 >= 0.5 { print "#  ", $0 }' | head -30 ;;
  replay)
    kill "$mpid"; wait "$mpid" 2>/dev/null || true; mpid=
    python3 bench/gateway/monitor_resp.py "$out/monitor.txt" >"$work/replay.resp" 2>"$work/replay.count"
    rport2=$(free_port); mkdir -p "$work/replay"
    redis_args2=(--bind 127.0.0.1 --port "$rport2" --dir "$work/replay" --appendonly yes --appendfsync everysec
                 --save '' --logfile "$work/replay/redis.log" ${REDIS_OPTS:-})
    if [ -n "${REPLAY_CALLGRIND:-}" ]; then
      valgrind --tool=callgrind --callgrind-out-file="$out/redis-replay.out" redis-server "${redis_args2[@]}" 2>/dev/null &
    else
      redis-server "${redis_args2[@]}" --daemonize yes
    fi
    for _ in $(seq 300); do redis-cli -p "$rport2" ping >/dev/null 2>&1 && break; sleep 0.1; done
    rpid2=$(redis-cli -p "$rport2" info server | tr -d '\r' | awk -F: '/^process_id:/{print $2}')
    p0=$(cpu_ms "$rpid2")
    redis-cli -p "$rport2" --pipe <"$work/replay.resp" | tail -1
    p1=$(cpu_ms "$rpid2")
    redis-cli -p "$rport2" info commandstats | tr -d '\r' | grep cmdstat >"$out/commandstats-replay.txt" || true
    if [ -z "${REPLAY_CALLGRIND:-}" ]; then
      echo "# Redis CPU µs per message: $(echo "($r1 - $r0) * 1000 / $n" | bc) live (under MONITOR)," \
           "$(echo "($p1 - $p0) * 1000 / $n" | bc) replayed ($(cat "$work/replay.count") commands for $n messages)"
    else
      redis-cli -p "$rport2" shutdown nosave >/dev/null 2>&1 || true; rport2=; sleep 2
      echo "# Redis replayed: $(( $(total "$out/redis-replay.out") / n )) instructions per message" \
           "(start and shutdown included${OUT:+; profile $out/redis-replay.out})"
    fi ;;
  cpu)
    echo "# CPU µs per message (of it in the kernel): gateway $(echo "($g1 - $g0) * 1000 / $n" | bc)" \
         "($(echo "($gs1 - $gs0) * 1000 / $n" | bc)), Redis $(echo "($r1 - $r0) * 1000 / $n" | bc)" \
         "($(echo "($rs1 - $rs0) * 1000 / $n" | bc)), loadgen $(awk -v n="$n" '{printf "%d (%d)", ($1 + $2) * 1e6 / n, $2 * 1e6 / n}' "$work/lgtime")" ;;
esac
