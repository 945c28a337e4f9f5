#!/usr/bin/env bash
# The least Redis CPU a stored and answered message can cost on this
# machine, whatever the gateway does: a lower bound for issue 8's ratios.
#
# What a message must write, at the least, for civicgate's guarantees
# (docs/redis.md): its dedupe key (SET NX EX, a new key each time), the
# citizen's line and the reply's in the transcript (two XADDs), the reply in
# the outbox (XADD) and the conversation's counters (HSET), after reading
# them (HMGET). Redis 7 with AOF everysec as the benchmarks run it; MESSAGES
# messages over 2,000 chats, written as RESP and sent with redis-cli --pipe
# (Redis reads 16 KB at a time: many commands a read, as from the gateway);
# Redis's CPU from /proc/<pid>/stat, per message:
#   plain   the six commands as they are: no atomicity, no condition (a
#           duplicate would be written twice, two instances could
#           interleave): below what any correct design pays
#   script  the same six in one EVALSHA, keys and values as KEYS/ARGV, no
#           condition: what a script call and Lua's redis.call add
#   nine    the nine commands of civicgate's direct commit (the six, the
#           flood counter, the session's load and its last_in) in one
#           EVALSHA, no condition: the direct script's commands without
#           its logic
# The outbox's read and acknowledgement and the TTLs are left out of all
# three (and the flood counter and the session of the first two), so each is
# a lower bound. Compare with what
# civicgate's own commands cost Redis, replayed the same way:
# `bench/gateway/profile.sh replay 30000`.
#
# Usage: bench/gateway/redis_floor.sh [MESSAGES]   (default 200000)
# Loopback only, a private redis-server on a free port, bounded.
set -euo pipefail
n=${1:-200000}
chats=2000
work=$(mktemp -d)
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$port" --dir "$work" --appendonly yes --appendfsync everysec \
  --save '' --logfile "$work/redis.log" --daemonize yes --pidfile "$work/redis.pid"
cleanup() { redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
pid=$(cat "$work/redis.pid")
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
# the RESP of each variant (gen.py), then µs of Redis CPU a message
cat > "$work/gen.py" <<'PY'
import sys
variant, n, chats, sha = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
text = ('Medicaid is a health insurance program for eligible low-income adults, children, '
        'pregnant women, elderly adults and people with disabilities.')
btn = '[{"title":"Official page","url":"https://www.medicaid.gov/"}]'
ts = '1795832849958'
def resp(*a):
    b = [b'*%d\r\n' % len(a)]
    for x in a:
        x = x.encode()
        b.append(b'$%d\r\n%s\r\n' % (len(x), x))
    return b''.join(b)
out = sys.stdout.buffer
for i in range(n):
    t = '{telegram:%d}' % (1000000 + i % chats)
    dd, seq, conv = 'cg:dedupe:%s:u%d' % (t, i), 'cg:seq:' + t, 'cg:conv:' + t
    s = str(i // chats + 1)
    if variant == 'plain':
        out.write(resp('SET', dd, '1', 'NX', 'EX', '172800'))
        out.write(resp('HMGET', seq, 'done', 'out', 'sent', 'in'))
        out.write(resp('XADD', conv, 'MAXLEN', '~', '500', '*', 'dir', 'in', 'kind', 'text', 'text', 'medicaid', 'ts', ts))
        out.write(resp('XADD', conv, 'MAXLEN', '~', '500', '*', 'dir', 'out', 'text', text, 'buttons', btn,
                       'lang', 'en', 'intent', 'cms-medicaid', 'ts', ts))
        out.write(resp('XADD', 'cg:outbox', 'MAXLEN', '~', '100000', '*', 'seq', s, 'head', '1', 'channel', 'telegram',
                       'user', t[10:-1], 'text', text, 'buttons', btn, 'lang', 'en', 'created_at', ts, 'received_at', ts))
        out.write(resp('HSET', seq, 'in', s, 'out', s, 'done', s))
    elif variant == 'nine':
        out.write(resp('EVALSHA', sha, '6', dd, seq, conv, 'cg:outbox', 'cg:rate:' + t, 'cg:sess:' + t, '172800',
                       '500', 'medicaid', ts, text, btn, 'en', 'cms-medicaid', s, 'telegram', t[10:-1]))
    else:
        out.write(resp('EVALSHA', sha, '4', dd, seq, conv, 'cg:outbox', '172800', '500', 'medicaid', ts, text, btn,
                       'en', 'cms-medicaid', s, 'telegram', t[10:-1]))
PY
per_message() {
  python3 "$work/gen.py" "$1" "$n" "$chats" "${2:-}" > "$work/$1.resp"
  redis-cli -p "$port" flushall >/dev/null
  local a b
  a=$(cpu)
  redis-cli -p "$port" --pipe < "$work/$1.resp" >/dev/null
  b=$(cpu)
  python3 -c "print('%.1f' % (($b - $a) / $tck / $n * 1e6))"
}
# the same six commands in one script: keys and values as KEYS and ARGV
lua="redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1])
redis.call('HMGET', KEYS[2], 'done', 'out', 'sent', 'in')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'dir', 'in', 'kind', 'text', 'text', ARGV[3], 'ts', ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'dir', 'out', 'text', ARGV[5], 'buttons', ARGV[6], 'lang', ARGV[7], 'intent', ARGV[8], 'ts', ARGV[4])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*', 'seq', ARGV[9], 'head', '1', 'channel', ARGV[10], 'user', ARGV[11], 'text', ARGV[5], 'buttons', ARGV[6], 'lang', ARGV[7], 'created_at', ARGV[4], 'received_at', ARGV[4])
redis.call('HSET', KEYS[2], 'in', ARGV[9], 'out', ARGV[9], 'done', ARGV[9])
return 1"
printf '# Redis %s, AOF everysec, %s messages over %s chats (µs of Redis CPU a message)\n' \
  "$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')" "$n" "$chats"
printf 'plain   %s  (six commands, no script: no atomicity, no condition)\n' "$(per_message plain)"
sha=$(redis-cli -p "$port" script load "$lua")
printf 'script  %s  (the same six in one EVALSHA: 4 keys, 11 arguments)\n' "$(per_message script "$sha")"
nine="redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1])
if redis.call('INCR', KEYS[5]) == 1 then redis.call('EXPIRE', KEYS[5], 60) end
redis.call('HMGET', KEYS[2], 'done', 'out', 'sent', 'in')
redis.call('HMGET', KEYS[6], 'dialog', 'blocked', 'agent', 'buttons', 'case', 'csat', 'lang', 'unanswered', 'ttl_at', 'name')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'dir', 'in', 'kind', 'text', 'text', ARGV[3], 'ts', ARGV[4])
redis.call('HSET', KEYS[6], 'last_in', ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'dir', 'out', 'text', ARGV[5], 'buttons', ARGV[6], 'lang', ARGV[7], 'intent', ARGV[8], 'ts', ARGV[4])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*', 'seq', ARGV[9], 'head', '1', 'channel', ARGV[10], 'user', ARGV[11], 'text', ARGV[5], 'buttons', ARGV[6], 'lang', ARGV[7], 'created_at', ARGV[4], 'received_at', ARGV[4])
redis.call('HSET', KEYS[2], 'in', ARGV[9], 'out', ARGV[9], 'done', ARGV[9])
return 1"
sha=$(redis-cli -p "$port" script load "$nine")
printf 'nine    %s  (the direct commit'"'"'s nine commands in one EVALSHA: 6 keys, 11 arguments)\n' "$(per_message nine "$sha")"
