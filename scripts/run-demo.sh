#!/usr/bin/env bash
# `make run`: serve the demo. Uses CIVICGATE_CONFIG when set (its redis.url
# is then the operator's); otherwise starts a local redis-server with its
# data under ./var/ (AOF on) and serves on 127.0.0.1:8080 with the demo
# intents (CIVICGATE_ADDRESS=0.0.0.0 to serve other machines, CIVICGATE_PORT).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/civicgate
if [ -n "${CIVICGATE_CONFIG:-}" ]; then
  exec "$bin" serve --config "$CIVICGATE_CONFIG"
fi
mkdir -p var/redis
port=${CIVICGATE_REDIS_PORT:-6379}
if ! redis-cli -p "$port" ping >/dev/null 2>&1; then
  echo "starting redis-server on 127.0.0.1:$port (data in var/redis)"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$PWD/var/redis" --appendonly yes \
    --appendfsync everysec --daemonize yes --pidfile "$PWD/var/redis/redis.pid" \
    --logfile "$PWD/var/redis/redis.log"
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "(it keeps running after the gateway stops; stop it with: redis-cli -p $port shutdown)"
fi
cfg=var/demo.json
# Demo agents (README, "Human agents"): passwords for the demo only, hashed
# here so that no hash is kept in the repository.
alice_hash=$(printf '%s\n' 'demo-agent' | "$bin" hash-password)
sam_hash=$(printf '%s\n' 'demo-supervisor' | "$bin" hash-password)
cat >"$cfg" <<JSON
{
  "listen": {"address": "${CIVICGATE_ADDRESS:-127.0.0.1}", "port": ${CIVICGATE_PORT:-8080}},
  "redis": {"url": "redis://127.0.0.1:$port/0"},
  "intents": {"dir": "intents"},
  "agents": {
    "users": [
      {"name": "alice", "display_name": "Alice (demo agent)", "role": "agent", "password_hash": "$alice_hash"},
      {"name": "sam", "display_name": "Sam (demo supervisor)", "role": "supervisor", "password_hash": "$sam_hash"}
    ]
  },
  "channels": {
    "webchat": {"enabled": true,
                "allowed_origins": ["http://localhost:${CIVICGATE_PORT:-8080}", "http://127.0.0.1:${CIVICGATE_PORT:-8080}"]}
  }
}
JSON
echo "civicgate: web chat at http://localhost:${CIVICGATE_PORT:-8080}/chat/"
echo "civicgate: agents' console at http://localhost:${CIVICGATE_PORT:-8080}/agent/ (alice / demo-agent, sam / demo-supervisor)"
exec "$bin" serve --config "$cfg"
